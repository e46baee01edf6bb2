//! Reconnect delays: exponential backoff with jitter and a cap, and the small PRNG
//! that draws the jitter (seeded by the driver, so tests are deterministic).

/// How a client retries after losing its connection.
///
/// The n-th retry waits `min(max_delay_ms, initial_delay_ms * factor^(n-1))`, less a
/// random share of up to `jitter` of it, so clients that lost the same server do not
/// come back at the same instant. A server that closes a healthy connection going away
/// or restarting (1001, 1012) gets one uncounted retry first, within `jitter ×
/// initial_delay_ms`. The Next-Auth guide's settings are
/// `ReconnectPolicy { max_attempts: Some(5), initial_delay_ms: 1000, max_delay_ms: 5000, .. }`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReconnectPolicy {
    /// Delay before the first retry, in milliseconds. Default 1000.
    pub initial_delay_ms: u32,
    /// The cap, in milliseconds. Default 30000.
    pub max_delay_ms: u32,
    /// Growth per retry. Default 2.
    pub factor: f64,
    /// Share of each delay drawn at random, 0 (none) to 1 (full jitter). Default 0.5.
    pub jitter: f64,
    /// Retries before giving up (`failed`); `None` retries forever. Default `None`.
    pub max_attempts: Option<u32>,
    /// A connection open at least this long resets the retry count, in milliseconds.
    /// Default 5000.
    pub reset_after_ms: u32,
}

impl Default for ReconnectPolicy {
    fn default() -> Self {
        Self {
            initial_delay_ms: 1_000,
            max_delay_ms: 30_000,
            factor: 2.0,
            jitter: 0.5,
            max_attempts: None,
            reset_after_ms: 5_000,
        }
    }
}

impl ReconnectPolicy {
    /// The delay before retry number `attempt` (1-based), given a random `unit` in [0, 1).
    pub fn delay(&self, attempt: u32, unit: f64) -> u64 {
        let exponent = attempt.saturating_sub(1).min(64) as i32;
        let grown = f64::from(self.initial_delay_ms) * self.factor.max(1.0).powi(exponent);
        let capped = grown.min(f64::from(self.max_delay_ms));
        let jitter = self.jitter.clamp(0.0, 1.0);
        let delay = capped * (1.0 - jitter * unit.clamp(0.0, 1.0));
        delay.max(0.0) as u64
    }
}

/// xorshift64*: small, fast, and good enough for jitter and id prefixes.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        // Zero is the one state xorshift never leaves.
        Self(seed ^ 0x9E37_79B9_7F4A_7C15 | 1)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in [0, 1).
    pub(crate) fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_then_cap_without_jitter() {
        let policy = ReconnectPolicy {
            jitter: 0.0,
            ..ReconnectPolicy::default()
        };
        let delays: Vec<u64> = (1..=7).map(|n| policy.delay(n, 0.99)).collect();
        assert_eq!(delays, [1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000]);
        assert_eq!(policy.delay(u32::MAX, 0.5), 30_000);
    }

    #[test]
    fn the_next_auth_guide_settings_are_expressible() {
        let policy = ReconnectPolicy {
            initial_delay_ms: 1_000,
            max_delay_ms: 5_000,
            max_attempts: Some(5),
            jitter: 0.0,
            ..ReconnectPolicy::default()
        };
        let delays: Vec<u64> = (1..=5).map(|n| policy.delay(n, 0.0)).collect();
        assert_eq!(delays, [1_000, 2_000, 4_000, 5_000, 5_000]);
    }

    #[test]
    fn jitter_only_shortens_and_stays_in_its_band() {
        let policy = ReconnectPolicy::default();
        let mut rng = Rng::new(42);
        for attempt in 1..=10 {
            let full = ReconnectPolicy {
                jitter: 0.0,
                ..policy
            }
            .delay(attempt, 0.0);
            for _ in 0..100 {
                let delay = policy.delay(attempt, rng.unit());
                assert!(
                    delay <= full && delay >= full / 2,
                    "{attempt}: {delay} of {full}"
                );
            }
        }
    }

    #[test]
    fn rng_is_deterministic_and_spread() {
        let mut a = Rng::new(7);
        let mut b = Rng::new(7);
        let draws: Vec<f64> = (0..1000).map(|_| a.unit()).collect();
        assert!(
            draws
                .iter()
                .zip((0..1000).map(|_| b.unit()))
                .all(|(x, y)| *x == y)
        );
        assert!(draws.iter().all(|u| (0.0..1.0).contains(u)));
        let mean = draws.iter().sum::<f64>() / 1000.0;
        assert!((0.4..0.6).contains(&mean), "{mean}");
        let mut zero = Rng::new(0x9E37_79B9_7F4A_7C15);
        assert_ne!(zero.next_u64(), 0);
    }
}
