//! `RelaywireClient`, the class applications use.

use std::cell::RefCell;
use std::rc::Rc;

use js_sys::{Function, Object, Promise};
use relaywire_protocol::{ClientErrorCode, ClientMessage, ErrorCode};
use wasm_bindgen::prelude::*;

use super::driver::{Driver, Topic, now, with};
use super::errors::{client_error, describe, error};
use super::js::{self, field, get, get_string, put, set_field};
use super::options;
use crate::core::{Effect, Event, Outgoing};

/// A typed, reconnecting Relaywire connection over the browser's WebSocket.
///
/// ```js
/// const client = new RelaywireClient({ url: "/ws" });
/// const off = client.on("chat:message", (payload) => console.log(payload.message.content));
/// await client.sendChatMessage("general", "Hello!");
/// ```
#[wasm_bindgen]
pub struct RelaywireClient {
    driver: Rc<RefCell<Driver>>,
}

/// Whether a JS string is at most `max` bytes of UTF-8, without copying it into wasm
/// memory: three bytes per UTF-16 unit is the most it can take.
fn fits(text: &js_sys::JsString, max: usize) -> bool {
    let units = text.length() as usize;
    if units.saturating_mul(3) <= max {
        return true;
    }
    let bytes: usize = text
        .iter()
        .map(|unit| match unit {
            0..0x80 => 1,
            0x80..0x800 => 2,
            // Each half of a surrogate pair: four bytes per pair.
            0xD800..=0xDFFF => 2,
            _ => 3,
        })
        .sum();
    bytes <= max
}

/// A message from JS, checked: an object with a known `type` and an object payload.
struct Checked {
    kind: String,
    /// `kind` as the JS string the application passed, put back into the frame as is.
    kind_js: JsValue,
    payload: JsValue,
}

fn check(message: &JsValue) -> Result<Checked, JsValue> {
    if !message.is_object() {
        return Err(error(
            ErrorCode::InvalidMessage.as_str(),
            "a message must be an object",
        ));
    }
    let kind_js = field(message, &js::TYPE);
    let kind = kind_js
        .as_string()
        .filter(|kind| ClientMessage::TYPES.contains(&kind.as_str()))
        .ok_or_else(|| error(ErrorCode::InvalidMessage.as_str(), "unknown message type"))?;
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
    Ok(Checked {
        kind,
        kind_js,
        payload,
    })
}

fn effect(checked: &Checked) -> Effect {
    let chat_id = || get_string(&checked.payload, "chatId").unwrap_or_default();
    match checked.kind.as_str() {
        "chat:join" => Effect::Join(chat_id()),
        "chat:leave" => Effect::Leave(chat_id()),
        _ => Effect::None,
    }
}

fn message(kind: &str, payload: &[(&str, JsValue)]) -> JsValue {
    let body = JsValue::from(Object::new());
    for (key, value) in payload {
        put(&body, key, value);
    }
    let message = JsValue::from(Object::new());
    put(&message, "type", &JsValue::from_str(kind));
    put(&message, "payload", &body);
    message
}

fn timeout_option(options: &JsValue) -> Option<u32> {
    let ms = js::get_number(options, "timeoutMs")?;
    (ms.is_finite() && ms >= 0.0).then(|| ms.min(f64::from(u32::MAX)) as u32)
}

