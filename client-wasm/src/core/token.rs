//! Tokens from a token source: what a fetch's result means, and when a JWT expires.
//!
//! Both drivers turn their platform's result (a JavaScript promise, a Rust future)
//! into [`TokenOutcome`] with [`TokenOutcome::from_fetch`], so a token source behaves
//! the same in the browser and natively.

use super::Millis;

/// The outcome of a token fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenOutcome<'a> {
    /// A token, and when it expires (same clock as `now`) if known.
    Token {
        /// The token.
        token: &'a str,
        /// When it expires.
        expires_at: Option<Millis>,
    },
    /// No session: the user is signed out. The client stops as unauthorized.
    SignedOut,
    /// The fetch failed; it may work later. The client retries with backoff.
    Failed,
}

impl<'a> TokenOutcome<'a> {
    /// What a token source's result means: a token (a JWT's `exp` gives its expiry), no
    /// token or an empty one (signed out), or a failure (`Err`: try again later).
    ///
    /// `now` is the core's clock and `epoch_ms` the wall clock at the same instant.
    ///
    /// ```
    /// use relaywire_client::core::TokenOutcome;
    ///
    /// assert_eq!(TokenOutcome::from_fetch(Ok(None), 0, 0), TokenOutcome::SignedOut);
    /// assert_eq!(TokenOutcome::from_fetch(Ok(Some("")), 0, 0), TokenOutcome::SignedOut);
    /// assert_eq!(TokenOutcome::from_fetch(Err(()), 0, 0), TokenOutcome::Failed);
    /// // {"exp": 100} expires 100 s after the epoch: 40 s from an epoch clock at 60 s.
    /// let jwt = "e30.eyJleHAiOjEwMH0.c2ln";
    /// assert_eq!(
    ///     TokenOutcome::from_fetch(Ok(Some(jwt)), 5, 60_000),
    ///     TokenOutcome::Token { token: jwt, expires_at: Some(40_005) },
    /// );
    /// ```
    pub fn from_fetch(result: Result<Option<&'a str>, ()>, now: Millis, epoch_ms: u64) -> Self {
        match result {
            Err(()) => TokenOutcome::Failed,
            Ok(None) => TokenOutcome::SignedOut,
            Ok(Some("")) => TokenOutcome::SignedOut,
            Ok(Some(token)) => TokenOutcome::Token {
                token,
                expires_at: jwt_expiry(token)
                    .map(|exp_ms| now.saturating_add(exp_ms.saturating_sub(epoch_ms))),
            },
        }
    }
}

/// The value of one base64url character, padding and anything else `None`.
fn sextet(byte: u8) -> Option<u32> {
    let value = match byte {
        b'A'..=b'Z' => byte - b'A',
        b'a'..=b'z' => byte - b'a' + 26,
        b'0'..=b'9' => byte - b'0' + 52,
        b'-' | b'+' => 62,
        b'_' | b'/' => 63,
        _ => return None,
    };
    Some(u32::from(value))
}

/// Expiry times are below this many seconds (over 300,000 years), so their
/// milliseconds fit in a `u64`.
const MAX_EXP_SECONDS: u64 = 10_000_000_000_000;

/// Where the scan for `"exp": <digits>` stands.
#[derive(Clone, Copy)]
enum Scan {
    /// This many bytes of `"exp"` matched.
    Key(usize),
    /// After the key, before the colon.
    Colon,
    /// After the colon, before the first digit.
    Value,
    /// Reading digits.
    Digits(u64),
}

const KEY: &[u8] = b"\"exp\"";

