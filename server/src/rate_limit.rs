//! A per-connection token bucket: a sustained rate plus a burst.

use std::time::{Duration, Instant};

/// How many refused messages in a row mark a client as abusive (it is then closed).
const ABUSE_THRESHOLD: u32 = 100;

/// Limits one connection's messages.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    per_sec: f64,
    capacity: f64,
    tokens: f64,
    updated: Option<Instant>,
    refused_in_a_row: u32,
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
            refused_in_a_row: 0,
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
            self.refused_in_a_row = 0;
            Ok(())
        } else {
            self.refused_in_a_row = self.refused_in_a_row.saturating_add(1);
            Err(Duration::from_secs_f64((1.0 - self.tokens) / self.per_sec))
        }
    }

    /// Whether the client keeps sending although it is refused.
    pub(crate) fn is_abusive(&self) -> bool {
        self.refused_in_a_row >= ABUSE_THRESHOLD
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn persistent_flooding_is_abusive() {
        let now = Instant::now();
        let mut limiter = RateLimiter::new(1, 1);
        limiter.check(now).unwrap();
        for _ in 0..ABUSE_THRESHOLD {
            assert!(!limiter.is_abusive());
            let _ = limiter.check(now);
        }
        assert!(limiter.is_abusive());
    }
}
