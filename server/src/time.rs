//! Timestamps as the protocol writes them.

use std::time::SystemTime;

/// Now, as RFC 3339 in UTC with milliseconds: `2024-01-01T12:00:00.000Z`.
pub fn now_rfc3339() -> String {
    rfc3339(SystemTime::now())
}

/// A time as RFC 3339 in UTC with milliseconds.
pub fn rfc3339(time: SystemTime) -> String {
    humantime::format_rfc3339_millis(time).to_string()
}
