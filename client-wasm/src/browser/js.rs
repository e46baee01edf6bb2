//! The few browser APIs the client uses, bound directly: frames pass through as JS
//! strings (never copied into wasm memory) and the build needs no web-sys.

use js_sys::{Function, JsString};
use wasm_bindgen::JsThreadLocal;
use wasm_bindgen::prelude::*;

// Property names read or written for every message and every snapshot. As static
// strings they live in the JS glue from the start: no string crosses from wasm per use.
#[wasm_bindgen]
// rustfmt would drop the values (rustfmt#6267).
#[rustfmt::skip]
extern "C" {
    #[wasm_bindgen(thread_local_v2, static_string)]
    pub(crate) static TYPE: JsString = "type";
    #[wasm_bindgen(thread_local_v2, static_string)]
    pub(crate) static PAYLOAD: JsString = "payload";
    #[wasm_bindgen(thread_local_v2, static_string)]
    pub(crate) static ACK: JsString = "ack";
    #[wasm_bindgen(thread_local_v2, static_string)]
    pub(crate) static ID: JsString = "id";
    #[wasm_bindgen(thread_local_v2, static_string)]
    pub(crate) static CODE: JsString = "code";
    #[wasm_bindgen(thread_local_v2, static_string)]
    pub(crate) static SEQ: JsString = "seq";
    #[wasm_bindgen(thread_local_v2, static_string)]
    pub(crate) static USER_ID: JsString = "userId";
    #[wasm_bindgen(thread_local_v2, static_string)]
    pub(crate) static ONLINE: JsString = "online";
    #[wasm_bindgen(thread_local_v2, static_string)]
    pub(crate) static STATUS: JsString = "status";
    #[wasm_bindgen(thread_local_v2, static_string)]
    pub(crate) static ATTEMPT: JsString = "attempt";
    #[wasm_bindgen(thread_local_v2, static_string)]
    pub(crate) static NEXT_RETRY_AT: JsString = "nextRetryAt";
    #[wasm_bindgen(thread_local_v2, static_string)]
    pub(crate) static LAST_ERROR: JsString = "lastError";
    #[wasm_bindgen(thread_local_v2, static_string)]
    pub(crate) static USER: JsString = "user";
    #[wasm_bindgen(thread_local_v2, static_string)]
    pub(crate) static ROOMS: JsString = "rooms";
    #[wasm_bindgen(thread_local_v2, static_string)]
    pub(crate) static ONLINE_USER_IDS: JsString = "onlineUserIds";
    #[wasm_bindgen(thread_local_v2, static_string)]
    pub(crate) static PENDING: JsString = "pending";
}

/// A property name bound as a static string.
pub(crate) type Key = JsThreadLocal<JsString>;

/// `target[key]`, `undefined` when it throws.
pub(crate) fn field(target: &JsValue, key: &'static Key) -> JsValue {
    key.with(|key| js_sys::Reflect::get(target, key).unwrap_or(JsValue::UNDEFINED))
}

/// `target[key] = value`; objects the client builds always accept it.
pub(crate) fn set_field(target: &JsValue, key: &'static Key, value: &JsValue) {
    key.with(|key| {
        let _ = js_sys::Reflect::set(target, key, value);
    });
}

