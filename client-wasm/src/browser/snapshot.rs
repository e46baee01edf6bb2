//! The connection snapshot as a frozen JS object, rebuilt only when the core's version
//! changes, so `useSyncExternalStore` sees the same object until something changes.
//! Its user and lists are reused while the session stays the same: most changes (a
//! message queued or acknowledged) only move `pending`.

use js_sys::Object;
use wasm_bindgen::JsValue;

use super::driver::Received;
use super::js::{self, set_field, string_array};
use crate::core::{Core, Millis};

fn frozen(value: impl Into<JsValue>) -> JsValue {
    let value = value.into();
    Object::freeze(&Object::from(value.clone()));
    value
}

/// The user and lists of the last snapshot, and the session version they show.
#[derive(Debug, Default)]
pub(crate) struct Parts(Option<(u64, [JsValue; 3])>);

/// `user`, `rooms` and `onlineUserIds` for the core's current session.
fn session_parts(core: &Core<JsValue, Received>) -> [JsValue; 3] {
    let Some(session) = core.session() else {
        let none = || frozen(js_sys::Array::new());
        return [JsValue::NULL, none(), none()];
    };
    let user = JsValue::from(Object::new());
    set_field(&user, &js::ID, &JsValue::from_str(&session.user_id));
    let name = session
        .user_name
        .as_deref()
        .map_or(JsValue::NULL, JsValue::from_str);
    js::put(&user, "name", &name);
    [
        frozen(user),
        frozen(string_array(&session.rooms)),
        frozen(string_array(&session.online_user_ids)),
    ]
}

/// Builds the snapshot object; `now` is the core's clock, turned into epoch time for
/// `nextRetryAt`.
pub(crate) fn build(core: &Core<JsValue, Received>, now: Millis, parts: &mut Parts) -> JsValue {
    let snapshot = JsValue::from(Object::new());
    set_field(
        &snapshot,
        &js::STATUS,
        &JsValue::from_str(core.status().as_str()),
    );
    set_field(&snapshot, &js::ATTEMPT, &JsValue::from(core.attempt()));
    let next_retry_at = core.next_retry_at().map_or(JsValue::NULL, |at| {
        JsValue::from_f64(js::date_now() + at.saturating_sub(now) as f64)
    });
    set_field(&snapshot, &js::NEXT_RETRY_AT, &next_retry_at);
    let last_error = core.last_error().map_or(JsValue::NULL, |error| {
        let object = JsValue::from(Object::new());
        set_field(&object, &js::CODE, &JsValue::from_str(error.code.as_str()));
        let close_code = error
            .close_code
            .map_or(JsValue::NULL, |code| JsValue::from(code.code()));
        js::put(&object, "closeCode", &close_code);
        frozen(object)
    });
    set_field(&snapshot, &js::LAST_ERROR, &last_error);
    let version = core.session_version();
    let [user, rooms, online] = match &parts.0 {
        Some((built, values)) if *built == version => values,
        _ => &parts.0.insert((version, session_parts(core))).1,
    };
    set_field(&snapshot, &js::USER, user);
    set_field(&snapshot, &js::ROOMS, rooms);
    set_field(&snapshot, &js::ONLINE_USER_IDS, online);
    set_field(
        &snapshot,
        &js::PENDING,
        &JsValue::from(core.pending() as u32),
    );
    frozen(snapshot)
}