impl RelaywireClient {
    /// Encodes a checked message with `id` and hands it to the core.
    fn enqueue(
        &self,
        checked: &Checked,
        id: Option<String>,
        timeout_ms: Option<u32>,
    ) -> Result<(), JsValue> {
        let frame = JsValue::from(Object::new());
        set_field(&frame, &js::TYPE, &checked.kind_js);
        if let Some(id) = &id {
            set_field(&frame, &js::ID, &JsValue::from_str(id));
        }
        set_field(&frame, &js::PAYLOAD, &checked.payload);
        let text = js_sys::JSON::stringify(&frame).map_err(|_| {
            error(
                ErrorCode::ValidationError.as_str(),
                "the payload cannot be encoded as JSON",
            )
        })?;
        let effect = effect(checked);
        with(&self.driver, |d| {
            if !fits(&text, d.core.max_message_bytes()) {
                return Err(error(
                    ErrorCode::MessageTooLarge.as_str(),
                    "the message is larger than the server accepts",
                ));
            }
            let outgoing = Outgoing {
                id,
                frame: text.into(),
                timeout_ms,
                effect,
            };
            let result = d.core.send(now(), outgoing);
            d.execute();
            result.map_err(|code| client_error(code, describe(code)))
        })
        .unwrap_or_else(|| {
            Err(client_error(
                ClientErrorCode::ClientClosed,
                "the client is busy",
            ))
        })
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

    fn request_checked(
        &self,
        checked: Result<Checked, JsValue>,
        timeout_ms: Option<u32>,
    ) -> Promise {
        let checked = match checked {
            Ok(checked) => checked,
            Err(err) => return js::promise_reject(&err),
        };
        let Some(id) = with(&self.driver, |d| d.core.next_id()) else {
            return js::promise_reject(&client_error(
                ClientErrorCode::ClientClosed,
                "the client is busy",
            ));
        };
        let timeout =
            timeout_ms.or_else(|| with(&self.driver, |d| d.core.default_request_timeout_ms()));
        let promise = Promise::new(&mut |resolve, reject| {
            let id = id.clone();
            with(&self.driver, |d| d.add_request(id, resolve, reject));
        });
        if let Err(err) = self.enqueue(&checked, Some(id.clone()), timeout) {
            let code = get_string(&err, "code");
            with(&self.driver, |d| {
                let client_code = ClientErrorCode::ALL
                    .into_iter()
                    .find(|c| Some(c.as_str()) == code.as_deref());
                match client_code {
                    Some(code) => d.refuse(&id, code),
                    None => d.reject_with(&id, err),
                }
            });
        }
        promise
    }
}

#[wasm_bindgen]
impl RelaywireClient {
    /// Creates a client; it connects at once unless `autoConnect` is `false`.
    /// Throws a `RelaywireError` with code `INVALID_OPTIONS` for bad options.
    #[wasm_bindgen(constructor)]
    pub fn new(
        #[wasm_bindgen(unchecked_param_type = "RelaywireOptions")] options: JsValue,
    ) -> Result<RelaywireClient, JsValue> {
        let options = options::parse(&options)?;
        let auto_connect = options.auto_connect;
        let client = RelaywireClient {
            driver: Driver::new(options),
        };
        if auto_connect {
            client.connect();
        }
        Ok(client)
    }

    /// Connects, or retries at once when waiting to retry; after `close()` or a
    /// terminal failure it starts over.
    pub fn connect(&self) {
        with(&self.driver, |d| {
            d.listen(true);
            if !js::online() {
                d.handle(Event::Offline);
            }
            d.handle(Event::Connect);
        });
    }

    /// Closes the connection for good: waiting messages and requests are rejected with
    /// `CLIENT_CLOSED`, and no socket, timer or page listener is left behind.
    pub fn close(&self) {
        with(&self.driver, |d| {
            d.handle(Event::Close);
            d.shut_down();
        });
    }

    /// Sends a message, now or once connected. Messages other than `ping` and
    /// `chat:typing` get an id and stay queued until the server acknowledges them,
    /// across reconnects. Throws a `RelaywireError` (`INVALID_MESSAGE`,
    /// `VALIDATION_ERROR`, `MESSAGE_TOO_LARGE`, `QUEUE_FULL`, `CLIENT_CLOSED`,
    /// `CONNECTION_FAILED`).
    pub fn send(
        &self,
        #[wasm_bindgen(unchecked_param_type = "ClientMessage")] message: JsValue,
    ) -> Result<(), JsValue> {
        let checked = check(&message)?;
        match checked.kind.as_str() {
            "chat:typing" => {
                let chat_id = get_string(&checked.payload, "chatId").unwrap_or_default();
                let is_typing = get(&checked.payload, "isTyping").as_bool().unwrap_or(false);
                self.set_typing(&chat_id, is_typing);
                Ok(())
            }
            "ping" => self.enqueue(&checked, None, None),
            _ => {
                let id = with(&self.driver, |d| d.core.next_id());
                self.enqueue(&checked, id, None)
            }
        }
    }

    /// Sends a message and resolves with its `ack`; rejects with the server's `error`
    /// code, `TIMEOUT`, or the reason it could not be sent.
    #[wasm_bindgen(unchecked_return_type = "Promise<Ack>")]
    pub fn request(
        &self,
        #[wasm_bindgen(unchecked_param_type = "ClientMessage")] message: JsValue,
        #[wasm_bindgen(unchecked_optional_param_type = "{ timeoutMs?: number }")] options: JsValue,
    ) -> Promise {
        self.request_checked(check(&message), timeout_option(&options))
    }

