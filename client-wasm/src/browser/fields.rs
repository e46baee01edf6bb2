//! The core's view of JavaScript objects: received payloads and outgoing messages.

use js_sys::{JsString, Object};
use wasm_bindgen::prelude::*;

use super::js::{self, field, set_field};
use crate::core::{Fields, FrameSize, Key, Outgoing};

/// A property as the core names it: the hot ones as static strings, so nothing
/// crosses from wasm per read.
fn get(target: &JsValue, key: Key<'_>) -> JsValue {
    match key {
        Key::Id => field(target, &js::ID),
        Key::Code => field(target, &js::CODE),
        Key::Seq => field(target, &js::SEQ),
        Key::UserId => field(target, &js::USER_ID),
        Key::Online => field(target, &js::ONLINE),
        other => js::get(target, other.name()),
    }
}

/// A received payload (or any object).
pub(crate) struct JsFields<'a>(pub(crate) &'a JsValue);

impl Fields for JsFields<'_> {
    fn text(&self, key: Key<'_>) -> Option<String> {
        get(self.0, key).as_string()
    }

    fn number(&self, key: Key<'_>) -> Option<f64> {
        get(self.0, key).as_f64()
    }

    fn flag(&self, key: Key<'_>) -> Option<bool> {
        get(self.0, key).as_bool()
    }

    fn texts(&self, key: Key<'_>) -> Vec<String> {
        let value = get(self.0, key);
        if !js_sys::Array::is_array(&value) {
            return Vec::new();
        }
        js_sys::Array::from(&value)
            .iter()
            .filter_map(|item| item.as_string())
            .collect()
    }
}

/// A message the application hands over: its type as the JS string it passed (put
/// back into the frame as it is) and its payload object.
pub(crate) struct JsMessage {
    pub(crate) type_name: String,
    pub(crate) type_js: JsValue,
    pub(crate) payload: JsValue,
    /// The message's own `id`, when the application gave one.
    pub(crate) id: JsValue,
}

impl Fields for JsMessage {
    fn text(&self, key: Key<'_>) -> Option<String> {
        JsFields(&self.payload).text(key)
    }
    fn number(&self, key: Key<'_>) -> Option<f64> {
        JsFields(&self.payload).number(key)
    }
    fn flag(&self, key: Key<'_>) -> Option<bool> {
        JsFields(&self.payload).flag(key)
    }
    fn texts(&self, key: Key<'_>) -> Vec<String> {
        JsFields(&self.payload).texts(key)
    }
}

fn stringify(type_js: &JsValue, id: Option<&str>, payload: &JsValue) -> Option<JsValue> {
    let frame = JsValue::from(Object::new());
    set_field(&frame, &js::TYPE, type_js);
    if let Some(id) = id {
        set_field(&frame, &js::ID, &JsValue::from_str(id));
    }
    set_field(&frame, &js::PAYLOAD, payload);
    js_sys::JSON::stringify(&frame).ok().map(JsValue::from)
}

impl Outgoing<JsValue> for JsMessage {
    fn type_name(&self) -> &str {
        &self.type_name
    }

    fn encode(&self, id: Option<&str>) -> Option<JsValue> {
        stringify(&self.type_js, id, &self.payload)
    }

    fn chosen_id(&self) -> Option<String> {
        self.id.as_string()
    }

    fn encode_switched(&self, key: &str, value: bool) -> Option<JsValue> {
        let switched = Object::assign(&Object::new(), &Object::from(self.payload.clone()));
        js::put(&switched, key, &JsValue::from_bool(value));
        stringify(&self.type_js, None, &switched)
    }
}

impl FrameSize for JsValue {
    /// Whether a JS string is at most `max` bytes of UTF-8, without copying it into
    /// wasm memory: three bytes per UTF-16 unit is the most it can take.
    fn fits(&self, max: usize) -> bool {
        let Some(text) = self.dyn_ref::<JsString>() else {
            return false;
        };
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
}
