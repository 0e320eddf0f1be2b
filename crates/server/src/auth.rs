//! Who a request comes from, and whether it may do what it asks: the one check every route is
//! behind (the API, the event stream, WebDAV, `/metrics`, the AF_XDP fast path's routes), and the
//! routes that turn a password or a login link into a credential.
//!
//! A request presents a secret in one of three ways: `Authorization: Bearer TOKEN`; HTTP Basic
//! with the token as the password (any user name: WebDAV clients and FUSE know only Basic); or
//! the page's session cookie. Only the secret's hash is looked up ([`Accounts::authenticate`]).
//! The scope a route needs follows from the method ([`needed_scope`]): reading methods need
//! `read`, every other method `write`, `/api/admin/` `admin`. No credential, or one unknown,
//! revoked or expired: 401 (on `/dav/` with `WWW-Authenticate: Basic`, so clients prompt); too
//! small a scope: 403.
//!
//! CSRF: a write authenticated by the cookie must also carry [`CSRF_HEADER`] with the value of
//! the [`CSRF_COOKIE`], which is the session secret's keyed hash (the signed double-submit
//! cookie pattern): another site's page can make a browser send the cookie, but can neither read
//! the CSRF cookie nor set a custom header without a CORS preflight, which is never granted.
//! Beside it, `SameSite=Strict` on both cookies and the Origin check of
//! `same_origin_writes`. Bearer and Basic are never sent by a browser on its own, so they need
//! neither.

use crate::AppState;
use crate::error::{ApiError, ApiResult, Cause};
use crate::extract::JsonBody;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use base64::Engine;
use disgrafs_core::api::{IssuedToken, LinkBody, LoginBody, Whoami};
use disgrafs_core::auth::{CSRF_COOKIE, CSRF_HEADER, SESSION_COOKIE, Scope};
use disgrafs_store::accounts::SESSION_TTL;
use disgrafs_store::{Accounts, CredentialKind, Principal};

/// Paths that take their credential in the body (a password, a link's code) or carry nothing of
/// the store (the API's description, the same for everyone).
const OPEN_PATHS: [&str; 4] = [
    "/api/auth/login",
    "/api/auth/link",
    "/api/auth/token",
    "/api/openapi.json",
];

/// Paths whose work reaches every user's files: only an admin may ask for it (re-tagging every
/// content costs the whole store's tagging time).
const ADMIN_PATHS: [&str; 1] = ["/api/retag"];

/// Methods that change nothing: `read` is enough.
fn reads(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) || method.as_str() == "PROPFIND"
}

/// The scope a request needs; `None` for the open paths, share links (and `/metrics` when
/// configured public).
pub fn needed_scope(method: &Method, path: &str, metrics_public: bool) -> Option<Scope> {
    // A share link's own path: the link is the credential (see `share`).
    let share_link = path.starts_with(crate::share::LINK_PREFIX);
    if share_link || OPEN_PATHS.contains(&path) || (metrics_public && path == "/metrics") {
        return None;
    }
    Some(
        if path.starts_with("/api/admin/") || ADMIN_PATHS.contains(&path) {
            Scope::Admin
        } else if reads(method) {
            Scope::Read
        } else {
            Scope::Write
        },
    )
}

/// The secret a request presents, and how.
enum Presented {
    Header(String),
    Cookie(String),
    Nothing,
}

fn presented(headers: &HeaderMap) -> Result<Presented, ApiError> {
    if let Some(v) = headers.get(header::AUTHORIZATION) {
        let v = v
            .to_str()
            .map_err(|_| unauthorized("the Authorization header is not text"))?;
        let (scheme, rest) = v.split_once(' ').unwrap_or((v, ""));
        let rest = rest.trim();
        if scheme.eq_ignore_ascii_case("bearer") {
            return Ok(Presented::Header(rest.to_owned()));
        }
        if scheme.eq_ignore_ascii_case("basic") {
            let password =
                basic_password(rest).ok_or_else(|| unauthorized("malformed Basic credentials"))?;
            return Ok(Presented::Header(password));
        }
        return Err(unauthorized(
            "unknown Authorization scheme: use Bearer TOKEN, or Basic with the token as password",
        ));
    }
    Ok(cookie(headers, SESSION_COOKIE).map_or(Presented::Nothing, Presented::Cookie))
}

/// The password of HTTP Basic credentials (`rest` is what follows `Basic `).
fn basic_password(rest: &str) -> Option<String> {
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())?;
    decoded.split_once(':').map(|(_, p)| p.to_owned())
}

