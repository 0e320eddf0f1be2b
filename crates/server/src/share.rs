//! Share links. `/api/shares` makes, lists and revokes them (a write credential makes one; its
//! maker or an admin revokes it); `/s/SECRET` is the link itself, for anyone who holds it, with
//! no account: a small page rendered here (no script), the files as JSON
//! (`/s/SECRET/files`) and their downloads with Range (`/s/SECRET/files/ID`). The rules of
//! links (who may make one, what one shows, the password proof) are `disgrafs_store::Shares`'.
//!
//! A link with a password asks for it once: the page's form, or `POST /s/SECRET/unlock` with
//! JSON, sets a cookie holding the proof, scoped to the link's path; a script may instead send
//! the password as HTTP Basic's (`curl -u :PASSWORD`). Tries are limited per link. Every answer
//! under `/s/` tells browsers to keep the link out of the Referer, caches and search engines.

use crate::error::{ApiError, ApiResult, Cause};
use crate::extract::{JsonBody, Path, Query};
use crate::{AppState, auth, download};
use axum::extract::{Extension, FromRequest, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{delete, get, post};
use axum::{Form, Json, Router};
use disgrafs_core::api::{
    NewShareLink, ShareLink, ShareLinks, ShareUnlock, SharedFile, SharedFiles,
};
use disgrafs_core::query::{self, Expr, Predicate, human_size};
use disgrafs_core::{FileRecord, TagRef};
use disgrafs_store::accounts::SESSION_TTL;
use disgrafs_store::{
    EntryScope, ListOptions, Principal, ShareRow, ShareTarget, Shares, StoreError,
};
use maud::{DOCTYPE, Markup, PreEscaped, html};
use std::time::Duration;

/// Where share links live: `/s/SECRET`.
pub(crate) const LINK_PREFIX: &str = "/s/";
/// The cookie that keeps a link's password proof (one per link: its path is the link's).
const PROOF_COOKIE: &str = "disgrafs_share";
/// Most files a query's link lists (the newest).
const MAX_LISTED: u32 = 1000;
/// Most records of one content a query's link looks through to find a download's.
const MAX_SAME_CONTENT: u32 = 10_000;
/// Password tries per link: this many at once, then one per [`UNLOCK_PERIOD`].
pub(crate) const UNLOCK_BURST: u32 = 10;
pub(crate) const UNLOCK_PERIOD: Duration = Duration::from_secs(6);
/// What every answer under `/s/` carries: the link is a secret in the URL.
const PRIVATE: [(header::HeaderName, &str); 3] = [
    (header::REFERRER_POLICY, "no-referrer"),
    (header::CACHE_CONTROL, "no-store"),
    (
        header::HeaderName::from_static("x-robots-tag"),
        "noindex, nofollow",
    ),
];
/// The share page's policy: no script at all, only its own inline style and forms to here.
const SHARE_PAGE_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; \
    form-action 'self'; frame-ancestors 'none'; base-uri 'none'";
const STYLE: &str = "body{font:16px/1.5 system-ui,sans-serif;margin:0;background:#f6f7f9;color:#1c1f24}\
main{max-width:56rem;margin:3rem auto;padding:0 1rem}h1{font-size:1.4rem;word-break:break-word}\
table{border-collapse:collapse;width:100%;background:#fff}td,th{padding:.4rem .6rem;border-bottom:1px solid #e3e6ea;text-align:left}\
.tag{display:inline-block;background:#e8eefc;border-radius:3px;padding:0 .35rem;margin:0 .2rem .2rem 0;font-size:.85em}\
.muted{color:#626a75}a.button,button{display:inline-block;background:#2857d6;color:#fff;border:0;border-radius:4px;padding:.45rem 1rem;text-decoration:none;font:inherit;cursor:pointer}\
input{font:inherit;padding:.4rem;border:1px solid #c5cad1;border-radius:4px}.error{color:#b3261e}";

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/shares", get(list).post(make))
        .route("/api/shares/{id}", delete(revoke))
        .route("/s/{secret}", get(page))
        .route("/s/{secret}/files", get(files))
        .route("/s/{secret}/files/{id}", get(download))
        .route("/s/{secret}/unlock", post(unlock))
}

fn link_of(row: ShareRow) -> ShareLink {
    let (file, query) = match row.target {
        ShareTarget::File(f) => (Some(f), None),
        ShareTarget::Query(q) => (None, Some(q)),
    };
    ShareLink {
        id: row.id,
        file,
        query,
        user: row.user,
        created: row.created,
        expires: row.expires,
        password: row.password.is_some(),
        url: None,
    }
}

