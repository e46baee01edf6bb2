//! `RelaywireClient`, the class applications use.

use std::cell::RefCell;
use std::rc::Rc;

use js_sys::{Function, Object, Promise};
use relaywire_protocol::{ClientErrorCode, ErrorCode};
use wasm_bindgen::prelude::*;

use super::driver::{Driver, Topic, now, with};
use super::errors::{client_error, describe, error};
use super::fields::JsMessage;
use super::js::{self, field};
use super::options;
use crate::core::{Event, SendError, SendMode};

/// A typed, reconnecting Relaywire connection over the browser's WebSocket, for any
/// protocol: what it does with each message type comes from the `protocol` descriptor
/// the application's generated TypeScript exports.
///
/// ```js
/// import { chatProtocol } from "relaywire/chat";
/// const client = new RelaywireClient({ url: "/ws", protocol: chatProtocol });
/// const off = client.on("chat:message", (payload) => console.log(payload.message.content));
/// await client.request({ type: "chat:join", payload: { chatId: "general" } });
/// ```
#[wasm_bindgen(skip_typescript)]
pub struct RelaywireClient {
    driver: Rc<RefCell<Driver>>,
}

/// A message from JS, checked: an object with a string `type` and an object payload.
/// Whether the protocol knows the type is the core's to say.
fn check(message: &JsValue) -> Result<JsMessage, JsValue> {
    if !message.is_object() {
        return Err(error(
            ErrorCode::InvalidMessage.as_str(),
            "a message must be an object",
        ));
    }
    let type_js = field(message, &js::TYPE);
    let type_name = type_js.as_string().ok_or_else(|| {
        error(
            ErrorCode::InvalidMessage.as_str(),
            "a message needs a string `type`",
        )
    })?;
    let payload = field(message, &js::PAYLOAD);
    let payload = if payload.is_undefined() || payload.is_null() {
        Object::new().into()
    } else if payload.is_object() && !js_sys::Array::is_array(&payload) {
        payload
    } else {
        return Err(error(
            ErrorCode::ValidationError.as_str(),
            "`payload` must be an object",
        ));
    };
    let id = field(message, &js::ID);
    if !(id.is_undefined() || id.is_string()) {
        return Err(error(
            ErrorCode::ValidationError.as_str(),
            "`id` must be a string",
        ));
    }
    Ok(JsMessage {
        type_name,
        type_js,
        payload,
        id,
    })
}

fn timeout_option(options: &JsValue) -> Option<u32> {
    let ms = js::get_number(options, "timeoutMs")?;
    (ms.is_finite() && ms >= 0.0).then(|| ms.min(f64::from(u32::MAX)) as u32)
}

fn send_error(err: &SendError) -> JsValue {
    match err {
        SendError::Client(code) => client_error(*code, describe(*code)),
        SendError::Invalid { code, reason } => error(code.as_str(), reason),
    }
}

fn busy() -> JsValue {
    client_error(ClientErrorCode::ClientClosed, "the client is busy")
}

impl RelaywireClient {
    /// Checks a message and hands it to the core; a request's settle functions wait
    /// under its id. One path for `send` and `request`.
    #[inline(never)]
    fn submit(
        &self,
        message: &JsValue,
        mode: SendMode,
        settle: Option<(Function, Function)>,
    ) -> Result<Option<String>, JsValue> {
        let message = check(message)?;
        with(&self.driver, |d| {
            let result = d.core.send(now(), &message, mode);
            if let (Ok(Some(id)), Some((resolve, reject))) = (&result, settle) {
                d.add_request(id.clone(), resolve, reject);
            }
            d.execute();
            result.map_err(|err| send_error(&err))
        })
        .unwrap_or_else(|| Err(busy()))
    }

    fn add_subscription(&self, topic: Topic, handler: Function) -> Function {
        let id = with(&self.driver, |d| d.subscribe(topic, handler)).unwrap_or(0);
        let weak = Rc::downgrade(&self.driver);
        Closure::<dyn FnMut()>::new(move || {
            if let Some(driver) = weak.upgrade() {
                with(&driver, |d| d.unsubscribe(id));
            }
        })
        .into_js_value()
        .unchecked_into()
    }
}