/// The password of a request's HTTP Basic credentials, if it sends some.
pub(crate) fn basic_password_of(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("basic")
        .then(|| basic_password(rest))
        .flatten()
}

/// A cookie's value from the request's `Cookie` headers.
pub(crate) fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|kv| {
            let (k, v) = kv.trim().split_once('=')?;
            (k == name).then(|| v.to_owned())
        })
}

fn unauthorized(msg: impl Into<String>) -> ApiError {
    ApiError::new(Cause::Unauthorized, msg)
}

/// The CSRF value of a session: a keyed hash of its secret, so it proves the page read it.
fn csrf_of(session: &str) -> blake3::Hash {
    blake3::keyed_hash(
        blake3::hash(b"disgrafs 2026 csrf").as_bytes(),
        session.as_bytes(),
    )
}

/// Whether a cookie-authenticated write carries its session's CSRF value (compared in constant
/// time, as `blake3::Hash` does).
fn csrf_ok(headers: &HeaderMap, session: &str) -> bool {
    headers
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| blake3::Hash::from_hex(v).ok())
        .is_some_and(|h| h == csrf_of(session))
}

/// Who may do what this request asks, or the refusal. Shared by the server's middleware and the
/// AF_XDP fast path, which serves some of the same routes.
pub async fn check(
    accounts: &Accounts,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    metrics_public: bool,
) -> Result<Option<Principal>, ApiError> {
    let Some(needed) = needed_scope(method, path, metrics_public) else {
        return Ok(None);
    };
    let (secret, by_cookie) = match presented(headers)? {
        Presented::Header(s) => (s, false),
        Presented::Cookie(s) => (s, true),
        Presented::Nothing => {
            return Err(unauthorized(
                "this server needs a credential: Authorization: Bearer TOKEN (disgrafs admin \
                 token, disgrafs login), Basic with the token as password, or the page's login",
            ));
        }
    };
    let Some(who) = accounts.authenticate(&secret).await? else {
        return Err(unauthorized(
            "this credential is unknown, revoked or expired",
        ));
    };
    if by_cookie && !reads(method) && !csrf_ok(headers, &secret) {
        return Err(ApiError::new(
            Cause::Forbidden,
            format!("a write with the session cookie needs the {CSRF_HEADER} header"),
        ));
    }
    if !who.scope.allows(needed) {
        return Err(ApiError::new(
            Cause::Forbidden,
            format!(
                "this needs {needed} scope; the credential has {}",
                who.scope
            ),
        ));
    }
    Ok(Some(who))
}

/// The middleware around every route of [`crate::api`]: refuses, or passes the request on with
/// its [`Principal`] (when the route needs one) in the extensions.
pub(crate) async fn require(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Response {
    let checked = check(
        &state.store.accounts(),
        req.method(),
        req.uri().path(),
        req.headers(),
        state.config.metrics_public,
    )
    .await;
    match checked {
        Ok(who) => {
            if let Some(who) = who {
                req.extensions_mut().insert(who);
            }
            next.run(req).await
        }
        Err(e) => {
            let dav = req.uri().path() == "/dav" || req.uri().path().starts_with("/dav/");
            let mut resp = e.into_response();
            if resp.status() == StatusCode::UNAUTHORIZED {
                let challenge = if dav {
                    r#"Basic realm="disgrafs", charset="UTF-8""#
                } else {
                    r#"Bearer realm="disgrafs""#
                };
                resp.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(challenge),
                );
            }
            resp
        }
    }
}

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/auth/login", post(login))
        .route("/api/auth/link", post(link))
        .route("/api/auth/logout", post(logout))
        .route("/api/auth/me", get(me))
        .route("/api/auth/token", post(token))
}

/// The cookies of a new session (or, with `None`, the ones that end it).
fn session_cookies(
    session: Option<&str>,
    secure: bool,
) -> axum::response::AppendHeaders<[(header::HeaderName, HeaderValue); 2]> {
    let (value, csrf, age) = match session {
        Some(s) => (
            s.to_owned(),
            csrf_of(s).to_hex().to_string(),
            SESSION_TTL.as_secs(),
        ),
        None => (String::new(), String::new(), 0),
    };
    // Secure when `serve` speaks TLS itself (behind a TLS proxy the browser sees https, and
    // SameSite=Strict already keeps the cookie on this site).
    let secure = if secure { "; Secure" } else { "" };
    let attrs = format!("Path=/; Max-Age={age}; SameSite=Strict{secure}");
    let c = |v: String| HeaderValue::from_str(&v).expect("cookie text is ASCII");
    // Appended: two Set-Cookie headers.
    axum::response::AppendHeaders([
        (
            header::SET_COOKIE,
            c(format!("{SESSION_COOKIE}={value}; {attrs}; HttpOnly")),
        ),
        (
            header::SET_COOKIE,
            c(format!("{CSRF_COOKIE}={csrf}; {attrs}")),
        ),
    ])
}

