//! The `RelaywireOptions` object, checked and turned into the core's options.

use js_sys::{Function, Object};
use relaywire_protocol::ClientErrorCode;
use relaywire_protocol::policy::{
    ClientPolicy, Delivery, Descriptor, RoomChange, RoomEffect, ServerPolicy, StateFields,
};
use wasm_bindgen::{JsCast, JsValue};

use super::errors::client_error;
use super::js::{self, get, get_number, get_string};
use crate::core::{Auth, HeartbeatPolicy, Options, ReconnectPolicy, TokenTransport};

/// Options that stay with the browser driver.
#[derive(Debug)]
pub(crate) struct BrowserOptions {
    /// `url` as given: resolved against the page when connecting, so a client can be
    /// created where there is no page (server rendering).
    pub(crate) url: String,
    /// The `WebSocket` option: a constructor to use instead of the global one.
    pub(crate) websocket: JsValue,
    /// `params`: an object or a function returning one, read on every connect.
    pub(crate) params: JsValue,
    /// `auth.getToken`.
    pub(crate) get_token: Option<Function>,
    pub(crate) auto_connect: bool,
    pub(crate) debug: bool,
}

#[inline(never)]
fn invalid(message: &str) -> JsValue {
    client_error(ClientErrorCode::InvalidOptions, message)
}

/// A whole number from 0 to `max`; `None` when absent. Kept out of line: inlined at
/// each of its nine callers it costs the constructor more than the call.
#[inline(never)]
fn whole(options: &JsValue, key: &str, max: f64, message: &str) -> Result<Option<u64>, JsValue> {
    let value = get(options, key);
    if value.is_undefined() || value.is_null() {
        return Ok(None);
    }
    match value.as_f64() {
        // NaN fails the range check; a fraction fails the round trip.
        Some(n) if (0.0..=max).contains(&n) && (n as u64) as f64 == n => Ok(Some(n as u64)),
        _ => Err(invalid(message)),
    }
}

/// A non-negative whole number of milliseconds (or a count), or the default when absent.
fn count(options: &JsValue, key: &str, default: u32, message: &str) -> Result<u32, JsValue> {
    let n = whole(options, key, f64::from(u32::MAX), message)?;
    Ok(n.map_or(default, |n| n as u32))
}

fn ratio(
    options: &JsValue,
    key: &str,
    default: f64,
    min: f64,
    max: f64,
    message: &str,
) -> Result<f64, JsValue> {
    match get_number(options, key) {
        None if get(options, key).is_undefined() => Ok(default),
        Some(n) if n.is_finite() && n >= min && n <= max => Ok(n),
        _ => Err(invalid(message)),
    }
}

/// Resolves `url` against the page (where there is one) and turns `http(s):` into
/// `ws(s):`.
pub(crate) fn resolve_url(url: &str) -> Option<js::Url> {
    let base = get(&js::global("location"), "href");
    let parsed = js::Url::parse_url(url, &base).ok()?;
    match parsed.protocol().as_str() {
        "ws:" | "wss:" => {}
        "http:" => parsed.set_protocol("ws:"),
        "https:" => parsed.set_protocol("wss:"),
        _ => return None,
    }
    Some(parsed)
}

/// What connecting needs, checked when connecting rather than before (a server
/// renders clients it never connects): a URL it can resolve, and the WebSocket
/// constructor to connect with, the `WebSocket` option or else the global one.
pub(crate) fn connectable(options: &BrowserOptions) -> Result<Function, JsValue> {
    resolve_url(&options.url)
        .ok_or_else(|| invalid("`url` needs a page to resolve against here: pass a ws: URL"))?;
    let constructor = if options.websocket.is_undefined() {
        js::global("WebSocket")
    } else {
        options.websocket.clone()
    };
    constructor
        .dyn_into::<Function>()
        .map_err(|_| invalid("no WebSocket here: pass the `WebSocket` option (Node: from `ws`)"))
}