/// Makes a read-only link to one of the caller's files, or to a query's files as the caller
/// sees them; the answer holds the link (`url`), shown this once.
#[utoipa::path(post, path = "/api/shares", tag = "shares", request_body = NewShareLink,
    responses((status = 201, body = ShareLink), (status = 404, body = disgrafs_core::api::ErrorBody),
        (status = 422, body = disgrafs_core::api::ErrorBody)))]
pub(crate) async fn make(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    JsonBody(body): JsonBody<NewShareLink>,
) -> ApiResult<(StatusCode, Json<ShareLink>)> {
    let target = match (body.file, body.query) {
        (Some(f), None) => ShareTarget::File(f),
        (None, Some(q)) => ShareTarget::Query(q),
        _ => {
            return Err(ApiError::invalid(
                "a share link is of a file or of a query: give exactly one of file and query",
            ));
        }
    };
    let shares = state.store.shares();
    let ttl = body.expires_in.map(Duration::from_secs);
    let made = shares
        .make(&who, &target, ttl, body.password.as_deref())
        .await?;
    let row = (shares.open(&made.secret).await?)
        .ok_or_else(|| ApiError::internal("the share link just made is not found"))?;
    let mut link = link_of(row);
    link.url = Some(format!("{LINK_PREFIX}{}", made.secret));
    Ok((StatusCode::CREATED, Json(link)))
}

/// The caller's live share links (every link, for an admin), newest first.
#[utoipa::path(get, path = "/api/shares", tag = "shares", responses((status = 200, body = ShareLinks)))]
pub(crate) async fn list(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
) -> ApiResult<Json<ShareLinks>> {
    let rows = state.store.shares().list(&who).await?;
    Ok(Json(ShareLinks {
        shares: rows.into_iter().map(link_of).collect(),
    }))
}

/// Revokes a share link: it stops working at once, on every node.
#[utoipa::path(delete, path = "/api/shares/{id}", tag = "shares",
    responses((status = 204), (status = 404, body = disgrafs_core::api::ErrorBody)))]
pub(crate) async fn revoke(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<i64>,
) -> ApiResult<StatusCode> {
    state.store.shares().revoke(&who, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

fn gone() -> ApiError {
    ApiError::not_found("this share link is unknown, revoked or expired")
}

/// A link's file that its maker no longer sees is as gone as the link; any other failure is
/// itself.
fn gone_if_missing(e: StoreError) -> ApiError {
    match e {
        StoreError::NotFound(_) => gone(),
        e => e.into(),
    }
}

fn locked() -> ApiError {
    ApiError::new(
        Cause::Unauthorized,
        "this share link needs its password: POST it to the link's /unlock, or send it as \
         HTTP Basic's password",
    )
}

/// Answers under `/s/` with [`PRIVATE`]'s headers.
fn private(mut resp: Response) -> Response {
    for (name, value) in PRIVATE {
        resp.headers_mut()
            .insert(name, HeaderValue::from_static(value));
    }
    resp
}

/// Checks a password against a link, within the link's tries.
async fn try_password(state: &AppState, row: &ShareRow, password: &str) -> ApiResult<bool> {
    if state.share_unlocks.check_key(&row.id).is_err() {
        return Err(ApiError::new(
            Cause::RateLimited,
            format!(
                "too many password tries for this share link: one per {} s",
                UNLOCK_PERIOD.as_secs()
            ),
        ));
    }
    Ok(state.store.shares().unlocks(row, password).await?)
}

/// The live link of a request, when the request may see what it shows: 404 for an unknown,
/// revoked or expired link; 401 while its password is not proved.
async fn admitted(state: &AppState, secret: &str, headers: &HeaderMap) -> ApiResult<ShareRow> {
    let row = state.store.shares().open(secret).await?.ok_or_else(gone)?;
    let proof = auth::cookie(headers, PROOF_COOKIE);
    if Shares::admits(&row, secret, proof.as_deref()) {
        return Ok(row);
    }
    match auth::basic_password_of(headers) {
        Some(p) if try_password(state, &row, &p).await? => Ok(row),
        _ => Err(locked()),
    }
}

fn shared(rec: FileRecord) -> SharedFile {
    SharedFile {
        modified: rec
            .modified
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
        tags: rec.tags.into_iter().map(|t: TagRef| t.name).collect(),
        id: rec.id,
        name: rec.name,
        size: rec.size,
        mime: rec.mime,
    }
}

fn parsed(q: &str) -> ApiResult<Expr> {
    query::parse(q).map_err(ApiError::from)
}

/// What a link shows: its file, or its query's newest files, as its maker sees them now.
async fn shown(state: &AppState, row: &ShareRow) -> ApiResult<SharedFiles> {
    let who = Shares::viewer(row);
    match &row.target {
        ShareTarget::File(id) => {
            let rec = state.store.file(&who, id).await.map_err(gone_if_missing)?;
            Ok(SharedFiles {
                query: None,
                files: vec![shared(rec)],
                total: 1,
            })
        }
        ShareTarget::Query(q) => {
            let opts = ListOptions {
                limit: MAX_LISTED,
                ..ListOptions::default()
            };
            let (files, total) = state.store.list(&who, &parsed(q)?, opts).await?;
            Ok(SharedFiles {
                query: Some(q.clone()),
                files: files.into_iter().map(shared).collect(),
                total,
            })
        }
    }
}

/// What a share link shows, as JSON.
#[utoipa::path(get, path = "/s/{secret}/files", tag = "shares",
    responses((status = 200, body = SharedFiles), (status = 401, body = disgrafs_core::api::ErrorBody),
        (status = 404, body = disgrafs_core::api::ErrorBody)))]