    /// Posts a chat message; resolves with the `ack` carrying the stored message id.
    #[wasm_bindgen(js_name = sendChatMessage, unchecked_return_type = "Promise<Ack>")]
    pub fn send_chat_message(
        &self,
        #[wasm_bindgen(js_name = chatId)] chat_id: &str,
        content: &str,
    ) -> Promise {
        let message = message(
            "chat:message",
            &[("chatId", chat_id.into()), ("content", content.into())],
        );
        self.request_checked(check(&message), None)
    }

    /// Marks a message (and those before it) as read.
    #[wasm_bindgen(js_name = markRead, unchecked_return_type = "Promise<Ack>")]
    pub fn mark_read(
        &self,
        #[wasm_bindgen(js_name = chatId)] chat_id: &str,
        #[wasm_bindgen(js_name = messageId)] message_id: &str,
    ) -> Promise {
        let message = message(
            "chat:read",
            &[("chatId", chat_id.into()), ("messageId", message_id.into())],
        );
        self.request_checked(check(&message), None)
    }

    /// Joins an open chat; the snapshot's `chatIds` include it once acknowledged.
    #[wasm_bindgen(js_name = joinChat, unchecked_return_type = "Promise<Ack>")]
    pub fn join_chat(&self, #[wasm_bindgen(js_name = chatId)] chat_id: &str) -> Promise {
        let message = message("chat:join", &[("chatId", chat_id.into())]);
        self.request_checked(check(&message), None)
    }

    /// Leaves a chat.
    #[wasm_bindgen(js_name = leaveChat, unchecked_return_type = "Promise<Ack>")]
    pub fn leave_chat(&self, #[wasm_bindgen(js_name = chatId)] chat_id: &str) -> Promise {
        let message = message("chat:leave", &[("chatId", chat_id.into())]);
        self.request_checked(check(&message), None)
    }

    /// Shows or hides the typing indicator in a chat. Call it on every keystroke: the
    /// client limits what it sends and sends the stop by itself after the typing
    /// timeout.
    #[wasm_bindgen(js_name = setTyping)]
    pub fn set_typing(
        &self,
        #[wasm_bindgen(js_name = chatId)] chat_id: &str,
        #[wasm_bindgen(js_name = isTyping)] is_typing: bool,
    ) {
        with(&self.driver, |d| {
            d.core.set_typing(now(), chat_id, is_typing);
            d.execute();
        });
    }

    /// Calls `handler(payload, message)` for every message of one type; returns the
    /// function that unsubscribes it.
    #[wasm_bindgen(skip_typescript)]
    pub fn on(&self, kind: String, handler: Function) -> Function {
        self.add_subscription(Topic::Type(kind), handler)
    }

    /// Calls `handler(message)` for every message of a known type.
    #[wasm_bindgen(js_name = onAny, unchecked_return_type = "() => void")]
    pub fn on_any(
        &self,
        #[wasm_bindgen(unchecked_param_type = "(message: ServerMessage) => void")]
        handler: Function,
    ) -> Function {
        self.add_subscription(Topic::Any, handler)
    }

    /// Calls `handler(message)` for messages of a type this client does not know (sent
    /// by a newer server).
    #[wasm_bindgen(js_name = onUnknown, unchecked_return_type = "() => void")]
    pub fn on_unknown(
        &self,
        #[wasm_bindgen(
            unchecked_param_type = "(message: { type: string; payload: unknown }) => void"
        )]
        handler: Function,
    ) -> Function {
        self.add_subscription(Topic::Unknown, handler)
    }

    /// Calls `listener()` whenever the snapshot changes; for `useSyncExternalStore`.
    #[wasm_bindgen(js_name = subscribe, unchecked_return_type = "() => void")]
    pub fn subscribe_state(
        &self,
        #[wasm_bindgen(unchecked_param_type = "() => void")] listener: Function,
    ) -> Function {
        self.add_subscription(Topic::State, listener)
    }

    /// The connection snapshot: the same object until something changes.
    #[wasm_bindgen(js_name = getSnapshot, unchecked_return_type = "ConnectionSnapshot")]
    pub fn get_snapshot(&self) -> JsValue {
        with(&self.driver, Driver::snapshot).unwrap_or(JsValue::NULL)
    }
}