#[wasm_bindgen]
impl RelaywireClient {
    /// Creates a client; it connects at once unless `autoConnect` is `false`.
    /// Throws a `RelaywireError` with code `INVALID_OPTIONS` for bad options.
    #[wasm_bindgen(constructor)]
    pub fn new(options: JsValue) -> Result<RelaywireClient, JsValue> {
        let (core, options) = options::parse(&options)?;
        let auto_connect = options.auto_connect;
        let client = RelaywireClient {
            driver: Driver::new(core, options),
        };
        if auto_connect {
            client.connect()?;
        }
        Ok(client)
    }

    /// Connects, or retries at once when waiting to retry; after `close()` or a
    /// terminal failure it starts over. Throws `INVALID_OPTIONS` when there is nothing
    /// to connect with: a path `url` with no page, or no WebSocket.
    pub fn connect(&self) -> Result<(), JsValue> {
        with(&self.driver, |d| {
            d.prepare()?;
            d.listen(true);
            if !js::online() {
                d.handle(Event::Offline);
            }
            d.handle(Event::Connect);
            Ok(())
        })
        .unwrap_or(Ok(()))
    }

    /// Closes the connection for good: waiting messages and requests are rejected with
    /// `CLIENT_CLOSED`, and no socket, timer or page listener is left behind.
    pub fn close(&self) {
        with(&self.driver, |d| {
            d.handle(Event::Close);
            d.shut_down();
        });
    }

    /// Hands a message over. By its type's policy in the protocol it waits in the
    /// outbox until acknowledged, across reconnects (durable and request types), or is
    /// sent only while connected (ephemeral types; a state such as typing is renewed
    /// and stopped by itself). Throws a `RelaywireError` (`INVALID_MESSAGE`,
    /// `VALIDATION_ERROR`, `MESSAGE_TOO_LARGE`, `QUEUE_FULL`, `CLIENT_CLOSED`,
    /// `CONNECTION_FAILED`).
    pub fn send(&self, message: JsValue) -> Result<(), JsValue> {
        self.submit(&message, SendMode::Send, None).map(drop)
    }

    /// Sends a message and resolves with its `ack`; rejects with the server's `error`
    /// code, `TIMEOUT`, or the reason it could not be sent.
    pub fn request(&self, message: JsValue, options: JsValue) -> Promise {
        let mode = SendMode::Request {
            timeout_ms: timeout_option(&options),
        };
        let mut settle = None;
        let promise = Promise::new(&mut |resolve, reject| settle = Some((resolve, reject)));
        match self.submit(&message, mode, settle) {
            Ok(_) => promise,
            Err(err) => js::promise_reject(&err),
        }
    }

    /// Calls `handler(payload, message)` for every message of one type; returns the
    /// function that unsubscribes it.
    pub fn on(&self, kind: String, handler: Function) -> Function {
        self.add_subscription(Topic::Type(kind), handler)
    }

    /// Calls `handler(message)` for every message of a known type.
    #[wasm_bindgen(js_name = onAny)]
    pub fn on_any(&self, handler: Function) -> Function {
        self.add_subscription(Topic::Any, handler)
    }

    /// Calls `handler(message)` for messages of a type this client does not know (sent
    /// by a newer server).
    #[wasm_bindgen(js_name = onUnknown)]
    pub fn on_unknown(&self, handler: Function) -> Function {
        self.add_subscription(Topic::Unknown, handler)
    }

    /// Calls `listener()` whenever the snapshot changes; for `useSyncExternalStore`.
    #[wasm_bindgen(js_name = subscribe)]
    pub fn subscribe_state(&self, listener: Function) -> Function {
        self.add_subscription(Topic::State, listener)
    }

    /// The connection snapshot: the same object until something changes.
    #[wasm_bindgen(js_name = getSnapshot)]
    pub fn get_snapshot(&self) -> JsValue {
        with(&self.driver, Driver::snapshot).unwrap_or(JsValue::NULL)
    }
}