pub(crate) async fn files(
    State(state): State<AppState>,
    Path(secret): Path<String>,
    headers: HeaderMap,
) -> Response {
    let answer = async {
        let row = admitted(&state, &secret, &headers).await?;
        Ok::<_, ApiError>(Json(shown(&state, &row).await?))
    };
    private(answer.await.into_response())
}

/// A file of a share link: the link's file, or one its query matches.
#[utoipa::path(get, path = "/s/{secret}/files/{id}", tag = "shares",
    responses((status = 200, description = "the whole file"), (status = 206, description = "one range, or multipart/byteranges"),
        (status = 401, body = disgrafs_core::api::ErrorBody), (status = 404, body = disgrafs_core::api::ErrorBody)))]
pub(crate) async fn download(
    State(state): State<AppState>,
    Path((secret, id)): Path<(String, String)>,
    Query(p): Query<download::ContentParams>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    let answer = async {
        let row = admitted(&state, &secret, &headers).await?;
        let who = Shares::viewer(&row);
        let not_here = || ApiError::not_found(format!("file {id} is not in this share link"));
        let rec = state.store.content(&who, &id).await.map_err(|e| match e {
            StoreError::NotFound(_) => not_here(),
            e => e.into(),
        })?;
        let inside = match &row.target {
            ShareTarget::File(f) => *f == id,
            ShareTarget::Query(q) => {
                // The query's files with this content: few, whatever the query matches.
                let expr = Expr::And(vec![
                    parsed(q)?,
                    Expr::Pred(Predicate::HashPrefix(rec.hash.clone())),
                ]);
                (state.store)
                    .entries(
                        &who,
                        EntryScope::Query(&expr),
                        None,
                        false,
                        MAX_SAME_CONTENT,
                    )
                    .await?
                    .iter()
                    .any(|e| e.id == id)
            }
        };
        if !inside {
            return Err(not_here());
        }
        download::respond(&state, rec, p.wants_inline(), &method, &headers).await
    };
    private(answer.await.into_response())
}

/// Proves a link's password: JSON (`{"password": …}`: 204) or the page's form (a redirect back
/// to the link); either way the proof comes back as a cookie for the link's path.
#[utoipa::path(post, path = "/s/{secret}/unlock", tag = "shares", request_body = ShareUnlock,
    responses((status = 204), (status = 303, description = "the page's form: back to the link"),
        (status = 401, body = disgrafs_core::api::ErrorBody), (status = 404, body = disgrafs_core::api::ErrorBody),
        (status = 429, body = disgrafs_core::api::ErrorBody)))]
