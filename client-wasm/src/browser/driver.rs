//! The browser driver: carries out the core's commands with the WebSocket, one timer
//! and the page's events, and feeds it what happens.
//!
//! JS callbacks (message handlers, promise settlements, state listeners) never run
//! while the driver is borrowed: they are queued as [`Deferred`] and run after, so a
//! handler may call back into the client.

use std::cell::RefCell;
use std::rc::{Rc, Weak};

use js_sys::{Function, Object};
use relaywire_protocol::{CLIENT_SUBPROTOCOLS, CloseCode, Wire};
use wasm_bindgen::prelude::*;

use super::errors::{client_error, describe, error};
use super::fields::JsFields;
use super::js::{self, Socket, SocketEvent, field, get, get_string};
use super::options::{self, BrowserOptions};
use super::snapshot;
use crate::core::{
    self, Command, Core, Event, Fields as _, Frame, Millis, Rejection, SocketId, TokenOutcome,
};

/// The core's clock: milliseconds since the page started.
pub(crate) fn now() -> Millis {
    js::performance_now().max(0.0) as Millis
}

/// What a subscription listens to.
#[derive(Debug, PartialEq)]
pub(crate) enum Topic {
    /// Messages of one known type.
    Type(String),
    /// Every message.
    Any,
    /// Messages of types this client does not know.
    Unknown,
    /// Snapshot changes.
    State,
}

#[derive(Debug)]
struct Subscription {
    id: u32,
    topic: Topic,
    handler: Function,
}

/// A JS call to make once the driver is no longer borrowed.
#[derive(Debug)]
pub(crate) enum Deferred {
    /// `handler(first, second)`.
    Call(Function, JsValue, JsValue),
    /// Every state listener.
    Notify,
    /// `getToken({ forceRefresh })` for fetch number `fetch`.
    FetchToken { fetch: u32, force_refresh: bool },
}

/// The closures the page and the sockets call; they live as long as the client and
/// reach it through a weak reference.
struct Callbacks {
    open: Closure<dyn FnMut(SocketEvent)>,
    message: Closure<dyn FnMut(SocketEvent)>,
    close: Closure<dyn FnMut(SocketEvent)>,
    timer: Closure<dyn FnMut()>,
    online: Closure<dyn FnMut()>,
    offline: Closure<dyn FnMut()>,
    visibility: Closure<dyn FnMut()>,
    notify: Closure<dyn FnMut()>,
    flush: Closure<dyn FnMut()>,
}

/// A received message: its type, the parsed object and its payload, as the handlers
/// and the requests it settles get them, and the acknowledgement it carried (protocol
/// 3: the sender's copy of what its message stored).
#[derive(Debug, Clone)]
pub(crate) struct Received {
    kind: Option<String>,
    message: JsValue,
    payload: JsValue,
    ack: JsValue,
}

/// A pending `request()`: its id and its promise's settle functions.
struct PendingRequest {
    id: String,
    resolve: Function,
    reject: Function,
}

pub(crate) struct Driver {
    pub(crate) core: Core<JsValue, Received>,
    pub(crate) options: BrowserOptions,
    socket: Option<(SocketId, Socket)>,
    /// The socket's server speaks protocol 3: frames sent in one task travel as one
    /// batch, in a microtask.
    batches: bool,
    /// Frames waiting for that microtask.
    outgoing: Vec<JsValue>,
    flush_queued: bool,
    /// The WebSocket constructor, found by `connect()`.
    websocket: Option<Function>,
    timer: Option<(Millis, JsValue)>,
    callbacks: Option<Callbacks>,
    listening: bool,
    subscriptions: Vec<Subscription>,
    next_subscription: u32,
    requests: Vec<PendingRequest>,
    snapshot: Option<(u64, JsValue)>,
    /// The snapshot's user and lists, reused while they stay the same.
    snapshot_parts: snapshot::Parts,
    /// A microtask will tell the state listeners: changes made in one go (a loop of
    /// `send` calls) reach them once.
    notify_queued: bool,
    pub(crate) deferred: Vec<Deferred>,
}

