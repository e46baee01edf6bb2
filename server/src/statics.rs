//! The static files of `STATIC_DIR` (a built web app), served without what a folder
//! may hold besides the app: no dotfiles (`.env`, `.git/`), nothing reached through a
//! symbolic link. Unknown paths get `index.html`, as a single-page app expects.

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use tower_http::services::{ServeDir, ServeFile};

/// The service for `dir`, to be a router's fallback.
pub(crate) fn service(dir: &Path) -> Router {
    let index = ServeFile::new(dir.join("index.html"));
    Router::new()
        .fallback_service(ServeDir::new(dir).fallback(index))
        .layer(middleware::from_fn_with_state(
            Arc::new(dir.to_path_buf()),
            only_plain_files,
        ))
}

async fn only_plain_files(
    State(dir): State<Arc<PathBuf>>,
    request: Request,
    next: Next,
) -> Response {
    match plain_path(request.uri().path()) {
        Some(relative) if !through_a_link(&dir, &relative).await => next.run(request).await,
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

/// The request path as a relative file path, or `None` when a segment is hidden (starts
/// with a dot, once percent-decoded) or is not a plain name.
fn plain_path(path: &str) -> Option<PathBuf> {
    let mut relative = PathBuf::new();
    for segment in path.split('/').filter(|segment| !segment.is_empty()) {
        let segment = percent_decoded(segment)?;
        if segment.starts_with('.') || segment.contains(['/', '\\', '\0']) {
            return None;
        }
        relative.push(segment);
    }
    relative
        .components()
        .all(|component| matches!(component, Component::Normal(_)))
        .then_some(relative)
}

/// Whether any existing component of `dir/relative` is a symbolic link.
async fn through_a_link(dir: &Path, relative: &Path) -> bool {
    let mut path = dir.to_path_buf();
    for component in relative.components() {
        path.push(component);
        match tokio::fs::symlink_metadata(&path).await {
            Ok(metadata) if metadata.file_type().is_symlink() => return true,
            Ok(_) => {}
            // What does not exist is the app's route: index.html answers it.
            Err(_) => return false,
        }
    }
    false
}

fn percent_decoded(segment: &str) -> Option<String> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&byte) = bytes.get(i) {
        if byte == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(byte);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::plain_path;

    #[test]
    fn hidden_and_odd_segments_are_refused() {
        assert!(plain_path("/index.html").is_some());
        assert!(plain_path("/").is_some());
        assert!(plain_path("/assets/app.js").is_some());
        for bad in [
            "/.env",
            "/%2Eenv",
            "/a/.git/config",
            "/a/%2e%2e/b",
            "/a%2Fb",
            "/%zz",
            "/a/../b",
        ] {
            assert!(plain_path(bad).is_none(), "{bad}");
        }
    }
}