pub(crate) async fn unlock(
    State(state): State<AppState>,
    Path(secret): Path<String>,
    req: Request,
) -> Response {
    let form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"));
    let answer = async {
        let row = state.store.shares().open(&secret).await?.ok_or_else(gone)?;
        let password = if form {
            let Form(u) = Form::<ShareUnlock>::from_request(req, &())
                .await
                .map_err(|e| ApiError::bad_request(e.body_text()))?;
            u.password
        } else {
            let JsonBody(u) = JsonBody::<ShareUnlock>::from_request(req, &()).await?;
            u.password
        };
        if !try_password(&state, &row, &password).await? {
            return Err(ApiError::new(Cause::Unauthorized, "wrong password"));
        }
        let Some(proof) = Shares::proof(&row, &secret) else {
            // A link without a password is open already.
            return Ok(StatusCode::NO_CONTENT.into_response());
        };
        let secure = if state.config.tls.is_some() {
            "; Secure"
        } else {
            ""
        };
        let cookie = format!(
            "{PROOF_COOKIE}={proof}; Path={LINK_PREFIX}{secret}; Max-Age={}; HttpOnly; \
             SameSite=Lax{secure}",
            SESSION_TTL.as_secs()
        );
        let cookie = HeaderValue::from_str(&cookie)
            .map_err(|_| ApiError::internal("a share cookie that is not a header"))?;
        let mut resp = if form {
            Redirect::to(&format!("{LINK_PREFIX}{secret}")).into_response()
        } else {
            StatusCode::NO_CONTENT.into_response()
        };
        resp.headers_mut().insert(header::SET_COOKIE, cookie);
        Ok::<_, ApiError>(resp)
    };
    let resp = match answer.await {
        Ok(r) => r,
        // The form's visitor gets the page again, with the reason.
        Err(e) if form && matches!(e.cause(), Cause::Unauthorized | Cause::RateLimited) => {
            html_page(
                e.status(),
                "A shared link",
                locked_form(&secret, Some(e.message())),
            )
        }
        Err(e) => e.into_response(),
    };
    private(resp)
}

/// The link's page: its file or files with their downloads, or the password form.
pub(crate) async fn page(
    State(state): State<AppState>,
    Path(secret): Path<String>,
    headers: HeaderMap,
) -> Response {
    let resp = match admitted(&state, &secret, &headers).await {
        Ok(row) => match shown(&state, &row).await {
            Ok(shown) => html_page(StatusCode::OK, &title_of(&shown), listing(&secret, &shown)),
            Err(e) => message_page(e),
        },
        Err(e) if e.status() == StatusCode::UNAUTHORIZED => html_page(
            StatusCode::UNAUTHORIZED,
            "A shared link",
            locked_form(&secret, None),
        ),
        Err(e) => message_page(e),
    };
    private(resp)
}

fn title_of(shown: &SharedFiles) -> String {
    match (&shown.query, shown.files.first()) {
        (Some(q), _) => format!("Files matching {q}"),
        (None, Some(f)) => f.name.clone(),
        (None, None) => "A shared file".into(),
    }
}

fn html_page(status: StatusCode, title: &str, body: Markup) -> Response {
    let doc = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="referrer" content="no-referrer";
                meta name="robots" content="noindex, nofollow";
                title { (title) " · disgrafs" }
                style { (PreEscaped(STYLE)) }
            }
            body { main { (body) } }
        }
    };
    let mut resp = (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        doc.into_string(),
    )
        .into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(SHARE_PAGE_CSP),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    resp
}

fn message_page(e: ApiError) -> Response {
    let status = e.status();
    html_page(
        status,
        "A shared link",
        html! {
            h1 { "This link does not open" }
            p.error { (e.message()) }
        },
    )
}

fn locked_form(secret: &str, error: Option<&str>) -> Markup {
    html! {
        h1 { "A shared link" }
        p { "This link needs a password." }
        @if let Some(e) = error { p.error { (e) } }
        form method="post" action={ (LINK_PREFIX) (secret) "/unlock" } {
            input type="password" name="password" required autofocus aria-label="Password";
            " "
            button type="submit" { "Open" }
        }
    }
}

fn listing(secret: &str, shown: &SharedFiles) -> Markup {
    let href = |f: &SharedFile| format!("{LINK_PREFIX}{secret}/files/{}", f.id);
    let tags = |f: &SharedFile| html! { @for t in &f.tags { span.tag { (t) } } };
    html! {
        @match &shown.query {
            None => @for f in &shown.files {
                h1 { (f.name) }
                p.muted { (human_size(f.size)) " · " (f.mime) " · " (f.modified) }
                p { (tags(f)) }
                p { a.button href=(href(f)) download { "Download" } }
            },
            Some(q) => {
                h1 { "Files matching " code { (q) } }
                p.muted {
                    (shown.total) " files"
                    @if shown.total > shown.files.len() as u64 {
                        ", the newest " (shown.files.len()) " shown"
                    }
                }
                table {
                    thead { tr { th { "Name" } th { "Size" } th { "Modified" } th { "Tags" } } }
                    tbody {
                        @for f in &shown.files {
                            tr {
                                td { a href=(href(f)) download { (f.name) } }
                                td { (human_size(f.size)) }
                                td.muted { (f.modified) }
                                td { (tags(f)) }
                            }
                        }
                    }
                }
            }
        }
    }
}