/// Runs `f` on the driver, then the JS callbacks it queued. Returns `None` when the
/// driver is already borrowed (a callback re-entered at a point that cannot happen).
pub(crate) fn with<R>(driver: &Rc<RefCell<Driver>>, f: impl FnOnce(&mut Driver) -> R) -> Option<R> {
    let (result, deferred) = {
        let Ok(mut borrowed) = driver.try_borrow_mut() else {
            return None;
        };
        let result = f(&mut borrowed);
        (result, std::mem::take(&mut borrowed.deferred))
    };
    run_deferred(driver, deferred);
    Some(result)
}

fn run_deferred(driver: &Rc<RefCell<Driver>>, deferred: Vec<Deferred>) {
    for call in deferred {
        match call {
            Deferred::Call(function, first, second) => {
                if let Err(err) = function.call2(&JsValue::UNDEFINED, &first, &second) {
                    js::console_error("relaywire: a handler threw", &err);
                }
            }
            Deferred::Notify => {
                let listeners: Vec<Function> = match driver.try_borrow() {
                    Ok(d) => d
                        .subscriptions
                        .iter()
                        .filter(|s| s.topic == Topic::State)
                        .map(|s| s.handler.clone())
                        .collect(),
                    Err(_) => continue,
                };
                for listener in listeners {
                    if let Err(err) = listener.call0(&JsValue::UNDEFINED) {
                        js::console_error("relaywire: a state listener threw", &err);
                    }
                }
            }
            Deferred::FetchToken {
                fetch,
                force_refresh,
            } => fetch_token(driver, fetch, force_refresh),
        }
    }
}

/// Calls `getToken({ forceRefresh })` and reports the outcome to the core.
fn fetch_token(driver: &Rc<RefCell<Driver>>, fetch: u32, force_refresh: bool) {
    let Some(get_token) = driver
        .try_borrow()
        .ok()
        .and_then(|d| d.options.get_token.clone())
    else {
        return;
    };
    let context = JsValue::from(Object::new());
    js::put(&context, "forceRefresh", &JsValue::from_bool(force_refresh));
    let weak = Rc::downgrade(driver);
    let report = move |weak: &Weak<RefCell<Driver>>, value: Result<JsValue, ()>| {
        if let Some(driver) = weak.upgrade() {
            with(&driver, |d| d.token_fetched(fetch, value));
        }
    };
    let on_token = {
        let weak = weak.clone();
        Closure::once_into_js(move |value: JsValue| report(&weak, Ok(value)))
    };
    let on_failure = Closure::once_into_js(move |_: JsValue| report(&weak, Err(())));
    match get_token.call1(&JsValue::UNDEFINED, &context) {
        Ok(value) => {
            js::promise_resolve(&value).then(&on_token, &on_failure);
        }
        Err(err) => {
            js::console_error("relaywire: getToken threw", &err);
            if let Some(on_failure) = on_failure.dyn_ref::<Function>() {
                let _ = on_failure.call1(&JsValue::UNDEFINED, &err);
            }
        }
    }
}

