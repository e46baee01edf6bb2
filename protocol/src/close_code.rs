//! WebSocket close codes and the reconnect policy both ends share.

use std::fmt;

/// A WebSocket close code as Relaywire uses it.
///
/// Codes 1000–1015 are the standard ones (RFC 6455); 4000–4999 are Relaywire's own.
/// [`CloseCode::action`] is the one policy that says what a client does next, so the
/// server decides a client's behaviour by the code it closes with.
///
/// ```
/// use relaywire_protocol::{CloseAction, CloseCode};
///
/// assert_eq!(CloseCode::from(4002), CloseCode::TokenExpired);
/// assert_eq!(CloseCode::TokenExpired.action(), CloseAction::RefreshToken);
/// assert_eq!(CloseCode::GoingAway.action(), CloseAction::ReconnectSoon);
/// assert_eq!(CloseCode::InternalError.action(), CloseAction::Reconnect);
/// assert_eq!(CloseCode::SessionReplaced.action(), CloseAction::Stop);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CloseCode {
    /// 1000: the connection did what it was for. A client that receives it stops.
    Normal,
    /// 1001: the server is shutting down or restarting.
    GoingAway,
    /// 1002: the peer broke the WebSocket protocol.
    ProtocolError,
    /// 1003: the peer sent a kind of data the endpoint cannot accept (binary frames).
    UnsupportedData,
    /// 1005: the close frame carried no code. Never sent, only observed.
    NoStatus,
    /// 1006: the connection dropped without a close frame. Never sent, only observed.
    Abnormal,
    /// 1007: a text frame was not valid UTF-8.
    InvalidPayload,
    /// 1008: policy violation; servers configured like the Fastify one use it for bad auth.
    PolicyViolation,
    /// 1009: a frame was over the size limit.
    MessageTooBig,
    /// 1011: the server hit an unexpected condition.
    InternalError,
    /// 1012: the server is restarting.
    ServiceRestart,
    /// 1013: the server is overloaded; try again later.
    TryAgainLater,
    /// 4000: the client gave up on a connection that stopped answering (a connect or
    /// heartbeat timeout). Only clients send it.
    ClientGaveUp,
    /// 4001: authentication failed: the token is missing or invalid.
    AuthFailed,
    /// 4002: the token has expired; get a fresh one before reconnecting.
    TokenExpired,
    /// 4003: a newer connection of the same user replaced this one (one connection per user).
    SessionReplaced,
    /// 4004: the client sent too fast for too long.
    RateLimited,
    /// 4005: the client speaks a protocol version the server does not.
    UnsupportedVersion,
    /// 4006: the client read too slowly and its outbound queue overflowed.
    SlowConsumer,
    /// 4007: nothing arrived within the connection timeout.
    IdleTimeout,
    /// 4008: an operator disconnected this user on purpose.
    Kicked,
    /// 4009: the first `auth` message did not arrive in time.
    AuthTimeout,
    /// Any other code, kept as received.
    Other(u16),
}

/// What a client does after the server closed its connection with a given code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CloseAction {
    /// Reconnect with backoff.
    Reconnect,
    /// The server is going away or restarting (1001, 1012) while others can take the
    /// connection: the first retry after a healthy connection goes at once, spread over
    /// a short jittered window (the jitter share of the first backoff step) so its
    /// clients do not all come back together; retries after it back off as usual.
    ReconnectSoon,
    /// Fetch a fresh token first, then reconnect; stop if that token fails too.
    RefreshToken,
    /// Do not reconnect; the application decides what happens next.
    Stop,
}

impl CloseCode {
    /// Every named code, in declaration order.
    pub const ALL: [CloseCode; 22] = [
        CloseCode::Normal,
        CloseCode::GoingAway,
        CloseCode::ProtocolError,
        CloseCode::UnsupportedData,
        CloseCode::NoStatus,
        CloseCode::Abnormal,
        CloseCode::InvalidPayload,
        CloseCode::PolicyViolation,
        CloseCode::MessageTooBig,
        CloseCode::InternalError,
        CloseCode::ServiceRestart,
        CloseCode::TryAgainLater,
        CloseCode::ClientGaveUp,
        CloseCode::AuthFailed,
        CloseCode::TokenExpired,
        CloseCode::SessionReplaced,
        CloseCode::RateLimited,
        CloseCode::UnsupportedVersion,
        CloseCode::SlowConsumer,
        CloseCode::IdleTimeout,
        CloseCode::Kicked,
        CloseCode::AuthTimeout,
    ];

    /// The numeric code.
    pub const fn code(self) -> u16 {
        match self {
            CloseCode::Normal => 1000,
            CloseCode::GoingAway => 1001,
            CloseCode::ProtocolError => 1002,
            CloseCode::UnsupportedData => 1003,
            CloseCode::NoStatus => 1005,
            CloseCode::Abnormal => 1006,
            CloseCode::InvalidPayload => 1007,
            CloseCode::PolicyViolation => 1008,
            CloseCode::MessageTooBig => 1009,
            CloseCode::InternalError => 1011,
            CloseCode::ServiceRestart => 1012,
            CloseCode::TryAgainLater => 1013,
            CloseCode::ClientGaveUp => 4000,
            CloseCode::AuthFailed => 4001,
            CloseCode::TokenExpired => 4002,
            CloseCode::SessionReplaced => 4003,
            CloseCode::RateLimited => 4004,
            CloseCode::UnsupportedVersion => 4005,
            CloseCode::SlowConsumer => 4006,
            CloseCode::IdleTimeout => 4007,
            CloseCode::Kicked => 4008,
            CloseCode::AuthTimeout => 4009,
            CloseCode::Other(code) => code,
        }
    }

