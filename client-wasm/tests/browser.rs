//! The browser client in headless Chromium against the real reference server.
//!
//! `cargo xtask test browser` starts the server and a supervisor that can kill and
//! restart it, and passes their addresses at build time (`support/env.rs` says how
//! they are found otherwise). The scenarios are written in JavaScript (`browser.js`)
//! against the same API applications use; each test here runs one and fails with the
//! error it throws.
#![cfg(all(target_arch = "wasm32", feature = "js"))]

#[allow(dead_code)]
#[path = "support/env.rs"]
mod env;

use relaywire_client::RelaywireClient;
use wasm_bindgen::prelude::*;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

#[wasm_bindgen(module = "/tests/browser.js")]
extern "C" {
    #[wasm_bindgen(catch)]
    async fn authModes(env: &JsValue) -> Result<(), JsValue>;
    #[wasm_bindgen(catch)]
    async fn authFailureIsFinal(env: &JsValue) -> Result<(), JsValue>;
    #[wasm_bindgen(catch)]
    async fn expiredTokenIsRefreshedOnce(env: &JsValue) -> Result<(), JsValue>;
    #[wasm_bindgen(catch)]
    async fn twoClientsChat(env: &JsValue) -> Result<(), JsValue>;
    #[wasm_bindgen(catch)]
    async fn reconnectsAfterRestartAndFlushesInOrder(env: &JsValue) -> Result<(), JsValue>;
    #[wasm_bindgen(catch)]
    async fn deadConnectionIsDetected(env: &JsValue) -> Result<(), JsValue>;
    #[wasm_bindgen(catch)]
    async fn requestsSettle(env: &JsValue) -> Result<(), JsValue>;
    #[wasm_bindgen(catch)]
    async fn fullQueueRefuses(env: &JsValue) -> Result<(), JsValue>;
    #[wasm_bindgen(catch)]
    async fn closeLeavesNothing(env: &JsValue) -> Result<(), JsValue>;
    #[wasm_bindgen(catch)]
    async fn snapshotIsStable(env: &JsValue) -> Result<(), JsValue>;
    #[wasm_bindgen(catch)]
    async fn offlinePausesAndOnlineRetries(env: &JsValue) -> Result<(), JsValue>;
    #[wasm_bindgen(catch)]
    async fn unknownTypesReachTheUnknownHandler(env: &JsValue) -> Result<(), JsValue>;
    #[wasm_bindgen(catch)]
    async fn missedMessagesAreReplayedOnce(env: &JsValue) -> Result<(), JsValue>;
    #[wasm_bindgen(catch)]
    async fn aKeptSeqResumesANewClient(env: &JsValue) -> Result<(), JsValue>;
}

/// The chat protocol's descriptor as its generated TypeScript exports it.
fn chat_protocol() -> JsValue {
    use relaywire_protocol::Protocol;
    use relaywire_protocol::policy::RoomChange;
    let descriptor = relaywire_chat::ChatProtocol::descriptor();
    let mut client = serde_json::Map::new();
    for (type_name, policy) in &descriptor.client {
        let mut entry = serde_json::json!({ "delivery": policy.delivery.as_str() });
        if let Some(state) = &policy.state {
            entry["key"] = state.key.clone().into();
            entry["active"] = state.active.clone().into();
        }
        if let Some(room) = &policy.room {
            let option = match room.change {
                RoomChange::Join => "joins",
                RoomChange::Leave => "leaves",
            };
            entry[option] = room.field.clone().into();
        }
        client.insert(type_name.clone(), entry);
    }
    let server: serde_json::Map<String, serde_json::Value> = descriptor
        .server
        .iter()
        .map(|(type_name, policy)| {
            (
                type_name.clone(),
                serde_json::json!({ "numbered": policy.numbered }),
            )
        })
        .collect();
    let text = serde_json::json!({ "name": "ChatProtocol", "client": client, "server": server });
    js_sys::JSON::parse(&text.to_string()).expect("a JSON object")
}

/// What the scenarios need: the server, the supervisor, and a way to make clients;
/// `None` when there is no server (or no supervisor, for a scenario that needs one).
async fn scenario_env(needs_supervisor: bool) -> Option<JsValue> {
    let found = env::find().await?;
    if needs_supervisor && found.supervisor.is_none() {
        web_sys::console::warn_1(&"skipped: no supervisor to restart the server with".into());
        return None;
    }
    let env = js_sys::Object::new();
    let set = |key: &str, value: &JsValue| {
        js_sys::Reflect::set(&env, &key.into(), value).expect("a plain object");
    };
    set("server", &found.server.as_str().into());
    set("supervisor", &found.supervisor.unwrap_or_default().into());
    // Every client speaks the chat protocol, as `relaywire/chat` would configure it.
    let protocol = chat_protocol();
    let create = Closure::<dyn Fn(JsValue) -> Result<JsValue, JsValue>>::new(move |options| {
        let options =
            js_sys::Object::assign(&js_sys::Object::new(), &js_sys::Object::from(options));
        js_sys::Reflect::set(&options, &"protocol".into(), &protocol)?;
        RelaywireClient::new(options.into()).map(JsValue::from)
    });
    set("createClient", &create.into_js_value());
    Some(env.into())
}

macro_rules! scenario {
    ($($test:ident => $scenario:ident $(, needs $needs:ident)?;)+) => {
        $(
            #[wasm_bindgen_test]
            async fn $test() {
                let Some(env) = scenario_env(scenario!(@needs $($needs)?)).await else {
                    return;
                };
                if let Err(err) = $scenario(&env).await {
                    let message = js_sys::Reflect::get(&err, &"stack".into())
                        .ok()
                        .and_then(|stack| stack.as_string())
                        .unwrap_or_else(|| format!("{err:?}"));
                    panic!("{message}");
                }
            }
        )+
    };
    (@needs supervisor) => { true };
    (@needs) => { false };
}

scenario! {
    connects_with_every_auth_mode => authModes;
    an_auth_failure_ends_in_unauthorized_without_retrying => authFailureIsFinal;
    an_expired_token_is_refreshed_once => expiredTokenIsRefreshedOnce;
    two_clients_chat_with_receipts_typing_and_presence => twoClientsChat;
    reconnects_after_a_restart_with_growing_delays_and_flushes_in_order => reconnectsAfterRestartAndFlushesInOrder, needs supervisor;
    a_server_that_stops_answering_is_detected => deadConnectionIsDetected;
    requests_resolve_reject_and_time_out => requestsSettle;
    a_full_queue_refuses_with_a_code => fullQueueRefuses;
    close_leaves_no_socket_timer_or_listener => closeLeavesNothing;
    the_snapshot_is_the_same_object_until_it_changes => snapshotIsStable;
    offline_pauses_retries_and_online_retries_at_once => offlinePausesAndOnlineRetries, needs supervisor;
    unknown_message_types_reach_the_unknown_handler => unknownTypesReachTheUnknownHandler;
    missed_messages_are_replayed_once_in_order_after_a_reconnect => missedMessagesAreReplayedOnce, needs supervisor;
    a_kept_seq_resumes_a_new_client_after_what_it_kept => aKeptSeqResumesANewClient;
}
