//! Event sequence numbers: integers that stay exact in JavaScript.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

/// The position of a stored event in one user's numbered stream: the server numbers
/// every event it stores for a user 1, 2, 3, ... Clients remember the last one they saw
/// and resume from it.
///
/// At most 2^53 − 1, so `JSON.parse` reads it exactly; it is a `number` in TypeScript.
///
/// ```
/// use relaywire_protocol::Seq;
///
/// let seq = Seq::new(42).unwrap();
/// assert_eq!(seq.get(), 42);
/// assert!(Seq::new(1 << 53).is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS), ts(type = "number"))]
#[serde(transparent)]
pub struct Seq(u64);

/// A sequence number beyond what JavaScript numbers hold exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("sequence number {0} is over 2^53 - 1")]
pub struct SeqOutOfRange(pub u64);

impl Seq {
    /// The largest value: `Number.MAX_SAFE_INTEGER`.
    pub const MAX: u64 = (1 << 53) - 1;

    /// A sequence number, if `value` fits.
    pub const fn new(value: u64) -> Result<Seq, SeqOutOfRange> {
        if value <= Self::MAX {
            Ok(Seq(value))
        } else {
            Err(SeqOutOfRange(value))
        }
    }

    /// The number.
    pub const fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for Seq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<'de> Deserialize<'de> for Seq {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = u64::deserialize(deserializer)?;
        Seq::new(value).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seq_rejects_numbers_javascript_cannot_hold() {
        assert_eq!(
            serde_json::from_str::<Seq>("9007199254740991")
                .unwrap()
                .get(),
            Seq::MAX
        );
        assert!(serde_json::from_str::<Seq>("9007199254740992").is_err());
        assert!(serde_json::from_str::<Seq>("-1").is_err());
        assert_eq!(serde_json::to_string(&Seq::new(7).unwrap()).unwrap(), "7");
    }
}