#[wasm_bindgen]
extern "C" {
    /// The browser's `WebSocket`.
    #[wasm_bindgen(js_name = WebSocket)]
    #[derive(Debug, Clone)]
    pub(crate) type Socket;

    #[wasm_bindgen(method, catch, js_class = "WebSocket", js_name = send)]
    pub(crate) fn send(this: &Socket, data: &JsValue) -> Result<(), JsValue>;

    #[wasm_bindgen(method, catch, js_class = "WebSocket", js_name = close)]
    pub(crate) fn close(this: &Socket, code: u16, reason: &str) -> Result<(), JsValue>;

    #[wasm_bindgen(method, setter, js_class = "WebSocket", js_name = onopen)]
    pub(crate) fn set_onopen(this: &Socket, handler: &JsValue);

    /// The subprotocol the server chose.
    #[wasm_bindgen(method, getter, js_class = "WebSocket", js_name = protocol)]
    pub(crate) fn protocol(this: &Socket) -> JsValue;

    #[wasm_bindgen(method, setter, js_class = "WebSocket", js_name = onmessage)]
    pub(crate) fn set_onmessage(this: &Socket, handler: &JsValue);

    #[wasm_bindgen(method, setter, js_class = "WebSocket", js_name = onclose)]
    pub(crate) fn set_onclose(this: &Socket, handler: &JsValue);

    /// `event.target` of an `open`, `message` or `close` event.
    #[wasm_bindgen(method, getter, js_class = "Event", js_name = target)]
    pub(crate) fn target(this: &SocketEvent) -> JsValue;

    /// A WebSocket event: `MessageEvent` or `CloseEvent`.
    #[wasm_bindgen(js_name = Event)]
    #[derive(Debug, Clone)]
    pub(crate) type SocketEvent;

    /// `MessageEvent.data`.
    #[wasm_bindgen(method, getter, js_class = "Event", js_name = data)]
    pub(crate) fn data(this: &SocketEvent) -> JsValue;

    /// `CloseEvent.code`.
    #[wasm_bindgen(method, getter, js_class = "Event", js_name = code)]
    pub(crate) fn code(this: &SocketEvent) -> Option<u16>;

    /// The URL API, to resolve relative URLs and add query parameters.
    #[wasm_bindgen(js_name = URL)]
    #[derive(Debug, Clone)]
    pub(crate) type Url;

    #[wasm_bindgen(constructor, js_class = "URL", catch)]
    pub(crate) fn parse_url(url: &str, base: &JsValue) -> Result<Url, JsValue>;

    #[wasm_bindgen(method, getter, js_class = "URL", js_name = protocol)]
    pub(crate) fn protocol(this: &Url) -> String;

    #[wasm_bindgen(method, setter, js_class = "URL", js_name = protocol)]
    pub(crate) fn set_protocol(this: &Url, protocol: &str);

    #[wasm_bindgen(method, getter, js_class = "URL", js_name = href)]
    pub(crate) fn href(this: &Url) -> String;

    #[wasm_bindgen(method, getter, js_class = "URL", js_name = searchParams)]
    pub(crate) fn search_params(this: &Url) -> SearchParams;

    /// `URLSearchParams`.
    #[wasm_bindgen(js_name = URLSearchParams)]
    #[derive(Debug, Clone)]
    pub(crate) type SearchParams;

    #[wasm_bindgen(method, js_class = "URLSearchParams", js_name = set)]
    pub(crate) fn set(this: &SearchParams, key: &str, value: &str);

    /// A promise, as far as `then` goes.
    #[derive(Debug, Clone)]
    pub(crate) type Thenable;

    #[wasm_bindgen(method, js_name = then)]
    pub(crate) fn then(this: &Thenable, on_fulfilled: &JsValue, on_rejected: &JsValue) -> JsValue;

    #[wasm_bindgen(js_namespace = Promise, js_name = resolve)]
    pub(crate) fn promise_resolve(value: &JsValue) -> Thenable;

    #[wasm_bindgen(js_namespace = Promise, js_name = reject)]
    pub(crate) fn promise_reject(reason: &JsValue) -> js_sys::Promise;

    #[wasm_bindgen(js_namespace = console, js_name = error)]
    pub(crate) fn console_error(message: &str, detail: &JsValue);

    #[wasm_bindgen(js_namespace = console, js_name = debug)]
    pub(crate) fn console_debug(message: &str, detail: &JsValue);

    #[wasm_bindgen(js_namespace = performance, js_name = now)]
    pub(crate) fn performance_now() -> f64;

    #[wasm_bindgen(js_namespace = Date, js_name = now)]
    pub(crate) fn date_now() -> f64;

    #[wasm_bindgen(js_namespace = Math, js_name = random)]
    pub(crate) fn random() -> f64;

    #[wasm_bindgen(js_name = queueMicrotask)]
    pub(crate) fn queue_microtask(callback: &Function);

    #[wasm_bindgen(js_name = setTimeout)]
    pub(crate) fn set_timeout(handler: &Function, ms: f64) -> JsValue;

    #[wasm_bindgen(js_name = clearTimeout)]
    pub(crate) fn clear_timeout(handle: &JsValue);

    /// `JSON.parse` on a JS string, without copying it into wasm memory.
    #[wasm_bindgen(catch, js_namespace = JSON, js_name = parse)]
    pub(crate) fn json_parse(text: &JsValue) -> Result<JsValue, JsValue>;

}

/// `Reflect.get(target, key)`, `undefined` when it throws.
pub(crate) fn get(target: &JsValue, key: &str) -> JsValue {
    js_sys::Reflect::get(target, &JsValue::from_str(key)).unwrap_or(JsValue::UNDEFINED)
}

/// A string property.
pub(crate) fn get_string(target: &JsValue, key: &str) -> Option<String> {
    get(target, key).as_string()
}

/// A number property.
pub(crate) fn get_number(target: &JsValue, key: &str) -> Option<f64> {
    get(target, key).as_f64()
}

/// Sets a property; objects the client builds always accept it.
pub(crate) fn put(target: &JsValue, key: &str, value: &JsValue) {
    let _ = js_sys::Reflect::set(target, &JsValue::from_str(key), value);
}

/// A JS array of strings.
pub(crate) fn string_array(items: &[String]) -> js_sys::Array {
    items.iter().map(|item| JsValue::from_str(item)).collect()
}

/// A global (`document`, `navigator`, `location`), `undefined` where it does not exist.
pub(crate) fn global(name: &str) -> JsValue {
    get(&js_sys::global(), name)
}

/// `document.visibilityState === "visible"` (true where there is no document).
pub(crate) fn page_visible() -> bool {
    get_string(&global("document"), "visibilityState").is_none_or(|state| state == "visible")
}

/// `navigator.onLine` (true when unknown).
pub(crate) fn online() -> bool {
    get(&global("navigator"), "onLine")
        .as_bool()
        .unwrap_or(true)
}

/// Adds or removes a listener of `kind` on `target`, when it is an event target.
pub(crate) fn listener(target: &JsValue, kind: &str, handler: &JsValue, add: bool) {
    let method = if add {
        "addEventListener"
    } else {
        "removeEventListener"
    };
    if let Ok(function) = get(target, method).dyn_into::<Function>() {
        let _ = function.call2(target, &JsValue::from_str(kind), handler);
    }
}
