//! HTTP/1.1 for the AF_XDP fast path (`crates/fastpath`), without IO: bytes received on a
//! connection in, the bytes of the response out.
//!
//! The responses are the normal server's own: requests go through the same handlers
//! (`files::object_routes`, the routes of a file's record and content) on a store opened read-only,
//! so status codes, headers and bodies (ETag, Range, 304, errors) follow the same rules, written
//! once. This module only adds HTTP/1.1 framing: request heads parsed with `httparse`, keep-alive,
//! pipelined requests answered in order, and refusals (malformed or oversized heads, request
//! bodies, responses above the fast path's size limit) as the server's JSON errors.

use std::time::SystemTime;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderValue, Method, Request, StatusCode, Version, header};
use axum::response::{IntoResponse, Response};
use tower::ServiceExt;

use crate::error::{ApiError, Cause};
use crate::{AppState, Config, files};

/// Largest request head accepted; a longer one is answered 400 and the connection closed.
pub const MAX_HEAD: usize = 16 * 1024;
/// Most header lines in a request head.
const MAX_HEADERS: usize = 64;

/// What one look at a connection's received bytes gives.
#[derive(Debug)]
pub enum Step {
    /// No complete request head yet: receive more.
    Incomplete,
    /// A response to send; `consumed` bytes of the input are done with.
    Respond {
        consumed: usize,
        response: Vec<u8>,
        /// Close the connection once the response is sent.
        close: bool,
        /// The status, for counters.
        status: u16,
    },
}

/// The fast path's HTTP service over one data directory.
#[derive(Clone)]
pub struct FastHttp {
    router: Router,
    max_body: u64,
}

impl FastHttp {
    /// Opens `data_dir` read-only (beside a `disgrafs serve` that owns it); responses whose body
    /// exceeds `max_body` bytes are refused with 503 and left to the normal server.
    pub async fn open(
        data_dir: &std::path::Path,
        max_body: u64,
    ) -> Result<Self, disgrafs_store::StoreError> {
        let config = Config {
            data_dir: data_dir.to_path_buf(),
            ..Config::default()
        };
        let store =
            disgrafs_store::Store::open_local_read_only(data_dir, config.min_confidence).await?;
        let state = AppState::with_store(store, config)?;
        // The same credential check as the normal server's (one function, `auth::require`).
        let router = files::object_routes()
            .fallback(not_served)
            .layer(axum::middleware::from_fn_with_state(
                state.clone(),
                crate::auth::require,
            ))
            .with_state(state);
        Ok(FastHttp { router, max_body })
    }

    /// Looks at the bytes received so far on a connection and answers the first request in
    /// them, if it is complete.
    pub async fn step(&self, input: &[u8]) -> Step {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut headers);
        let consumed = match req.parse(input) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) if input.len() <= MAX_HEAD => return Step::Incomplete,
            Ok(httparse::Status::Partial) => {
                return refuse(
                    input.len(),
                    format!("request head longer than {MAX_HEAD} bytes"),
                )
                .await;
            }
            Err(e) => return refuse(input.len(), format!("malformed request: {e}")).await,
        };
        if consumed > MAX_HEAD {
            return refuse(
                input.len(),
                format!("request head longer than {MAX_HEAD} bytes"),
            )
            .await;
        }
        let version = if req.version == Some(0) {
            Version::HTTP_10
        } else {
            Version::HTTP_11
        };
        let method = req.method.unwrap_or("GET");
        let mut builder = Request::builder()
            .method(method)
            .uri(req.path.unwrap_or("/"))
            .version(version);
        let mut close = version == Version::HTTP_10;
        for h in req.headers.iter() {
            let name = h.name;
            if name.eq_ignore_ascii_case("connection") {
                let v = String::from_utf8_lossy(h.value).to_ascii_lowercase();
                if v.contains("close") {
                    close = true;
                } else if v.contains("keep-alive") {
                    close = false;
                }
            }
            // The routes served here take no body; one announced cannot be skipped safely.
            let has_body = (name.eq_ignore_ascii_case("content-length")
                && h.value.iter().any(|b| *b != b'0'))
                || name.eq_ignore_ascii_case("transfer-encoding");
            if has_body {
                return refuse(
                    input.len(),
                    "the fast path takes no request bodies".to_string(),
                )
                .await;
            }
            builder = builder.header(name, h.value);
        }
        let head = method == Method::HEAD.as_str();
        let Ok(request) = builder.body(Body::empty()) else {
            return refuse(input.len(), "malformed request line or header".to_string()).await;
        };
        let resp = match self.router.clone().oneshot(request).await {
            Ok(r) => r,
            Err(never) => match never {},
        };
        let resp = self.within_limit(resp);
        let status = resp.status().as_u16();
        Step::Respond {
            consumed,
            response: serialize(resp, head, close, self.max_body).await,
            close,
            status,
        }
    }

    fn within_limit(&self, resp: Response) -> Response {
        let len = resp
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        match len {
            Some(n) if n > self.max_body => ApiError::new(
                Cause::FastPathLimit,
                format!(
                    "{n} bytes exceed the fast path's limit of {}: ask the normal server",
                    self.max_body
                ),
            )
            .into_response(),
            _ => resp,
        }
    }
}