async fn start_session(state: &AppState, user: &str) -> ApiResult<Response> {
    let accounts = state.store.accounts();
    let u = accounts
        .user(user)
        .await?
        .ok_or_else(|| unauthorized("this user no longer exists"))?;
    let s = accounts
        .issue(user, CredentialKind::Session, u.role, Some(SESSION_TTL))
        .await?;
    let body = Whoami {
        user: user.to_owned(),
        scope: s.scope,
        used: u.usage.used,
        quota: u.usage.quota,
    };
    Ok((
        session_cookies(Some(&s.secret), state.config.tls.is_some()),
        Json(body),
    )
        .into_response())
}

/// Logs the page in with a password: a session cookie (HttpOnly) and its CSRF cookie.
#[utoipa::path(post, path = "/api/auth/login", tag = "auth", request_body = LoginBody,
    responses((status = 200, body = Whoami), (status = 401, description = "wrong user name or password", body = disgrafs_core::api::ErrorBody)))]
pub(crate) async fn login(
    State(state): State<AppState>,
    JsonBody(b): JsonBody<LoginBody>,
) -> ApiResult<Response> {
    let accounts = state.store.accounts();
    match accounts.login(&b.user, &b.password).await? {
        Some(u) => start_session(&state, &u.name).await,
        None => Err(unauthorized("wrong user name or password")),
    }
}

/// Logs the page in with a one-time login link's code (what follows `#` in the link).
#[utoipa::path(post, path = "/api/auth/link", tag = "auth", request_body = LinkBody,
    responses((status = 200, body = Whoami), (status = 401, description = "used, expired or unknown", body = disgrafs_core::api::ErrorBody)))]
pub(crate) async fn link(
    State(state): State<AppState>,
    JsonBody(b): JsonBody<LinkBody>,
) -> ApiResult<Response> {
    let accounts = state.store.accounts();
    match accounts.redeem_link(&b.code).await? {
        Some(p) => start_session(&state, &p.user).await,
        None => Err(unauthorized("this login link is used, expired or unknown")),
    }
}

/// Ends the page's session (the cookie's credential is revoked) and clears its cookies.
#[utoipa::path(post, path = "/api/auth/logout", tag = "auth", responses((status = 204)))]
pub(crate) async fn logout(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
) -> ApiResult<Response> {
    if who.kind == CredentialKind::Session {
        state.store.accounts().revoke(who.id).await?;
    }
    Ok((
        StatusCode::NO_CONTENT,
        session_cookies(None, state.config.tls.is_some()),
    )
        .into_response())
}

/// Who the request's credential is.
#[utoipa::path(get, path = "/api/auth/me", tag = "auth", responses((status = 200, body = Whoami)))]
pub(crate) async fn me(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
) -> ApiResult<Json<Whoami>> {
    let usage = state.store.room(Some(who.user_id)).await?;
    Ok(Json(Whoami {
        user: who.user,
        scope: who.scope,
        used: usage.used,
        quota: usage.quota,
    }))
}

/// A new API token for a user's name and password (`disgrafs login`), shown this once.
#[utoipa::path(post, path = "/api/auth/token", tag = "auth", request_body = LoginBody,
    responses((status = 201, body = IssuedToken), (status = 401, description = "wrong user name or password", body = disgrafs_core::api::ErrorBody)))]
pub(crate) async fn token(
    State(state): State<AppState>,
    JsonBody(b): JsonBody<LoginBody>,
) -> ApiResult<(StatusCode, Json<IssuedToken>)> {
    let accounts = state.store.accounts();
    let Some(u) = accounts.login(&b.user, &b.password).await? else {
        return Err(unauthorized("wrong user name or password"));
    };
    let t = accounts
        .issue(
            &u.name,
            CredentialKind::Api,
            b.scope.unwrap_or(u.role),
            None,
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(IssuedToken {
            id: t.id,
            token: t.secret,
            scope: t.scope,
        }),
    ))
}
