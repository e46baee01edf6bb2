//! Where the browser tests find what they run against: a chat server with its test
//! hooks, and the supervisor that kills and restarts it.
//!
//! `cargo xtask test browser` starts both and names them at build time
//! (`RELAYWIRE_TEST_SERVER`, `RELAYWIRE_TEST_SUPERVISOR`). Without those, the tests
//! look for the fixture `cargo xtask serve-tests` keeps on fixed ports, so that
//! `wasm-pack test --headless --chrome client-wasm` runs beside it; where nothing
//! answers, each test says so in one line and does nothing more.

use gloo_net::http::Request;
use relaywire_protocol::http::UserStatus;
use serde_json::{Value, json};
use web_sys::RequestCredentials;

/// The fixture's chat server, when no server was named at build time.
pub(crate) const FIXTURE_SERVER: &str = "http://127.0.0.1:18420";
/// The fixture's supervisor.
pub(crate) const FIXTURE_SUPERVISOR: &str = "http://127.0.0.1:18421";
/// The service key the fixture's server accepts for its admin API.
pub(crate) const SERVICE_KEY: &str = "browser-tests-key";

/// What a test runs against.
#[derive(Debug, Clone)]
pub(crate) struct TestEnv {
    /// `http://127.0.0.1:<port>` of the chat server.
    pub(crate) server: String,
    /// The supervisor's URL, when it answers.
    pub(crate) supervisor: Option<String>,
}

async fn answers(url: &str) -> bool {
    Request::get(url).send().await.is_ok()
}

/// The server the tests run against, or `None` (said on the console) when there is
/// none to be found.
pub(crate) async fn find() -> Option<TestEnv> {
    let named = option_env!("RELAYWIRE_TEST_SERVER");
    let server = named.unwrap_or(FIXTURE_SERVER).to_owned();
    let healthy = Request::get(&format!("{server}/healthz"))
        .send()
        .await
        .is_ok_and(|response| response.ok());
    if !healthy {
        // A server named at build time must be there: that is a failure, not a skip.
        assert!(named.is_none(), "the test server {server} does not answer");
        web_sys::console::warn_1(
            &format!(
                "skipped: no Relaywire test server at {server}. Run `cargo xtask test browser`, \
                 or start `cargo xtask serve-tests` and run \
                 `WASM_BINDGEN_TEST_ADDRESS=127.0.0.1:18422 wasm-pack test --headless --chrome client-wasm` beside it."
            )
            .into(),
        );
        return None;
    }
    let supervisor = option_env!("RELAYWIRE_TEST_SUPERVISOR")
        .unwrap_or(FIXTURE_SUPERVISOR)
        .to_owned();
    let supervisor = answers(&supervisor).await.then_some(supervisor);
    Some(TestEnv { server, supervisor })
}

impl TestEnv {
    /// The WebSocket endpoint.
    pub(crate) fn ws_url(&self) -> String {
        format!("{}/ws", self.server.replacen("http", "ws", 1))
    }

    async fn post(&self, url: &str, body: Value) -> Value {
        let response = Request::post(url)
            .credentials(RequestCredentials::Include)
            .json(&body)
            .expect("a JSON body")
            .send()
            .await
            .unwrap_or_else(|err| panic!("POST {url}: {err}"));
        assert!(response.ok(), "POST {url} answered {}", response.status());
        if response.status() == 204 {
            return Value::Null;
        }
        response.json().await.unwrap_or(Value::Null)
    }

    /// An HS256 token for `user_id` from the server's test hook, valid `ttl_secs`
    /// (negative: expired already).
    pub(crate) async fn token(&self, user_id: &str, ttl_secs: i64) -> String {
        let body = json!({ "userId": user_id, "name": user_id, "ttlSecs": ttl_secs });
        let answer = self
            .post(&format!("{}/test/token", self.server), body)
            .await;
        answer["token"].as_str().expect("a token").to_owned()
    }

    /// Signs `user_id` in with the server's dev login: the session cookie is set.
    pub(crate) async fn dev_login(&self, user_id: &str) {
        let body = json!({ "userId": user_id });
        self.post(&format!("{}/auth/dev-login", self.server), body)
            .await;
    }

    /// Stops answering pings (`true`) or answers them again.
    pub(crate) async fn pause_pongs(&self, paused: bool) {
        let body = json!({ "paused": paused });
        self.post(&format!("{}/test/pongs", self.server), body)
            .await;
    }

    /// Handles messages but acknowledges none (`true`), or acknowledges them again.
    pub(crate) async fn pause_acks(&self, paused: bool) {
        let body = json!({ "paused": paused });
        self.post(&format!("{}/test/acks", self.server), body).await;
    }

    /// Kills (`"kill"`) or restarts (`"start"`) the server; `None` without a supervisor.
    pub(crate) async fn supervise(&self, action: &str) -> Option<()> {
        let supervisor = self.supervisor.as_ref()?;
        let response = Request::post(&format!("{supervisor}/{action}"))
            .send()
            .await
            .unwrap_or_else(|err| panic!("supervisor {action}: {err}"));
        assert!(
            response.ok(),
            "supervisor {action} answered {}",
            response.status()
        );
        Some(())
    }

    /// How many connections `user_id` has open, from the admin API.
    pub(crate) async fn connections(&self, user_id: &str) -> u32 {
        let url = format!("{}/api/users/{user_id}/status", self.server);
        let response = Request::get(&url)
            .header("authorization", &format!("Bearer {SERVICE_KEY}"))
            .send()
            .await
            .unwrap_or_else(|err| panic!("GET {url}: {err}"));
        assert!(response.ok(), "GET {url} answered {}", response.status());
        let status: UserStatus = response.json().await.expect("a user status");
        status.connections
    }
}

/// A user id no other test uses, so tests never see each other's traffic.
pub(crate) fn unique(name: &str) -> String {
    thread_local! {
        static NEXT: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
    }
    let n = NEXT.with(|next| {
        next.set(next.get() + 1);
        next.get()
    });
    format!("{name}-{}-{n}", js_sys::Date::now() as u64)
}

/// Waits `ms` milliseconds.
pub(crate) async fn sleep(ms: u32) {
    gloo_timers::future::TimeoutFuture::new(ms).await;
}