    /// What a client does after a close with this code.
    ///
    /// Auth failures ask for one token refresh; codes that mean "another session or an
    /// operator wants you gone", "normal" and version mismatch stop; the rest reconnect.
    /// Unknown codes in 4500–4999 stop and all other unknown codes reconnect, so a
    /// server can add codes of either kind that older clients already handle.
    pub const fn action(self) -> CloseAction {
        match self {
            CloseCode::AuthFailed | CloseCode::TokenExpired | CloseCode::PolicyViolation => {
                CloseAction::RefreshToken
            }
            CloseCode::Normal
            | CloseCode::SessionReplaced
            | CloseCode::UnsupportedVersion
            | CloseCode::Kicked => CloseAction::Stop,
            CloseCode::Other(4500..=4999) => CloseAction::Stop,
            CloseCode::GoingAway | CloseCode::ServiceRestart => CloseAction::ReconnectSoon,
            _ => CloseAction::Reconnect,
        }
    }

    /// Whether an endpoint may send this code in a close frame (1005 and 1006 are only
    /// ever observed; 1015 and reserved ranges are not sendable).
    pub const fn is_sendable(self) -> bool {
        match self {
            CloseCode::NoStatus | CloseCode::Abnormal => false,
            CloseCode::Other(code) => matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999),
            _ => true,
        }
    }

    /// A short reason to put in the close frame (under the 123-byte limit).
    pub const fn reason(self) -> &'static str {
        match self {
            CloseCode::Normal => "normal closure",
            CloseCode::GoingAway => "server going away",
            CloseCode::ProtocolError => "protocol error",
            CloseCode::UnsupportedData => "binary frames are not supported",
            CloseCode::NoStatus => "no status",
            CloseCode::Abnormal => "connection lost",
            CloseCode::InvalidPayload => "invalid UTF-8",
            CloseCode::PolicyViolation => "policy violation",
            CloseCode::MessageTooBig => "message too big",
            CloseCode::InternalError => "internal error",
            CloseCode::ServiceRestart => "service restart",
            CloseCode::TryAgainLater => "try again later",
            CloseCode::ClientGaveUp => "the client gave up waiting",
            CloseCode::AuthFailed => "authentication failed",
            CloseCode::TokenExpired => "token expired",
            CloseCode::SessionReplaced => "replaced by a newer connection",
            CloseCode::RateLimited => "rate limited",
            CloseCode::UnsupportedVersion => "unsupported protocol version",
            CloseCode::SlowConsumer => "client too slow",
            CloseCode::IdleTimeout => "idle timeout",
            CloseCode::Kicked => "disconnected by the server",
            CloseCode::AuthTimeout => "authentication timeout",
            CloseCode::Other(_) => "",
        }
    }
}

impl From<u16> for CloseCode {
    fn from(code: u16) -> Self {
        let mut index = 0;
        while index < CloseCode::ALL.len() {
            if CloseCode::ALL[index].code() == code {
                return CloseCode::ALL[index];
            }
            index += 1;
        }
        CloseCode::Other(code)
    }
}

impl From<CloseCode> for u16 {
    fn from(code: CloseCode) -> u16 {
        code.code()
    }
}

impl fmt::Display for CloseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.code(), self.reason())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_named_code_round_trips_through_u16() {
        for code in CloseCode::ALL {
            assert_eq!(CloseCode::from(code.code()), code, "{code:?}");
        }
        assert_eq!(CloseCode::from(4321), CloseCode::Other(4321));
    }

    #[test]
    fn seed_close_codes_have_their_numbers() {
        assert_eq!(CloseCode::Normal.code(), 1000);
        assert_eq!(CloseCode::GoingAway.code(), 1001);
        assert_eq!(CloseCode::PolicyViolation.code(), 1008);
        assert_eq!(CloseCode::MessageTooBig.code(), 1009);
        assert_eq!(CloseCode::InternalError.code(), 1011);
        assert_eq!(CloseCode::AuthFailed.code(), 4001);
    }

    #[test]
    fn policy_separates_retry_refresh_and_stop() {
        use CloseAction::*;
        let expected = [
            (1000, Stop),
            (1001, ReconnectSoon),
            (1006, Reconnect),
            (1008, RefreshToken),
            (1009, Reconnect),
            (1011, Reconnect),
            (1012, ReconnectSoon),
            (1013, Reconnect),
            (4001, RefreshToken),
            (4002, RefreshToken),
            (4003, Stop),
            (4004, Reconnect),
            (4005, Stop),
            (4006, Reconnect),
            (4008, Stop),
            (4400, Reconnect),
            (4600, Stop),
            (3000, Reconnect),
        ];
        for (code, action) in expected {
            assert_eq!(CloseCode::from(code).action(), action, "code {code}");
        }
    }

    #[test]
    fn reasons_fit_in_a_close_frame_and_observed_codes_are_not_sendable() {
        for code in CloseCode::ALL {
            assert!(code.reason().len() <= 123);
        }
        assert!(!CloseCode::Abnormal.is_sendable());
        assert!(!CloseCode::NoStatus.is_sendable());
        assert!(CloseCode::AuthFailed.is_sendable());
        assert!(!CloseCode::Other(1015).is_sendable());
        assert!(!CloseCode::Other(5000).is_sendable());
    }
}