fn reconnect(options: &JsValue) -> Result<ReconnectPolicy, JsValue> {
    let value = get(options, "reconnect");
    let defaults = ReconnectPolicy::default();
    if value.is_undefined() {
        return Ok(defaults);
    }
    if value.as_bool() == Some(false) {
        // No retries at all: the first loss fails.
        return Ok(ReconnectPolicy {
            max_attempts: Some(0),
            ..defaults
        });
    }
    if !value.is_object() {
        return Err(invalid("`reconnect` must be an object or false"));
    }
    let max_attempts = match get(&value, "maxAttempts") {
        v if v.is_undefined() || v.is_null() => None,
        v => match v.as_f64() {
            Some(n) if n == f64::INFINITY => None,
            Some(n) if n.is_finite() && n >= 0.0 => Some(n.min(f64::from(u32::MAX)) as u32),
            _ => {
                return Err(invalid(
                    "`reconnect.maxAttempts` must be a number, Infinity or null",
                ));
            }
        },
    };
    let policy = ReconnectPolicy {
        initial_delay_ms: count(
            &value,
            "initialDelayMs",
            defaults.initial_delay_ms,
            "`reconnect.initialDelayMs` must be a number of milliseconds",
        )?,
        max_delay_ms: count(
            &value,
            "maxDelayMs",
            defaults.max_delay_ms,
            "`reconnect.maxDelayMs` must be a number of milliseconds",
        )?,
        factor: ratio(
            &value,
            "factor",
            defaults.factor,
            1.0,
            100.0,
            "`reconnect.factor` must be between 1 and 100",
        )?,
        jitter: ratio(
            &value,
            "jitter",
            defaults.jitter,
            0.0,
            1.0,
            "`reconnect.jitter` must be between 0 and 1",
        )?,
        max_attempts,
        reset_after_ms: count(
            &value,
            "resetAfterMs",
            defaults.reset_after_ms,
            "`reconnect.resetAfterMs` must be a number of milliseconds",
        )?,
    };
    if policy.max_delay_ms < policy.initial_delay_ms {
        return Err(invalid(
            "`reconnect.maxDelayMs` must not be below `initialDelayMs`",
        ));
    }
    Ok(policy)
}

fn heartbeat(options: &JsValue) -> Result<Option<HeartbeatPolicy>, JsValue> {
    let value = get(options, "heartbeat");
    let defaults = HeartbeatPolicy::default();
    if value.is_undefined() {
        return Ok(Some(defaults));
    }
    if value.as_bool() == Some(false) {
        return Ok(None);
    }
    if !value.is_object() {
        return Err(invalid("`heartbeat` must be an object or false"));
    }
    let policy = HeartbeatPolicy {
        interval_ms: count(
            &value,
            "intervalMs",
            defaults.interval_ms,
            "`heartbeat.intervalMs` must be a number of milliseconds",
        )?,
        timeout_ms: count(
            &value,
            "timeoutMs",
            defaults.timeout_ms,
            "`heartbeat.timeoutMs` must be a number of milliseconds",
        )?,
    };
    if policy.interval_ms < 100 || policy.timeout_ms < 100 {
        return Err(invalid("heartbeat times must be at least 100 ms"));
    }
    Ok(Some(policy))
}

fn auth(options: &JsValue) -> Result<(Auth, Option<Function>), JsValue> {
    let value = get(options, "auth");
    if value.is_undefined() || value.as_string().as_deref() == Some("cookie") {
        return Ok((Auth::Cookie, None));
    }
    if let Some(token) = get_string(&value, "token") {
        if token.is_empty() {
            return Err(invalid("`auth.token` must not be empty"));
        }
        return Ok((Auth::Token(token), None));
    }
    if let Ok(get_token) = get(&value, "getToken").dyn_into::<Function>() {
        return Ok((Auth::Provider, Some(get_token)));
    }
    Err(invalid(
        "`auth` must be \"cookie\", { token } or { getToken }",
    ))
}

fn client_policy(entry: &JsValue) -> Option<ClientPolicy<String>> {
    let delivery = Delivery::from_name(&get_string(entry, "delivery")?)?;
    let state = match (get_string(entry, "key"), get_string(entry, "active")) {
        (Some(key), Some(active)) => Some(StateFields { key, active }),
        (None, None) => None,
        _ => return None,
    };
    let room = match (get_string(entry, "joins"), get_string(entry, "leaves")) {
        (Some(field), None) => Some(RoomEffect {
            change: RoomChange::Join,
            field,
        }),
        (None, Some(field)) => Some(RoomEffect {
            change: RoomChange::Leave,
            field,
        }),
        (None, None) => None,
        (Some(_), Some(_)) => return None,
    };
    let policy = ClientPolicy {
        delivery,
        state,
        room,
    };
    policy.is_consistent().then_some(policy)
}