async fn not_served() -> ApiError {
    ApiError::not_found("the fast path serves only file records and contents")
}

async fn refuse(consumed: usize, msg: String) -> Step {
    let resp = ApiError::bad_request(msg).into_response();
    Step::Respond {
        consumed,
        // An error body is a few hundred bytes: no limit can cut it.
        response: serialize(resp, false, true, u64::MAX).await,
        close: true,
        status: 400,
    }
}

/// HTTP/1.1 bytes of a response, as hyper writes them: lower-case names in the handler's order,
/// then `content-length` when the handler set none and `date`.
async fn serialize(resp: Response, head: bool, close: bool, max_body: u64) -> Vec<u8> {
    let (parts, body) = resp.into_parts();
    let limit = usize::try_from(max_body).unwrap_or(usize::MAX);
    let body = if head {
        bytes::Bytes::new()
    } else {
        match axum::body::to_bytes(body, limit).await {
            Ok(b) => b,
            // The blob vanished or could not be read after the head was decided: the
            // connection is closed without a body, as hyper would end it.
            Err(_) => bytes::Bytes::new(),
        }
    };
    let mut out = Vec::with_capacity(256 + body.len());
    let reason = parts.status.canonical_reason().unwrap_or("");
    out.extend_from_slice(format!("HTTP/1.1 {} {reason}\r\n", parts.status.as_u16()).as_bytes());
    let no_body = parts.status == StatusCode::NOT_MODIFIED
        || parts.status == StatusCode::NO_CONTENT
        || parts.status.is_informational();
    for (name, value) in &parts.headers {
        // hyper drops a length on responses that cannot have a body.
        if no_body && name == header::CONTENT_LENGTH {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if !parts.headers.contains_key(header::CONTENT_LENGTH) && !no_body {
        out.extend_from_slice(format!("content-length: {}\r\n", body.len()).as_bytes());
    }
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    let date = httpdate::fmt_http_date(SystemTime::now());
    if let Ok(v) = HeaderValue::from_str(&date) {
        out.extend_from_slice(b"date: ");
        out.extend_from_slice(v.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    if !no_body {
        out.extend_from_slice(&body);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The status and body of the fast path's answer to one GET with a bearer token.
    async fn get(http: &FastHttp, path: &str, token: &str) -> (u16, Vec<u8>) {
        let req =
            format!("GET {path} HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer {token}\r\n\r\n");
        match http.step(req.as_bytes()).await {
            Step::Respond {
                status, response, ..
            } => {
                let at = response.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
                (status, response[at + 4..].to_vec())
            }
            s => panic!("{s:?}"),
        }
    }

    #[tokio::test]
    async fn each_user_is_served_only_what_they_may_see() {
        use disgrafs_core::auth::Scope;
        use disgrafs_store::CredentialKind;
        let dir = tempfile::tempdir().unwrap();
        let state = AppState::open(Config {
            data_dir: dir.path().to_path_buf(),
            ..Config::default()
        })
        .await
        .unwrap();
        let accounts = state.store.accounts();
        let mut tokens = Vec::new();
        for user in ["alice", "bob"] {
            accounts.add_user(user, None, Scope::Write).await.unwrap();
            let t = accounts
                .issue(user, CredentialKind::Api, Scope::Write, None)
                .await
                .unwrap();
            tokens.push(t.secret);
        }
        let alice_id = accounts.user("alice").await.unwrap().unwrap().id;
        let mut staging = state.store.stage().await.unwrap();
        staging
            .write(bytes::Bytes::from_static(b"alice's words"))
            .await
            .unwrap();
        let rec = state
            .store
            .put(
                staging.finish().await.unwrap(),
                &disgrafs_core::FolderPath::default(),
                &disgrafs_core::FileName::new("words.txt").unwrap(),
                "text/plain",
                disgrafs_core::FileKind::Document,
                Some(alice_id),
            )
            .await
            .unwrap();
        let http = FastHttp::open(dir.path(), 1 << 20).await.unwrap();
        let (alice, bob) = (&tokens[0], &tokens[1]);
        let content = format!("/api/files/{}/content", rec.id);
        let record = format!("/api/files/{}", rec.id);
        assert_eq!(
            get(&http, &content, alice).await,
            (200, b"alice's words".to_vec())
        );
        for path in [&content, &record] {
            let (status, body) = get(&http, path, bob).await;
            assert_eq!(status, 404, "{path}");
            let body = String::from_utf8(body).unwrap();
            assert!(!body.contains("words"), "{body}");
        }
        assert_eq!(get(&http, &record, alice).await.0, 200);
    }

    #[tokio::test]
    async fn framing_refusals() {
        let dir = tempfile::tempdir().unwrap();
        // A data directory made by the normal server.
        drop(
            AppState::open(Config {
                data_dir: dir.path().to_path_buf(),
                ..Config::default()
            })
            .await
            .unwrap(),
        );
        let http = FastHttp::open(dir.path(), 1 << 20).await.unwrap();
        assert!(matches!(
            http.step(b"GET /api/files/x HTTP/1.1\r\nHost: a\r\n").await,
            Step::Incomplete
        ));
        let long = format!("GET /{} HTTP/1.1\r\n", "a".repeat(64 * 1024));
        match http.step(long.as_bytes()).await {
            Step::Respond {
                status,
                close,
                response,
                ..
            } => {
                assert_eq!(status, 400);
                assert!(close);
                assert!(response.starts_with(b"HTTP/1.1 400 Bad Request\r\n"));
            }
            s => panic!("{s:?}"),
        }
        match http.step(b"GET\x01 / HTTP/1.1\r\n\r\n").await {
            Step::Respond { status, .. } => assert_eq!(status, 400),
            s => panic!("{s:?}"),
        }
        // Two pipelined requests: the first is answered, and says how much it used.
        let two = b"GET /api/files/nope HTTP/1.1\r\nHost: a\r\n\r\nGET /other HTTP/1.1\r\n\r\n";
        match http.step(two).await {
            Step::Respond {
                status,
                consumed,
                close,
                ..
            } => {
                // Without a token, the same credential check as the normal server's: 401.
                assert_eq!(status, 401);
                assert!(!close);
                assert_eq!(&two[consumed..], b"GET /other HTTP/1.1\r\n\r\n");
            }
            s => panic!("{s:?}"),
        }
        match http
            .step(b"POST /api/files/x HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc")
            .await
        {
            Step::Respond { status, close, .. } => {
                assert_eq!(status, 400);
                assert!(close);
            }
            s => panic!("{s:?}"),
        }
    }
}
