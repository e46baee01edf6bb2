//! The connection snapshot as a frozen JS object, rebuilt only when the core's version
//! changes, so `useSyncExternalStore` sees the same object until something changes.
//! Its user and lists are reused while they stay the same: most changes (a message
//! queued or acknowledged) only move `pending`.

use js_sys::Object;
use wasm_bindgen::JsValue;

use super::js::{self, set_field, string_array};
use crate::core::{Core, Millis};

fn frozen(value: impl Into<JsValue>) -> JsValue {
    let value = value.into();
    Object::freeze(&Object::from(value.clone()));
    value
}

/// A user's id and name.
type Who = (String, Option<String>);

/// The parts of the last snapshot that are worth reusing, with what they were built
/// from.
#[derive(Debug, Default)]
pub(crate) struct Parts {
    user: Option<(Option<Who>, JsValue)>,
    chats: Option<(Vec<String>, JsValue)>,
    online: Option<(Vec<String>, JsValue)>,
}

/// The cached list when it was built from `source`, else a fresh one.
fn reuse_list(slot: &mut Option<(Vec<String>, JsValue)>, source: &[String]) -> JsValue {
    match slot {
        Some((built_from, value)) if built_from.as_slice() == source => value.clone(),
        _ => {
            let value = frozen(string_array(source));
            *slot = Some((source.to_vec(), value.clone()));
            value
        }
    }
}

/// Builds the snapshot object; `now` is the core's clock, turned into epoch time for
/// `nextRetryAt`.
pub(crate) fn build(core: &Core<JsValue>, now: Millis, parts: &mut Parts) -> JsValue {
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
        set_field(&object, &js::CODE, &JsValue::from_str(&error.code));
        let close_code = error.close_code.map_or(JsValue::NULL, JsValue::from);
        js::put(&object, "closeCode", &close_code);
        frozen(object)
    });
    set_field(&snapshot, &js::LAST_ERROR, &last_error);
    let session = core.session();
    let who = session.map(|s| (s.user_id.as_str(), s.user_name.as_deref()));
    let user = match &parts.user {
        Some((built_from, value))
            if built_from
                .as_ref()
                .map(|(id, name)| (id.as_str(), name.as_deref()))
                == who =>
        {
            value.clone()
        }
        _ => {
            let value = who.map_or(JsValue::NULL, |(id, name)| {
                let user = JsValue::from(Object::new());
                set_field(&user, &js::ID, &JsValue::from_str(id));
                let name = name.map_or(JsValue::NULL, JsValue::from_str);
                js::put(&user, "name", &name);
                frozen(user)
            });
            let built_from = who.map(|(id, name)| (id.to_owned(), name.map(str::to_owned)));
            parts.user = Some((built_from, value.clone()));
            value
        }
    };
    set_field(&snapshot, &js::USER, &user);
    let (chats, online) = session.map_or((&[][..], &[][..]), |s| {
        (&s.chat_ids[..], &s.online_user_ids[..])
    });
    let chats = reuse_list(&mut parts.chats, chats);
    let online = reuse_list(&mut parts.online, online);
    set_field(&snapshot, &js::CHAT_IDS, &chats);
    set_field(&snapshot, &js::ONLINE_USER_IDS, &online);
    set_field(
        &snapshot,
        &js::PENDING,
        &JsValue::from(core.pending() as u32),
    );
    frozen(snapshot)
}