/// The `protocol` option: the descriptor a protocol's generated TypeScript exports,
/// which lists every type, the control types included.
fn descriptor(options: &JsValue) -> Result<Descriptor, JsValue> {
    let protocol = get(options, "protocol");
    let client = get(&protocol, "client");
    let server = get(&protocol, "server");
    if !client.is_object() || !server.is_object() {
        return Err(invalid(
            "`protocol` is required: the descriptor a protocol's generated TypeScript exports",
        ));
    }
    let mut descriptor = Descriptor::default();
    for type_name in Object::keys(&Object::from(client.clone())).iter() {
        let entry = js_sys::Reflect::get(&client, &type_name).unwrap_or(JsValue::UNDEFINED);
        let (Some(type_name), Some(policy)) = (type_name.as_string(), client_policy(&entry)) else {
            return Err(invalid("a `protocol.client` entry is not a valid policy"));
        };
        descriptor.client.push((type_name, policy));
    }
    for type_name in Object::keys(&Object::from(server.clone())).iter() {
        let entry = js_sys::Reflect::get(&server, &type_name).unwrap_or(JsValue::UNDEFINED);
        let numbered = get(&entry, "numbered").as_bool() == Some(true);
        if let Some(type_name) = type_name.as_string() {
            descriptor
                .server
                .push((type_name, ServerPolicy { numbered }));
        }
    }
    Ok(descriptor)
}

/// Reads and checks the options object: the core's options, and the driver's.
pub(crate) fn parse(options: &JsValue) -> Result<(Options, BrowserOptions), JsValue> {
    if !options.is_object() {
        return Err(invalid("options must be an object with at least `url`"));
    }
    let url = get_string(options, "url").ok_or_else(|| invalid("`url` is required"))?;
    // Without a page (server rendering) a path waits until connecting.
    if !js::global("location").is_undefined() && resolve_url(&url).is_none() {
        return Err(invalid(
            "`url` must be a ws:, wss:, http: or https: URL, or a path",
        ));
    }
    let websocket = get(options, "WebSocket");
    let (auth, get_token) = auth(options)?;
    let token_transport = match get_string(options, "tokenTransport").as_deref() {
        None | Some("message") => TokenTransport::Message,
        Some("query") => TokenTransport::Query,
        Some(_) => return Err(invalid("`tokenTransport` must be \"message\" or \"query\"")),
    };
    let params = get(options, "params");
    if !(params.is_undefined() || params.is_object() || params.is_function()) {
        return Err(invalid("`params` must be an object or a function"));
    }
    let mut core = Options::new(descriptor(options)?);
    let queue_size = count(
        options,
        "queueSize",
        core.queue_size as u32,
        "`queueSize` must be a number",
    )?;
    if queue_size == 0 {
        return Err(invalid("`queueSize` must be at least 1"));
    }
    core.auth = auth;
    core.token_transport = token_transport;
    core.reconnect = reconnect(options)?;
    core.heartbeat = heartbeat(options)?;
    core.connect_timeout_ms = count(
        options,
        "connectTimeoutMs",
        core.connect_timeout_ms,
        "`connectTimeoutMs` must be a number of milliseconds",
    )?;
    core.queue_size = queue_size as usize;
    core.request_timeout_ms = count(
        options,
        "requestTimeoutMs",
        core.request_timeout_ms,
        "`requestTimeoutMs` must be a number of milliseconds",
    )?;
    // A `seq`, up to what JavaScript counts exactly.
    core.resume_from = whole(
        options,
        "resumeFrom",
        9_007_199_254_740_991.0,
        "`resumeFrom` must be a whole number",
    )?;
    core.seed =
        (js::random() * 9_007_199_254_740_992.0) as u64 ^ (js::performance_now() * 1_000.0) as u64;
    Ok((
        core,
        BrowserOptions {
            url,
            websocket,
            params,
            get_token,
            auto_connect: get(options, "autoConnect").as_bool().unwrap_or(true),
            debug: get(options, "debug").as_bool().unwrap_or(false),
        },
    ))
}
