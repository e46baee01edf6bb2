//! Which pages may call the server, and which of them with the user's cookie.
//!
//! `CORS_ORIGIN` lists origins; `*` lets any page call with a token of its own
//! (`Authorization`, `?token=`, an `auth` message), never with the cookie: a cookie is
//! honoured only from the page's own origin or an origin listed by name. Otherwise any
//! site the user visits could read their history and open a socket as them.

use axum::http::{HeaderMap, HeaderValue, Method, header};
use tower_http::cors::{AllowCredentials, AllowOrigin, CorsLayer};

/// The `CORS_ORIGIN` entry that allows any origin, without credentials.
pub(crate) const ANY: &str = "*";

/// The origins allowed, as configured.
#[derive(Debug, Clone)]
pub(crate) struct Origins {
    /// Origins listed by name: allowed with credentials.
    named: Vec<String>,
    /// Whether `*` was given: any other origin is allowed without credentials.
    any: bool,
}

impl Origins {
    pub(crate) fn new(configured: &[String]) -> Self {
        Self {
            named: configured
                .iter()
                .filter(|origin| *origin != ANY)
                .cloned()
                .collect(),
            any: configured.iter().any(|origin| origin == ANY),
        }
    }

    fn is_named(&self, origin: &str) -> bool {
        self.named
            .iter()
            .any(|named| named.eq_ignore_ascii_case(origin))
    }

    /// Whether a WebSocket handshake with these headers may proceed. Requests without
    /// an `Origin` do not come from a browser, so there is no cross-site page to
    /// protect against.
    pub(crate) fn allows(&self, headers: &HeaderMap) -> bool {
        match origin_of(headers) {
            Origin::Absent => true,
            Origin::Unreadable => false,
            Origin::Named(origin) => {
                self.any || self.is_named(origin) || same_origin(origin, headers)
            }
        }
    }

    /// Whether the request's cookies may stand for the user: no `Origin` (not a
    /// browser), the server's own origin, or one listed by name; never an origin let
    /// in only by `*`.
    pub(crate) fn cookies_allowed(&self, headers: &HeaderMap) -> bool {
        match origin_of(headers) {
            Origin::Absent => true,
            Origin::Unreadable => false,
            Origin::Named(origin) => self.is_named(origin) || same_origin(origin, headers),
        }
    }

    /// The cookies (of `names`) a token may come in on this request: all of them, or
    /// none when [`Origins::cookies_allowed`] says no. Every token source asks here.
    pub(crate) fn usable_cookies<'a>(
        &self,
        headers: &HeaderMap,
        names: &'a [String],
    ) -> &'a [String] {
        if self.cookies_allowed(headers) {
            names
        } else {
            &[]
        }
    }

    /// The CORS layer of the HTTP API: named origins get credentials, `*` answers
    /// every other origin without them.
    pub(crate) fn cors(&self) -> CorsLayer {
        let layer = CorsLayer::new()
            .allow_methods([Method::GET, Method::POST, Method::DELETE])
            .allow_headers([header::CONTENT_TYPE, header::AUTHORIZATION]);
        let named: Vec<HeaderValue> = self
            .named
            .iter()
            .filter_map(|origin| HeaderValue::from_str(origin).ok())
            .collect();
        if !self.any {
            return layer
                .allow_origin(AllowOrigin::list(named))
                .allow_credentials(true);
        }
        if named.is_empty() {
            return layer.allow_origin(AllowOrigin::any());
        }
        // Some origins with credentials, any other without: the origin is echoed (a
        // credentialed answer may not say `*`) and credentials are granted by name.
        let credentialed = self.clone();
        layer
            .allow_origin(AllowOrigin::mirror_request())
            .allow_credentials(AllowCredentials::predicate(move |origin, _| {
                origin
                    .to_str()
                    .is_ok_and(|origin| credentialed.is_named(origin))
            }))
            .vary([header::ORIGIN])
    }
}

enum Origin<'a> {
    Absent,
    Unreadable,
    Named(&'a str),
}

fn origin_of(headers: &HeaderMap) -> Origin<'_> {
    match headers.get(header::ORIGIN).map(HeaderValue::to_str) {
        None => Origin::Absent,
        Some(Ok(origin)) => Origin::Named(origin),
        Some(Err(_)) => Origin::Unreadable,
    }
}

/// Whether `origin` is the server's own, as the request's `Host` names it: the page
/// the server serves itself (`STATIC_DIR`).
fn same_origin(origin: &str, headers: &HeaderMap) -> bool {
    let Some(host) = headers
        .get(header::HOST)
        .and_then(|host| host.to_str().ok())
    else {
        return false;
    };
    origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .is_some_and(|authority| authority.eq_ignore_ascii_case(host))
}

/// Whether `value` is an origin as browsers send it: `scheme://host[:port]`, nothing
/// after.
pub(crate) fn is_origin(value: &str) -> bool {
    let Some((scheme, authority)) = value.split_once("://") else {
        return false;
    };
    // An IPv6 host is bracketed; a port follows the host after its last colon.
    let (host, port) = match authority.rfind(']') {
        Some(end) => (&authority[..=end], authority[end + 1..].strip_prefix(':')),
        None => match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        },
    };
    let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    scheme_ok
        && !host.is_empty()
        && !authority.contains(['/', '?', '#', '@', ' '])
        && port.is_none_or(|port| port.parse::<u16>().is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(origin: Option<&str>, host: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_str(host).unwrap());
        if let Some(origin) = origin {
            headers.insert(header::ORIGIN, HeaderValue::from_str(origin).unwrap());
        }
        headers
    }

    #[test]
    fn any_origin_may_call_but_only_named_and_own_origins_use_the_cookie() {
        let origins = Origins::new(&["*".to_owned(), "https://app.example".to_owned()]);
        let evil = headers(Some("https://evil.example"), "chat.example");
        assert!(origins.allows(&evil));
        assert!(!origins.cookies_allowed(&evil));
        let named = headers(Some("https://app.example"), "chat.example");
        assert!(origins.cookies_allowed(&named));
        let own = headers(Some("https://chat.example"), "chat.example");
        assert!(origins.cookies_allowed(&own));
        let no_browser = headers(None, "chat.example");
        assert!(origins.cookies_allowed(&no_browser));
    }

    #[test]
    fn a_list_without_any_refuses_other_origins() {
        let origins = Origins::new(&["http://localhost:5173".to_owned()]);
        assert!(origins.allows(&headers(Some("http://localhost:5173"), "127.0.0.1:8080")));
        assert!(origins.allows(&headers(Some("http://127.0.0.1:8080"), "127.0.0.1:8080")));
        assert!(!origins.allows(&headers(Some("http://localhost:5174"), "127.0.0.1:8080")));
    }

    #[test]
    fn origins_have_a_scheme_a_host_and_nothing_after() {
        for good in [
            "http://localhost:5173",
            "https://app.example",
            "http://[::1]:8080",
            "chrome-extension://abc",
        ] {
            assert!(is_origin(good), "{good}");
        }
        for bad in [
            "localhost:5173",
            "https://app.example/",
            "https://app.example/path",
            "http://",
            "http://host:port",
            "https://user@app.example",
        ] {
            assert!(!is_origin(bad), "{bad}");
        }
    }
}
