//! Counters for Prometheus (`GET /metrics`): connections, messages in and out, auth
//! failures and errors by code.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// The server's counters. Cheap to update from any task.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    connections_open: AtomicI64,
    connections_total: AtomicU64,
    messages_out: AtomicU64,
    slow_consumers: AtomicU64,
    connections_refused: AtomicU64,
    accept_failures: AtomicU64,
    messages_in: Mutex<BTreeMap<String, u64>>,
    auth_failures: Mutex<BTreeMap<&'static str, u64>>,
    errors: Mutex<BTreeMap<String, u64>>,
}

fn bump<K: Ord>(map: &Mutex<BTreeMap<K, u64>>, key: K) {
    let mut map = map.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    *map.entry(key).or_default() += 1;
}

impl Metrics {
    /// A WebSocket connection was authenticated.
    pub(crate) fn connection_opened(&self) {
        self.connections_open.fetch_add(1, Ordering::Relaxed);
        self.connections_total.fetch_add(1, Ordering::Relaxed);
    }

    /// An authenticated connection closed.
    pub(crate) fn connection_closed(&self) {
        self.connections_open.fetch_sub(1, Ordering::Relaxed);
    }

    /// A client message of this type arrived: a decoded message's type, or `invalid`,
    /// `binary` or `rate_limited`. Decoded types are the protocol's, so the labels stay
    /// a small, fixed set.
    pub(crate) fn message_in(&self, type_name: &str) {
        bump(&self.messages_in, type_name.to_owned());
    }

    /// `count` frames were queued to clients.
    pub(crate) fn messages_out(&self, count: u64) {
        self.messages_out.fetch_add(count, Ordering::Relaxed);
    }

    /// A client was closed for reading too slowly.
    pub(crate) fn slow_consumer(&self) {
        self.slow_consumers.fetch_add(1, Ordering::Relaxed);
    }

    /// A connection was closed at once: `MAX_CONNECTIONS` were open.
    pub(crate) fn connection_refused(&self) {
        self.connections_refused.fetch_add(1, Ordering::Relaxed);
    }

    /// Accepting failed for want of resources (descriptors, memory).
    pub(crate) fn accept_failure(&self) {
        self.accept_failures.fetch_add(1, Ordering::Relaxed);
    }

    /// A token was refused, for this reason.
    pub(crate) fn auth_failure(&self, reason: &'static str) {
        bump(&self.auth_failures, reason);
    }

    /// An `error` with this code was sent.
    pub(crate) fn error(&self, code: &str) {
        bump(&self.errors, code.to_owned());
    }

    /// The Prometheus text exposition of every counter.
    pub(crate) fn render(&self) -> String {
        let mut out = String::new();
        let mut gauge = |name: &str, help: &str, kind: &str, value: String| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        };
        gauge(
            "relaywire_connections",
            "Open authenticated WebSocket connections.",
            "gauge",
            self.connections_open.load(Ordering::Relaxed).to_string(),
        );
        gauge(
            "relaywire_connections_total",
            "Authenticated WebSocket connections since start.",
            "counter",
            self.connections_total.load(Ordering::Relaxed).to_string(),
        );
        gauge(
            "relaywire_messages_out_total",
            "Frames queued to clients.",
            "counter",
            self.messages_out.load(Ordering::Relaxed).to_string(),
        );
        gauge(
            "relaywire_slow_consumers_total",
            "Connections closed because their outbound queue overflowed.",
            "counter",
            self.slow_consumers.load(Ordering::Relaxed).to_string(),
        );
        gauge(
            "relaywire_connections_refused_total",
            "Connections closed at once because MAX_CONNECTIONS were open.",
            "counter",
            self.connections_refused.load(Ordering::Relaxed).to_string(),
        );
        gauge(
            "relaywire_accept_failures_total",
            "Accepts that failed for want of descriptors or memory.",
            "counter",
            self.accept_failures.load(Ordering::Relaxed).to_string(),
        );
        labelled(
            &mut out,
            "relaywire_messages_in_total",
            "Client messages received, by type.",
            "type",
            &self.messages_in,
        );
        labelled(
            &mut out,
            "relaywire_auth_failures_total",
            "Refused tokens, by reason.",
            "reason",
            &self.auth_failures,
        );
        labelled(
            &mut out,
            "relaywire_errors_total",
            "Error messages sent, by code.",
            "code",
            &self.errors,
        );
        out
    }
}

fn labelled<K: Ord + AsRef<str>>(
    out: &mut String,
    name: &str,
    help: &str,
    label: &str,
    map: &Mutex<BTreeMap<K, u64>>,
) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
    let map = map.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    for (key, value) in map.iter() {
        let _ = writeln!(out, "{name}{{{label}=\"{}\"}} {value}", key.as_ref());
    }
}
