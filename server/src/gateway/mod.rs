//! Serving connections that a gateway holds (an API Gateway WebSocket API): the
//! server keeps no socket and nothing between invocations. The gateway tells it that a
//! connection opened ([`GatewayServer::connect`]), sent a frame
//! ([`GatewayServer::receive`]) or closed ([`GatewayServer::disconnect`]); the server
//! answers through the gateway's API ([`Gateway`]), and remembers each connection in a
//! table ([`ConnectionTable`]) that every invocation shares.
//!
//! The guarantees are the socket server's: nothing is delivered or acknowledged before
//! it is stored, and every connection receives its user's events in order with no gap.
//! Invocations run side by side, so each connection's row says which event it was
//! sent last; an invocation sends a connection only what follows that, read from the
//! store when it lies further back than the event at hand, and moves the mark on only
//! if no other invocation moved it meanwhile. What two invocations both sent arrives
//! twice, and the client drops the second copy by its number.

mod bus;
mod handshake;
mod server;
#[cfg(test)]
mod tests;

pub(crate) use bus::GatewayBus;
pub use handshake::HandshakeVerifier;
pub use server::{ConnectRefused, GatewayServer};

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::future::BoxFuture;
use relaywire_protocol::{SUPPORTED_SUBPROTOCOLS, Seq, Wire};

use crate::auth::Identity;
use crate::store::StoreResult;

/// The protocol version a gateway's connections speak: the first in which the client
/// sends first, since a gateway cannot send before the client has.
pub const GATEWAY_PROTOCOL: u32 = 4;

/// One connection the gateway holds, as its table row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayConnection {
    /// The gateway's id for it.
    pub connection_id: String,
    /// Who it is: known at connect when the handshake carried a token, else once its
    /// `auth` message is verified.
    pub identity: Option<Identity>,
    /// Where the client asked to resume (`?resume=`).
    pub resume_after: Option<Seq>,
    /// The number of the last event it was sent; `None` until `connected` was sent
    /// (on the client's first message).
    pub sent: Option<Seq>,
    /// When it connected, in milliseconds since the epoch.
    pub connected_at_ms: u64,
    /// When it last sent something, in milliseconds since the epoch.
    pub last_activity_ms: u64,
}

impl GatewayConnection {
    /// Whether `connected` was sent on it, so events may follow.
    pub fn is_open(&self) -> bool {
        self.sent.is_some() && self.identity.is_some()
    }

    /// Whether live messages (not numbered) reach it: once it is known who it is, a
    /// little before `connected` is sent, so a message sent to a user whose client has
    /// just seen `connected` is not missed; it may come just before `connected`.
    pub fn is_live(&self) -> bool {
        self.identity.is_some()
    }

    fn user_id(&self) -> Option<&str> {
        self.identity
            .as_ref()
            .map(|identity| identity.user_id.as_str())
    }
}

/// The table of connections every invocation shares (DynamoDB's, on AWS).
pub trait ConnectionTable: Send + Sync + 'static {
    /// Records a new connection.
    fn insert(&self, connection: GatewayConnection) -> BoxFuture<'static, StoreResult<()>>;

    /// A connection, if it is recorded.
    fn get(
        &self,
        connection_id: String,
    ) -> BoxFuture<'static, StoreResult<Option<GatewayConnection>>>;

    /// Forgets a connection.
    fn remove(&self, connection_id: String) -> BoxFuture<'static, StoreResult<()>>;

    /// Every connection of a user.
    fn of_user(&self, user_id: String) -> BoxFuture<'static, StoreResult<Vec<GatewayConnection>>>;

    /// Every connection.
    fn all(&self) -> BoxFuture<'static, StoreResult<Vec<GatewayConnection>>>;

    /// Replaces a connection's row with `connection`, only if it is still recorded and
    /// its `sent` is still `expected`; whether it did.
    fn replace(
        &self,
        connection: GatewayConnection,
        expected: Option<Seq>,
    ) -> BoxFuture<'static, StoreResult<bool>>;

    /// Records who a connection is after its token was renewed, leaving the rest of its
    /// row (`sent` above all, which deliveries move meanwhile) as it is; whether it is
    /// still recorded.
    fn renew(
        &self,
        connection_id: String,
        identity: Identity,
    ) -> BoxFuture<'static, StoreResult<bool>>;

    /// Claims the opening of a connection (marks it, if no invocation did): whether
    /// this invocation has it.
    fn claim(&self, connection_id: String) -> BoxFuture<'static, StoreResult<bool>>;

    /// Notes that a connection sent something now.
    fn touch(&self, connection_id: String, at_ms: u64) -> BoxFuture<'static, StoreResult<()>>;
}

/// Why the gateway did not take a frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PostError {
    /// The connection is gone (API Gateway's 410).
    #[error("the connection is gone")]
    Gone,
    /// The gateway is throttling (API Gateway's `LimitExceededException`): what was
    /// not sent stays in the store for the client's resume.
    #[error("the gateway is throttling")]
    Throttled,
    /// Anything else.
    #[error("the gateway failed: {0}")]
    Failed(String),
}

/// The gateway's API: what reaches its connections (API Gateway's Management API).
pub trait Gateway: Send + Sync + 'static {
    /// Sends one text frame to a connection.
    fn post(
        &self,
        connection_id: String,
        frame: String,
    ) -> BoxFuture<'static, Result<(), PostError>>;

    /// Closes a connection.
    fn close(&self, connection_id: String) -> BoxFuture<'static, Result<(), PostError>>;
}

/// The subprotocol of [`GATEWAY_PROTOCOL`], if the client offered it: older versions
/// wait for the server to speak first, which a gateway cannot.
pub fn gateway_subprotocol(offered: &str) -> Option<&'static str> {
    let wanted = SUPPORTED_SUBPROTOCOLS
        .iter()
        .find(|name| Wire::negotiated(Some(name)).version() == GATEWAY_PROTOCOL)?;
    offered
        .split(',')
        .map(str::trim)
        .any(|name| name == *wanted)
        .then_some(*wanted)
}

/// The time an [`Identity`]'s token expires, as seconds since the epoch: how a
/// gateway's table and authorizer context carry it.
pub fn expiry_secs(identity: &Identity) -> Option<u64> {
    identity
        .expires_at
        .and_then(|at| at.duration_since(UNIX_EPOCH).ok())
        .map(|since| since.as_secs())
}

/// The inverse of [`expiry_secs`].
pub fn expiry_from_secs(secs: Option<u64>) -> Option<SystemTime> {
    secs.map(|secs| UNIX_EPOCH + Duration::from_secs(secs))
}