impl Driver {
    pub(crate) fn new(core: core::Options, options: BrowserOptions) -> Rc<RefCell<Driver>> {
        let driver = Rc::new(RefCell::new(Driver {
            core: Core::new(core),
            options,
            socket: None,
            batches: false,
            outgoing: Vec::new(),
            flush_queued: false,
            timer: None,
            callbacks: None,
            websocket: None,
            listening: false,
            subscriptions: Vec::new(),
            next_subscription: 0,
            requests: Vec::new(),
            snapshot: None,
            snapshot_parts: snapshot::Parts::default(),
            notify_queued: false,
            deferred: Vec::new(),
        }));
        let weak = Rc::downgrade(&driver);
        let event = |weak: &Weak<RefCell<Driver>>, f: fn(&mut Driver, SocketEvent)| {
            let weak = weak.clone();
            Closure::new(move |e: SocketEvent| {
                if let Some(driver) = weak.upgrade() {
                    with(&driver, |d| f(d, e));
                }
            })
        };
        let page = |weak: &Weak<RefCell<Driver>>, f: fn(&mut Driver)| {
            let weak = weak.clone();
            Closure::new(move || {
                if let Some(driver) = weak.upgrade() {
                    with(&driver, f);
                }
            })
        };
        let callbacks = Callbacks {
            open: event(&weak, Driver::on_open),
            message: event(&weak, Driver::on_message),
            close: event(&weak, Driver::on_close),
            timer: page(&weak, |d| {
                d.timer = None;
                d.handle(Event::Timer);
            }),
            online: page(&weak, |d| d.handle(Event::Online)),
            offline: page(&weak, |d| d.handle(Event::Offline)),
            visibility: page(&weak, |d| {
                if js::page_visible() {
                    d.handle(Event::Visible);
                }
            }),
            notify: page(&weak, |d| {
                d.notify_queued = false;
                d.deferred.push(Deferred::Notify);
            }),
            flush: page(&weak, |d| {
                d.flush_queued = false;
                d.flush();
            }),
        };
        if let Ok(mut d) = driver.try_borrow_mut() {
            d.callbacks = Some(callbacks);
        }
        driver
    }

    /// Feeds the core an event, then carries out what it asks.
    pub(crate) fn handle(&mut self, event: Event<'_, Received>) {
        self.core.handle(now(), event);
        self.execute();
    }

    /// Carries out every queued command, then re-arms the timer.
    pub(crate) fn execute(&mut self) {
        let mut publish = false;
        while let Some(command) = self.core.poll_command() {
            match command {
                Command::Open { socket, params } => self.open(socket, &params),
                Command::Send { socket, frame } => self.send(socket, frame),
                Command::CloseSocket {
                    socket,
                    code,
                    reason,
                } => {
                    if self.socket.as_ref().is_some_and(|(id, _)| *id == socket) {
                        self.drop_socket(code, reason);
                    }
                }
                Command::FetchToken {
                    fetch,
                    force_refresh,
                } => self.deferred.push(Deferred::FetchToken {
                    fetch,
                    force_refresh,
                }),
                Command::Deliver { message, known } => self.dispatch(&message, known),
                Command::Resolve { id, reply } => {
                    if let Some(request) = self.take_request(&id) {
                        // An `ack`'s payload, or the acknowledgement an event carried:
                        // `{ id, messageId }` either way.
                        let ack = if reply.ack.is_object() {
                            reply.ack
                        } else {
                            reply.payload
                        };
                        self.deferred.push(Deferred::Call(
                            request.resolve,
                            ack,
                            JsValue::UNDEFINED,
                        ));
                    }
                }
                Command::Reject { id, reason } => {
                    if let Some(request) = self.take_request(&id) {
                        let error = match reason {
                            Rejection::Client(code) => client_error(code, describe(code)),
                            Rejection::Server { code, reply } => {
                                let message =
                                    get_string(&reply.payload, "message").unwrap_or_default();
                                let error = error(code.as_str(), &message);
                                let details = get(&reply.payload, "details");
                                if !details.is_undefined() {
                                    js::put(&error, "details", &details);
                                }
                                error
                            }
                        };
                        self.deferred.push(Deferred::Call(
                            request.reject,
                            error,
                            JsValue::UNDEFINED,
                        ));
                    }
                }
                Command::Publish => publish = true,
            }
        }
        if publish {
            if self.options.debug {
                js::console_debug(
                    "relaywire:",
                    &JsValue::from_str(self.core.status().as_str()),
                );
            }
            if !self.notify_queued
                && let Some(callbacks) = &self.callbacks
            {
                self.notify_queued = true;
                js::queue_microtask(callbacks.notify.as_ref().unchecked_ref());
            }
        }
        self.arm_timer();
    }

