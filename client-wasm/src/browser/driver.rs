//! The browser driver: carries out the core's commands with the WebSocket, one timer
//! and the page's events, and feeds it what happens.
//!
//! JS callbacks (message handlers, promise settlements, state listeners) never run
//! while the driver is borrowed: they are queued as [`Deferred`] and run after, so a
//! handler may call back into the client.

use std::cell::RefCell;
use std::rc::{Rc, Weak};

use js_sys::{Function, Object};
use relaywire_protocol::{
    AUTH_BY_MESSAGE, ClientErrorCode, RESUME_PARAM, SUBPROTOCOL, ServerMessage,
};
use wasm_bindgen::prelude::*;

use super::errors::{client_error, describe, error};
use super::js::{self, Socket, SocketEvent, field, get, get_number, get_string, get_strings};
use super::options::BrowserOptions;
use super::snapshot;
use crate::core::{
    Auth, Command, Core, Event, Frame, Inbound, Millis, Rejection, Session, SocketId, TokenOutcome,
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
}

/// A message decoded just enough for the core.
enum Decoded {
    Connected(Session),
    Ack(String),
    Error(Option<String>, String),
    Presence(String, bool),
    Other,
}

impl Decoded {
    fn read(kind: Option<&str>, payload: &JsValue) -> Decoded {
        match kind {
            Some("connected") => Decoded::Connected(Session {
                user_id: get_string(payload, "userId").unwrap_or_default(),
                user_name: get_string(payload, "userName"),
                chat_ids: get_strings(payload, "chatIds"),
                online_user_ids: get_strings(payload, "onlineUserIds"),
                heartbeat_interval_ms: get_number(payload, "heartbeatIntervalMs").map(|n| n as u32),
                typing_timeout_ms: get_number(payload, "typingTimeoutMs").map(|n| n as u32),
                max_message_bytes: get_number(payload, "maxMessageBytes").map(|n| n as u32),
                seq: get_number(payload, "seq").map(|n| n as u64),
            }),
            Some("ack") => field(payload, &js::ID)
                .as_string()
                .map_or(Decoded::Other, Decoded::Ack),
            Some("error") => Decoded::Error(
                field(payload, &js::ID).as_string(),
                field(payload, &js::CODE).as_string().unwrap_or_default(),
            ),
            Some("user:online") => match (
                field(payload, &js::USER_ID).as_string(),
                field(payload, &js::ONLINE).as_bool(),
            ) {
                (Some(user_id), Some(online)) => Decoded::Presence(user_id, online),
                _ => Decoded::Other,
            },
            _ => Decoded::Other,
        }
    }

    fn inbound(&self) -> Inbound<'_> {
        match self {
            Decoded::Connected(session) => Inbound::Connected(session.clone()),
            Decoded::Ack(id) => Inbound::Ack { id },
            Decoded::Error(id, code) => Inbound::Error {
                id: id.as_deref(),
                code,
            },
            Decoded::Presence(user_id, online) => Inbound::Presence {
                user_id,
                online: *online,
            },
            Decoded::Other => Inbound::Other,
        }
    }
}

/// A pending `request()`: its id and its promise's settle functions.
struct PendingRequest {
    id: String,
    resolve: Function,
    reject: Function,
}

