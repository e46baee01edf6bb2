//! Token buckets (a sustained rate plus a burst), one per connection and one per user
//! across all their connections, and how refusals in a row mark a client as abusive.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How many refused messages in a row mark a client as abusive (it is then closed).
const ABUSE_THRESHOLD: u32 = 100;

/// A token bucket.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    per_sec: f64,
    capacity: f64,
    tokens: f64,
    updated: Option<Instant>,
}

impl RateLimiter {
    /// `per_sec` messages per second sustained, `burst` more at once.
    pub(crate) fn new(per_sec: u32, burst: u32) -> Self {
        let capacity = f64::from(burst.max(1));
        Self {
            per_sec: f64::from(per_sec.max(1)),
            capacity,
            tokens: capacity,
            updated: None,
        }
    }

    /// Takes a token, or says how long until one is available.
    pub(crate) fn check(&mut self, now: Instant) -> Result<(), Duration> {
        if let Some(updated) = self.updated {
            let elapsed = now.saturating_duration_since(updated).as_secs_f64();
            self.tokens = (self.tokens + elapsed * self.per_sec).min(self.capacity);
        }
        self.updated = Some(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - self.tokens) / self.per_sec))
        }
    }
}

/// A user's bucket, shared by their connections on this node.
pub(crate) type SharedLimiter = Arc<Mutex<RateLimiter>>;

/// One connection's limits: its own bucket and its user's.
#[derive(Debug)]
pub(crate) struct Limits {
    connection: RateLimiter,
    user: SharedLimiter,
    refused_in_a_row: u32,
}

/// Which bucket refused a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// This connection sends too fast.
    Connection(Duration),
    /// The user's connections together send too fast.
    User(Duration),
}

impl Refused {
    /// How long until a message would pass.
    pub(crate) fn retry_after(self) -> Duration {
        match self {
            Refused::Connection(after) | Refused::User(after) => after,
        }
    }
}

impl Limits {
    pub(crate) fn new(connection: RateLimiter, user: SharedLimiter) -> Self {
        Self {
            connection,
            user,
            refused_in_a_row: 0,
        }
    }

    /// Takes a token from both buckets; a message the connection may not send costs
    /// the user nothing.
    pub(crate) fn check(&mut self, now: Instant) -> Result<(), Refused> {
        let result = self
            .connection
            .check(now)
            .map_err(Refused::Connection)
            .and_then(|()| {
                let mut user = self.user.lock().unwrap_or_else(|p| p.into_inner());
                user.check(now).map_err(Refused::User)
            });
        match result {
            Ok(()) => self.refused_in_a_row = 0,
            Err(_) => self.refused_in_a_row = self.refused_in_a_row.saturating_add(1),
        }
        result
    }

    /// Whether the client keeps sending although it is refused.
    pub(crate) fn is_abusive(&self) -> bool {
        self.refused_in_a_row >= ABUSE_THRESHOLD
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared(per_sec: u32, burst: u32) -> SharedLimiter {
        Arc::new(Mutex::new(RateLimiter::new(per_sec, burst)))
    }

    #[test]
    fn burst_then_sustained_rate() {
        let start = Instant::now();
        let mut limiter = RateLimiter::new(10, 5);
        for _ in 0..5 {
            assert!(limiter.check(start).is_ok());
        }
        let wait = limiter.check(start).unwrap_err();
        assert!(wait <= Duration::from_millis(100) && wait > Duration::ZERO);
        assert!(limiter.check(start + Duration::from_millis(100)).is_ok());
        assert!(limiter.check(start + Duration::from_millis(100)).is_err());
        assert!(limiter.check(start + Duration::from_secs(10)).is_ok());
    }

    #[test]
    fn connections_of_one_user_share_the_users_rate() {
        let now = Instant::now();
        let user = shared(1, 3);
        let mut first = Limits::new(RateLimiter::new(100, 100), Arc::clone(&user));
        let mut second = Limits::new(RateLimiter::new(100, 100), Arc::clone(&user));
        assert!(first.check(now).is_ok());
        assert!(second.check(now).is_ok());
        assert!(first.check(now).is_ok());
        assert!(matches!(second.check(now), Err(Refused::User(_))));
        assert!(matches!(first.check(now), Err(Refused::User(_))));
    }

    #[test]
    fn a_connection_over_its_own_rate_spends_nothing_of_the_users() {
        let now = Instant::now();
        let user = shared(1, 2);
        let mut fast = Limits::new(RateLimiter::new(1, 1), Arc::clone(&user));
        let mut other = Limits::new(RateLimiter::new(100, 100), Arc::clone(&user));
        assert!(fast.check(now).is_ok());
        for _ in 0..10 {
            assert!(matches!(fast.check(now), Err(Refused::Connection(_))));
        }
        assert!(other.check(now).is_ok());
    }

    #[test]
    fn persistent_flooding_is_abusive() {
        let now = Instant::now();
        let mut limits = Limits::new(RateLimiter::new(1, 1), shared(1000, 1000));
        limits.check(now).unwrap();
        for _ in 0..ABUSE_THRESHOLD {
            assert!(!limits.is_abusive());
            let _ = limits.check(now);
        }
        assert!(limits.is_abusive());
    }
}
