//! The connection snapshot as a frozen JS object, rebuilt only when the core's version
//! changes, so `useSyncExternalStore` sees the same object until something changes.

use js_sys::Object;
use wasm_bindgen::JsValue;

use super::js::{self, put, string_array};
use crate::core::{Core, Millis};

fn frozen(value: impl Into<JsValue>) -> JsValue {
    let value = value.into();
    Object::freeze(&Object::from(value.clone()));
    value
}

/// Builds the snapshot object; `now` is the core's clock, turned into epoch time for
/// `nextRetryAt`.
pub(crate) fn build(core: &Core<JsValue>, now: Millis) -> JsValue {
    let snapshot = JsValue::from(Object::new());
    put(
        &snapshot,
        "status",
        &JsValue::from_str(core.status().as_str()),
    );
    put(&snapshot, "attempt", &JsValue::from(core.attempt()));
    let next_retry_at = core.next_retry_at().map_or(JsValue::NULL, |at| {
        JsValue::from_f64(js::date_now() + at.saturating_sub(now) as f64)
    });
    put(&snapshot, "nextRetryAt", &next_retry_at);
    let last_error = core.last_error().map_or(JsValue::NULL, |error| {
        let object = JsValue::from(Object::new());
        put(&object, "code", &JsValue::from_str(&error.code));
        let close_code = error.close_code.map_or(JsValue::NULL, JsValue::from);
        put(&object, "closeCode", &close_code);
        frozen(object)
    });
    put(&snapshot, "lastError", &last_error);
    let session = core.session();
    let user = session.map_or(JsValue::NULL, |session| {
        let user = JsValue::from(Object::new());
        put(&user, "id", &JsValue::from_str(&session.user_id));
        let name = session
            .user_name
            .as_deref()
            .map_or(JsValue::NULL, JsValue::from_str);
        put(&user, "name", &name);
        frozen(user)
    });
    put(&snapshot, "user", &user);
    let (chats, online) = session.map_or((&[][..], &[][..]), |s| {
        (&s.chat_ids[..], &s.online_user_ids[..])
    });
    put(&snapshot, "chatIds", &frozen(string_array(chats)));
    put(&snapshot, "onlineUserIds", &frozen(string_array(online)));
    put(&snapshot, "pending", &JsValue::from(core.pending() as u32));
    frozen(snapshot)
}