pub(crate) struct Driver {
    pub(crate) core: Core<JsValue>,
    pub(crate) options: BrowserOptions,
    socket: Option<(SocketId, Socket)>,
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
    /// The payload of the message being handled: what a resolved request gets.
    current_payload: JsValue,
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
    let report = move |weak: &Weak<RefCell<Driver>>, value: Option<JsValue>| {
        if let Some(driver) = weak.upgrade() {
            with(&driver, |d| d.token_fetched(fetch, value));
        }
    };
    let on_token = {
        let weak = weak.clone();
        Closure::once_into_js(move |value: JsValue| report(&weak, Some(value)))
    };
    let on_failure = Closure::once_into_js(move |_: JsValue| report(&weak, None));
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

/// When a JWT expires, read from its `exp` claim, on the core's clock.
fn jwt_expiry(token: &str) -> Option<Millis> {
    // The claims are the second of three dot-separated parts; no slicing that could
    // panic, so the browser build stays free of panic machinery.
    let mut base64: String = token
        .chars()
        .skip_while(|c| *c != '.')
        .skip(1)
        .take_while(|c| *c != '.')
        .map(|c| match c {
            '-' => '+',
            '_' => '/',
            c => c,
        })
        .collect();
    while !base64.len().is_multiple_of(4) {
        base64.push('=');
    }
    let json = js::atob(&base64).ok()?;
    let claims = js::json_parse(&JsValue::from_str(&json)).ok()?;
    let exp = get_number(&claims, "exp")?;
    let left = exp * 1_000.0 - js::date_now();
    Some(now().saturating_add(left.max(0.0) as Millis))
}

impl Driver {
    pub(crate) fn new(options: BrowserOptions) -> Rc<RefCell<Driver>> {
        let driver = Rc::new(RefCell::new(Driver {
            core: Core::new(options.core.clone()),
            options,
            socket: None,
            timer: None,
            callbacks: None,
            listening: false,
            subscriptions: Vec::new(),
            next_subscription: 0,
            requests: Vec::new(),
            snapshot: None,
            snapshot_parts: snapshot::Parts::default(),
            notify_queued: false,
            deferred: Vec::new(),
            current_payload: JsValue::UNDEFINED,
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
        };
        if let Ok(mut d) = driver.try_borrow_mut() {
            d.callbacks = Some(callbacks);
        }
        driver
    }

    /// Feeds the core an event, then carries out what it asks.
    pub(crate) fn handle(&mut self, event: Event<'_>) {
        self.core.handle(now(), event);
        self.execute();
    }

    /// Carries out every queued command, then re-arms the timer.
    pub(crate) fn execute(&mut self) {
        let mut publish = false;
        while let Some(command) = self.core.poll_command() {
            match command {
                Command::Open {
                    socket,
                    token,
                    resume_after,
                } => self.open(socket, token.as_deref(), resume_after),
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
                Command::Resolve { id } => {
                    if let Some(request) = self.take_request(&id) {
                        let payload = self.current_payload.clone();
                        self.deferred.push(Deferred::Call(
                            request.resolve,
                            payload,
                            JsValue::UNDEFINED,
                        ));
                    }
                }
                Command::Reject { id, reason } => {
                    if let Some(request) = self.take_request(&id) {
                        let error = match reason {
                            Rejection::Client(code) => client_error(code, describe(code)),
                            Rejection::Server(code) => {
                                let message = get_string(&self.current_payload, "message")
                                    .unwrap_or_default();
                                let error = error(&code, &message);
                                let details = get(&self.current_payload, "details");
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

    fn url(&self, token: Option<&str>, resume_after: Option<u64>) -> String {
        let Some(url) = super::options::resolve_url(&self.options.url) else {
            return self.options.url.clone();
        };
        let params = if let Ok(function) = self.options.params.clone().dyn_into::<Function>() {
            function
                .call0(&JsValue::UNDEFINED)
                .unwrap_or(JsValue::UNDEFINED)
        } else {
            self.options.params.clone()
        };
        if params.is_object() {
            let search = url.search_params();
            for entry in Object::entries(&Object::from(params)).iter() {
                let entry = js_sys::Array::from(&entry);
                if let (Some(key), Some(value)) =
                    (entry.get(0).as_string(), entry.get(1).as_string())
                {
                    search.set(&key, &value);
                }
            }
        }
        if let Some(seq) = resume_after {
            url.search_params()
                .set(RESUME_PARAM, &crate::core::decimal(seq));
        }
        if let Some(token) = token {
            url.search_params().set("token", token);
        } else if self.options.core.auth != Auth::Cookie {
            // The token follows in the first message; cookies must not stand in for it.
            let (key, value) = AUTH_BY_MESSAGE;
            url.search_params().set(key, value);
        }
        url.href()
    }

    fn open(&mut self, socket: SocketId, token: Option<&str>, resume_after: Option<u64>) {
        self.drop_socket(1000, "replaced");
        let url = self.url(token, resume_after);
        let (Ok(ws), Some(callbacks)) = (Socket::open(&url, SUBPROTOCOL), &self.callbacks) else {
            // The URL was checked up front; the browser refused anyway. Retry later.
            self.core
                .handle(now(), Event::Closed { socket, code: 1006 });
            return;
        };
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
        // The core sends only on an open socket; a closing one drops data silently,
        // which the outbox and the heartbeat cover.
        let _ = ws.send(&data);
    }

    /// Detaches and closes the current socket; no event of it reaches the core again.
    fn drop_socket(&mut self, code: u16, reason: &str) {
        if let Some((_, ws)) = self.socket.take() {
            ws.set_onopen(&JsValue::NULL);
            ws.set_onmessage(&JsValue::NULL);
            ws.set_onclose(&JsValue::NULL);
            let _ = ws.close(code, reason);
        }
    }

    /// The current socket's id if `event` comes from it.
    fn source(&self, event: &SocketEvent) -> Option<SocketId> {
        let (id, ws) = self.socket.as_ref()?;
        Object::is(&event.target(), ws).then_some(*id)
    }

    fn on_open(&mut self, event: SocketEvent) {
        if let Some(socket) = self.source(&event) {
            self.handle(Event::Opened(socket));
        }
    }

    fn on_close(&mut self, event: SocketEvent) {
        if let Some(socket) = self.source(&event) {
            let code = event.code().unwrap_or(1006);
            self.socket = None;
            self.handle(Event::Closed { socket, code });
        }
    }

    fn on_message(&mut self, event: SocketEvent) {
        let Some(socket) = self.source(&event) else {
            return;
        };
        let data = event.data();
        if !data.is_string() {
            return;
        }
        let Ok(message) = js::json_parse(&data) else {
            // Not JSON: it still proves the connection alive.
            self.handle(Event::Message {
                socket,
                inbound: Inbound::Other,
            });
            return;
        };
        let kind = field(&message, &js::TYPE).as_string();
        let payload = field(&message, &js::PAYLOAD);
        let decoded = Decoded::read(kind.as_deref(), &payload);
        self.current_payload = payload.clone();
        self.handle(Event::Message {
            socket,
            inbound: decoded.inbound(),
        });
        self.current_payload = JsValue::UNDEFINED;
        // A replayed event this client saw already is not handed over twice.
        let numbered = kind
            .as_deref()
            .is_some_and(|k| ServerMessage::NUMBERED_TYPES.contains(&k));
        if numbered
            && let Some(seq) = field(&payload, &js::SEQ).as_f64()
            && !self.core.admit(seq as u64)
        {
            return;
        }
        self.dispatch(kind.as_deref(), &payload, &message);
    }

    /// Queues the application's handlers for a message.
    fn dispatch(&mut self, kind: Option<&str>, payload: &JsValue, message: &JsValue) {
        let known = kind.is_some_and(|k| ServerMessage::TYPES.contains(&k));
        for subscription in &self.subscriptions {
            let call = match &subscription.topic {
                Topic::Type(t) => known && kind == Some(t.as_str()),
                Topic::Any => known,
                Topic::Unknown => !known,
                Topic::State => false,
            };
            if call {
                let first = if matches!(subscription.topic, Topic::Type(_)) {
                    payload.clone()
                } else {
                    message.clone()
                };
                self.deferred.push(Deferred::Call(
                    subscription.handler.clone(),
                    first,
                    message.clone(),
                ));
            }
        }
    }

    fn token_fetched(&mut self, fetch: u32, value: Option<JsValue>) {
        let token = value
            .as_ref()
            .and_then(JsValue::as_string)
            .filter(|t| !t.is_empty());
        let outcome = match (&value, &token) {
            (None, _) => TokenOutcome::Failed,
            (Some(_), Some(token)) => TokenOutcome::Token {
                token,
                expires_at: jwt_expiry(token),
            },
            (Some(_), None) => TokenOutcome::SignedOut,
        };
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
        if on {
            js::add_global_listener("online", online);
            js::add_global_listener("offline", offline);
        } else {
            js::remove_global_listener("online", online);
            js::remove_global_listener("offline", offline);
        }
        js::visibility_listener(visibility, on);
    }

    /// Stops everything: the socket, the timer and the page listeners.
    pub(crate) fn shut_down(&mut self) {
        self.drop_socket(1000, "closed");
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

    /// Rejects a request that the core refused before queueing it.
    pub(crate) fn refuse(&mut self, id: &str, code: ClientErrorCode) {
        self.reject_with(id, client_error(code, describe(code)));
    }

    /// Rejects a request with `error`.
    pub(crate) fn reject_with(&mut self, id: &str, error: JsValue) {
        if let Some(request) = self.take_request(id) {
            self.deferred
                .push(Deferred::Call(request.reject, error, JsValue::UNDEFINED));
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // Freed while still connected (the application dropped the client without
        // closing it): nothing may call into freed closures afterwards.
        self.shut_down();
        // A queued microtask cannot be cancelled: its closure must outlive the client.
        // It finds the client gone and does nothing.
        if self.notify_queued
            && let Some(callbacks) = self.callbacks.take()
        {
            callbacks.notify.forget();
        }
    }
}