impl Scan {
    /// The state after `byte`; `Err` ends the scan with its result.
    fn next(self, byte: u8) -> Result<Scan, Option<u64>> {
        let restart = Scan::Key(usize::from(byte == b'"'));
        Ok(match self {
            Scan::Key(matched) if KEY.get(matched) == Some(&byte) => {
                if matched + 1 == KEY.len() {
                    Scan::Colon
                } else {
                    Scan::Key(matched + 1)
                }
            }
            Scan::Key(_) => restart,
            Scan::Colon | Scan::Value if byte.is_ascii_whitespace() => self,
            Scan::Colon if byte == b':' => Scan::Value,
            Scan::Colon => restart,
            Scan::Value if byte.is_ascii_digit() => Scan::Digits(u64::from(byte - b'0')),
            Scan::Value => return Err(None),
            // Plain comparisons instead of `checked_mul`, whose 128-bit multiply would
            // ship in the browser build; any real `exp` has far fewer digits.
            Scan::Digits(seconds) if byte.is_ascii_digit() && seconds < MAX_EXP_SECONDS => {
                Scan::Digits(seconds * 10 + u64::from(byte - b'0'))
            }
            Scan::Digits(seconds) => return Err(Some(seconds)),
        })
    }
}

/// When a JWT expires, in milliseconds since the epoch, from the `exp` claim of its
/// (unverified) claims; `None` when it is not a JWT or says nothing.
///
/// Reads a top-level `"exp": <number>` without a JSON parser (the browser build carries
/// none): a key is a quoted name followed by a colon, which a string value cannot be.
/// The claims are base64url-decoded and scanned in one pass, without allocating and
/// without `str` searching and slicing, whose panic and formatting paths would
/// otherwise ship in the browser build.
fn jwt_expiry(token: &str) -> Option<u64> {
    let mut claims = token.bytes().skip_while(|b| *b != b'.').skip(1);
    let mut buffer: u32 = 0;
    let mut bits = 0;
    let mut scan = Scan::Key(0);
    let seconds = loop {
        let Some(char) = claims.next().filter(|b| *b != b'.' && *b != b'=') else {
            break match scan {
                Scan::Digits(seconds) => Some(seconds),
                _ => None,
            };
        };
        buffer = (buffer << 6) | sextet(char)?;
        bits += 6;
        if bits < 8 {
            continue;
        }
        bits -= 8;
        match scan.next((buffer >> bits) as u8) {
            Ok(next) => scan = next,
            Err(result) => break result,
        }
    };
    seconds
        .filter(|seconds| *seconds < MAX_EXP_SECONDS)
        .map(|seconds| seconds * 1_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(claims: &str) -> String {
        const ALPHABET: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let bytes = claims.as_bytes();
        let mut encoded = String::new();
        for chunk in bytes.chunks(3) {
            let n =
                chunk.iter().fold(0u32, |n, b| (n << 8) | u32::from(*b)) << (8 * (3 - chunk.len()));
            for i in 0..=chunk.len() {
                encoded.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            }
        }
        format!("e30.{encoded}.sig")
    }

    #[test]
    fn the_exp_claim_is_found_wherever_it_stands() {
        assert_eq!(
            jwt_expiry(&jwt(r#"{"exp":1700000000}"#)),
            Some(1_700_000_000_000)
        );
        assert_eq!(
            jwt_expiry(&jwt(r#"{"sub":"exp","name":"\"exp\"", "exp" : 42, "x":1}"#)),
            Some(42_000)
        );
        assert_eq!(jwt_expiry(&jwt(r#"{"sub":"u"}"#)), None);
        assert_eq!(jwt_expiry("not a jwt"), None);
        assert_eq!(jwt_expiry("a.!!!.c"), None);
        assert_eq!(jwt_expiry(&jwt(r#"{"exp":99999999999999999999999}"#)), None);
    }

    #[test]
    fn an_expiry_in_the_past_is_now() {
        let token = jwt(r#"{"exp":10}"#);
        assert_eq!(
            TokenOutcome::from_fetch(Ok(Some(&token)), 500, 20_000),
            TokenOutcome::Token {
                token: &token,
                expires_at: Some(500)
            }
        );
    }
}