    fn take_request(&mut self, id: &str) -> Option<PendingRequest> {
        let index = self.requests.iter().position(|r| r.id == id)?;
        Some(self.requests.swap_remove(index))
    }

    fn arm_timer(&mut self) {
        let next = self.core.next_deadline();
        if self.timer.as_ref().map(|(at, _)| *at) == next {
            return;
        }
        if let Some((_, handle)) = self.timer.take() {
            js::clear_timeout(&handle);
        }
        let (Some(at), Some(callbacks)) = (next, &self.callbacks) else {
            return;
        };
        let delay = at.saturating_sub(now()) as f64;
        let handle = js::set_timeout(callbacks.timer.as_ref().unchecked_ref(), delay);
        self.timer = Some((at, handle));
    }

    /// Checks what connecting needs (see [`options::connectable`]) and keeps the
    /// WebSocket constructor.
    pub(crate) fn prepare(&mut self) -> Result<(), JsValue> {
        self.websocket = Some(options::connectable(&self.options)?);
        Ok(())
    }

    /// The server's URL with the application's `params`, then the core's.
    fn url(&self, core_params: &[(&'static str, String)]) -> Option<String> {
        let url = options::resolve_url(&self.options.url)?;
        let params = if let Ok(function) = self.options.params.clone().dyn_into::<Function>() {
            function
                .call0(&JsValue::UNDEFINED)
                .unwrap_or(JsValue::UNDEFINED)
        } else {
            self.options.params.clone()
        };
        let search = url.search_params();
        if params.is_object() {
            for entry in Object::entries(&Object::from(params)).iter() {
                let entry = js_sys::Array::from(&entry);
                if let (Some(key), Some(value)) =
                    (entry.get(0).as_string(), entry.get(1).as_string())
                {
                    search.set(&key, &value);
                }
            }
        }
        for (key, value) in core_params {
            search.set(key, value);
        }
        Some(url.href())
    }

    fn open(&mut self, socket: SocketId, params: &[(&'static str, String)]) {
        self.drop_socket(CloseCode::Normal, "replaced");
        let opened = match (&self.websocket, self.url(params)) {
            (Some(constructor), Some(url)) => {
                let protocols: js_sys::Array = CLIENT_SUBPROTOCOLS
                    .iter()
                    .copied()
                    .map(JsValue::from_str)
                    .collect();
                let args = js_sys::Array::of2(&JsValue::from_str(&url), &protocols);
                js_sys::Reflect::construct(constructor, &args).ok()
            }
            _ => None,
        };
        let (Some(ws), Some(callbacks)) = (opened, &self.callbacks) else {
            // The URL was checked up front; the browser refused anyway. Retry later.
            let code = CloseCode::Abnormal;
            self.core.handle(now(), Event::Closed { socket, code });
            return;
        };
        let ws: Socket = ws.unchecked_into();
        ws.set_onopen(callbacks.open.as_ref());
        ws.set_onmessage(callbacks.message.as_ref());
        ws.set_onclose(callbacks.close.as_ref());
        self.socket = Some((socket, ws));
    }

    fn send(&mut self, socket: SocketId, frame: Frame<JsValue>) {
        let Some((current, ws)) = &self.socket else {
            return;
        };
        if *current != socket {
            return;
        }
        let data = match frame {
            Frame::App(data) => data,
            Frame::Control(text) => JsValue::from_str(&text),
        };
        if !self.batches {
            // The core sends only on an open socket; a closing one drops data silently,
            // which the outbox and the heartbeat cover.
            let _ = ws.send(&data);
            return;
        }
        self.outgoing.push(data);
        if !self.flush_queued
            && let Some(callbacks) = &self.callbacks
        {
            self.flush_queued = true;
            js::queue_microtask(callbacks.flush.as_ref().unchecked_ref());
        }
    }

    /// Sends the frames of this task, as few batch frames as fit the server's limit
    /// (counting three bytes per UTF-16 unit, the most one can take).
    fn flush(&mut self) {
        let frames = std::mem::take(&mut self.outgoing);
        let Some((_, ws)) = &self.socket else {
            return;
        };
        let max = self.core.max_message_bytes();
        let batch = js_sys::Array::new();
        let mut size = 2;
        let send = |batch: &js_sys::Array| {
            let frame = match batch.length() {
                0 => return,
                1 => batch.get(0),
                _ => JsValue::from(
                    js_sys::JsString::from("[")
                        .concat(&batch.join(","))
                        .concat(&JsValue::from_str("]")),
                ),
            };
            let _ = ws.send(&frame);
        };
        for frame in frames {
            let bytes = frame
                .dyn_ref::<js_sys::JsString>()
                .map_or(0, |text| text.length() as usize * 3);
            if batch.length() > 0 && size + 1 + bytes > max {
                send(&batch);
                batch.set_length(0);
                size = 2;
            }
            size += bytes + 1;
            batch.push(&frame);
        }
        send(&batch);
    }

    /// Detaches and closes the current socket; no event of it reaches the core again.
    fn drop_socket(&mut self, code: CloseCode, reason: &str) {
        // What this task sent on it goes before the close.
        self.flush();
        self.batches = false;
        if let Some((_, ws)) = self.socket.take() {
            ws.set_onopen(&JsValue::NULL);
            ws.set_onmessage(&JsValue::NULL);
            ws.set_onclose(&JsValue::NULL);
            let _ = ws.close(code.code(), reason);
        }
    }

    /// The current socket's id if `event` comes from it.
    fn source(&self, event: &SocketEvent) -> Option<SocketId> {
        let (id, ws) = self.socket.as_ref()?;
        Object::is(&event.target(), ws).then_some(*id)
    }

    fn on_open(&mut self, event: SocketEvent) {
        if let Some(socket) = self.source(&event) {
            let chosen = self
                .socket
                .as_ref()
                .and_then(|(_, ws)| ws.protocol().as_string());
            // No subprotocol reads as "", which names no version: version 2.
            let wire = Wire::negotiated(chosen.as_deref());
            self.batches = wire.batches();
            self.handle(Event::Opened(socket, wire));
        }
    }

    fn on_close(&mut self, event: SocketEvent) {
        if let Some(socket) = self.source(&event) {
            let code = event.code().map_or(CloseCode::Abnormal, CloseCode::from);
            self.socket = None;
            self.handle(Event::Closed { socket, code });
        }
    }

    fn on_message(&mut self, event: SocketEvent) {
        let Some(socket) = self.source(&event) else {
            return;
        };
        let data = event.data();
        let parsed = if data.is_string() {
            js::json_parse(&data).ok().filter(JsValue::is_object)
        } else {
            None
        };
        match parsed {
            // A batch (protocol 3): its messages in order.
            Some(batch) if js_sys::Array::is_array(&batch) => {
                for message in js_sys::Array::from(&batch).iter() {
                    self.receive(socket, message);
                }
            }
            Some(message) => self.receive(socket, message),
            // Not a message: it still proves the connection alive.
            None => self.handle(Event::Traffic { socket }),
        }
    }

    /// Feeds the core one parsed message.
    fn receive(&mut self, socket: SocketId, message: JsValue) {
        if !message.is_object() {
            self.handle(Event::Traffic { socket });
            return;
        }
        let kind = field(&message, &js::TYPE).as_string();
        let payload = field(&message, &js::PAYLOAD);
        let ack = field(&message, &js::ACK);
        // Most messages carry none: reading a field of `undefined` would throw.
        let answers = if ack.is_object() {
            JsFields(&ack).text(core::Key::Id)
        } else {
            None
        };
        let inbound = core::read(self.core.descriptor(), kind.as_deref(), &JsFields(&payload))
            .answering(answers);
        let message = Received {
            kind,
            message,
            payload,
            ack,
        };
        self.handle(Event::Message {
            socket,
            inbound,
            message,
        });
    }

    /// Queues the application's handlers for a message.
    fn dispatch(&mut self, received: &Received, known: bool) {
        for subscription in &self.subscriptions {
            let call = match &subscription.topic {
                Topic::Type(t) => known && received.kind.as_deref() == Some(t.as_str()),
                Topic::Any => known,
                Topic::Unknown => !known,
                Topic::State => false,
            };
            if call {
                let first = if matches!(subscription.topic, Topic::Type(_)) {
                    received.payload.clone()
                } else {
                    received.message.clone()
                };
                self.deferred.push(Deferred::Call(
                    subscription.handler.clone(),
                    first,
                    received.message.clone(),
                ));
            }
        }
    }

    fn token_fetched(&mut self, fetch: u32, value: Result<JsValue, ()>) {
        let token = value.map(|value| value.as_string());
        let outcome = TokenOutcome::from_fetch(
            token.as_ref().map(Option::as_deref).map_err(|_| ()),
            now(),
            js::date_now().max(0.0) as u64,
        );
        self.handle(Event::Token { fetch, outcome });
    }

    /// Starts listening to the page's online, offline and visibility events.
    pub(crate) fn listen(&mut self, on: bool) {
        if self.listening == on {
            return;
        }
        let Some(callbacks) = &self.callbacks else {
            return;
        };
        self.listening = on;
        let online = callbacks.online.as_ref();
        let offline = callbacks.offline.as_ref();
        let visibility = callbacks.visibility.as_ref();
        // Where there is no page (Node, a worker) the targets or their methods are
        // missing, and there is nothing to listen to.
        let window = js_sys::global().into();
        js::listener(&window, "online", online, on);
        js::listener(&window, "offline", offline, on);
        js::listener(&js::global("document"), "visibilitychange", visibility, on);
    }

    /// Stops everything: the socket, the timer and the page listeners.
    pub(crate) fn shut_down(&mut self) {
        self.drop_socket(CloseCode::Normal, "closed");
        if let Some((_, handle)) = self.timer.take() {
            js::clear_timeout(&handle);
        }
        self.listen(false);
    }

    pub(crate) fn subscribe(&mut self, topic: Topic, handler: Function) -> u32 {
        self.next_subscription += 1;
        let id = self.next_subscription;
        self.subscriptions.push(Subscription { id, topic, handler });
        id
    }

    pub(crate) fn unsubscribe(&mut self, id: u32) {
        self.subscriptions.retain(|s| s.id != id);
    }

    pub(crate) fn add_request(&mut self, id: String, resolve: Function, reject: Function) {
        self.requests.push(PendingRequest {
            id,
            resolve,
            reject,
        });
    }

    /// The snapshot, rebuilt only when the core's version changed.
    pub(crate) fn snapshot(&mut self) -> JsValue {
        let version = self.core.version();
        if let Some((cached, snapshot)) = &self.snapshot
            && *cached == version
        {
            return snapshot.clone();
        }
        let snapshot = snapshot::build(&self.core, now(), &mut self.snapshot_parts);
        self.snapshot = Some((version, snapshot.clone()));
        snapshot
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // Freed while still connected (the application dropped the client without
        // closing it): nothing may call into freed closures afterwards.
        self.shut_down();
        // A queued microtask cannot be cancelled: its closure must outlive the client.
        // It finds the client gone and does nothing.
        if let Some(callbacks) = self.callbacks.take() {
            if self.notify_queued {
                callbacks.notify.forget();
            }
            if self.flush_queued {
                callbacks.flush.forget();
            }
        }
    }
}
