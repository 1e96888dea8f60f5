//! The web dashboard: the static files under `ui/` at the repository root, embedded in the
//! binary and served at `/` and `/ui/{file}`. They need no credentials (they hold none); the
//! page logs in through `POST /api/v1/login` and calls the API with its token.

use super::AppState;
use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// Scripts, styles and connections from this origin only; no inline code, no frames, no
/// plug-ins. `connect-src 'self'` also covers the same origin's `ws:`/`wss:` (CSP level 3).
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

/// One embedded file: its name under `/ui/`, its content type and its bytes.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static str,
}

macro_rules! asset {
    ($name:literal, $type:expr) => {
        Asset {
            name: $name,
            content_type: $type,
            body: include_str!(concat!("../../../../ui/", $name)),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

const ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("style.css", "text/css; charset=utf-8"),
    asset!("app.js", JS),
    asset!("api.js", JS),
    asset!("events.js", JS),
    asset!("table.js", JS),
    asset!("views.js", JS),
    asset!("editor.js", JS),
    asset!("logs.js", JS),
    asset!("terminal.js", JS),
    asset!("map.js", JS),
    asset!("world.js", JS),
    asset!("graph.js", JS),
    // The terminal emulator of `exec` (xterm.js, MIT: ui/vendor/LICENSE.xterm).
    asset!("vendor/xterm.mjs", JS),
    asset!("vendor/xterm-addon-fit.mjs", JS),
    asset!("vendor/xterm.css", "text/css; charset=utf-8"),
];

/// Each asset's validator, computed once (xterm.js alone is a third of a megabyte).
static TAGS: std::sync::LazyLock<Vec<String>> =
    std::sync::LazyLock::new(|| ASSETS.iter().map(|asset| etag(asset.body)).collect());

/// The router's routes of the dashboard (merged beside `/api/v1`).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(index))
        .route("/ui/{file}", get(file))
        .route("/ui/vendor/{file}", get(vendor_file))
}

async fn index(headers: HeaderMap) -> Response {
    serve("index.html", &headers)
}

async fn file(Path(name): Path<String>, headers: HeaderMap) -> Response {
    serve(&name, &headers)
}

async fn vendor_file(Path(name): Path<String>, headers: HeaderMap) -> Response {
    serve(&format!("vendor/{name}"), &headers)
}

fn serve(name: &str, request: &HeaderMap) -> Response {
    let Some((index, asset)) = find(name) else {
        return super::error::ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("the dashboard has no file {name:?}"),
        )
        .into_response();
    };
    let tag = &TAGS[index];
    let unchanged = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == tag));
    let mut response = if unchanged {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        asset.body.into_response()
    };
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    // The files change with the binary: a browser revalidates rather than mixing versions.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(tag) = HeaderValue::from_str(tag) {
        headers.insert(header::ETAG, tag);
    }
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

/// The asset named `name`, with its place in [`ASSETS`].
fn find(name: &str) -> Option<(usize, &'static Asset)> {
    ASSETS
        .iter()
        .enumerate()
        .find(|(_, asset)| asset.name == name)
}

/// A strong validator from the content (FNV-1a: stable across builds, no dependency).
fn etag(body: &str) -> String {
    let hash = body.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("\"{hash:016x}\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_the_page_loads_is_embedded() {
        let index = find("index.html").unwrap().1.body;
        for asset in ASSETS {
            assert!(!asset.body.is_empty(), "{} is empty", asset.name);
        }
        // Every module imported anywhere is served.
        for asset in ASSETS.iter().filter(|a| a.content_type == JS) {
            for line in asset.body.lines() {
                let Some(rest) = line.split(" from \"./").nth(1) else {
                    continue;
                };
                let module = rest.split('"').next().unwrap();
                assert!(find(module).is_some(), "{} imports {module}", asset.name);
            }
        }
        // Every script and style sheet the page links.
        let linked: Vec<&str> = index
            .split("\"/ui/")
            .skip(1)
            .filter_map(|rest| rest.split('"').next())
            .collect();
        for file in ["app.js", "style.css", "vendor/xterm.css"] {
            assert!(linked.contains(&file), "index.html links {linked:?}");
        }
        for file in linked {
            assert!(
                find(file).is_some(),
                "index.html links {file}, which is not embedded"
            );
        }
    }

    #[test]
    fn unknown_files_are_404_and_tags_follow_content() {
        let none = HeaderMap::new();
        assert_eq!(serve("nope.js", &none).status(), StatusCode::NOT_FOUND);
        assert_eq!(
            serve("../Cargo.toml", &none).status(),
            StatusCode::NOT_FOUND
        );
        let fresh = serve("app.js", &none);
        assert_eq!(fresh.status(), StatusCode::OK);
        let mut revalidate = HeaderMap::new();
        revalidate.insert(header::IF_NONE_MATCH, fresh.headers()[header::ETAG].clone());
        assert_eq!(
            serve("app.js", &revalidate).status(),
            StatusCode::NOT_MODIFIED
        );
        assert_ne!(etag("a"), etag("b"));
        assert_eq!(etag("a"), etag("a"));
    }
}
