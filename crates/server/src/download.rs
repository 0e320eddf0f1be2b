//! Downloads: whole files, single ranges (206), several ranges (`multipart/byteranges`),
//! conditional requests on the content hash, and `Content-Disposition` with the original name.

use crate::AppState;
use crate::error::{ApiError, ApiResult, Cause};
use crate::extract::{Path, Query};
use axum::body::Body;
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use disgrafs_core::range::{Ranges, byte_ranges};
use disgrafs_store::{FileContent, Principal};
use futures::StreamExt;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Deserialize;
use std::ops::RangeInclusive;

#[derive(Deserialize, utoipa::IntoParams)]
pub(crate) struct ContentParams {
    /// `1` (or `true`): serve with `Content-Disposition: inline` (for previews) rather than as an
    /// attachment. A string, since serde's bool takes only `true`/`false` and the page sends `1`.
    inline: Option<String>,
}

impl ContentParams {
    pub(crate) fn wants_inline(&self) -> bool {
        self.inline
            .as_deref()
            .is_some_and(|v| v == "1" || v == "true")
    }
}

/// RFC 5987 attr-char: what may stay unescaped in `filename*`.
const ATTR: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'!')
    .remove(b'#')
    .remove(b'$')
    .remove(b'&')
    .remove(b'+')
    .remove(b'-')
    .remove(b'.')
    .remove(b'^')
    .remove(b'_')
    .remove(b'`')
    .remove(b'|')
    .remove(b'~');

/// `attachment; filename="ascii fallback"; filename*=UTF-8''percent-encoded`.
pub(crate) fn content_disposition(name: &str, inline: bool) -> HeaderValue {
    let fallback: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let kind = if inline { "inline" } else { "attachment" };
    let v = format!(
        "{kind}; filename=\"{fallback}\"; filename*=UTF-8''{}",
        utf8_percent_encode(name, ATTR)
    );
    HeaderValue::from_str(&v).unwrap_or_else(|_| HeaderValue::from_static("attachment"))
}

/// Types a browser may show inline from this origin without running anything: raster images,
/// audio, video, PDF and plain text. HTML, SVG, XML and the rest are always attachments.
fn inline_safe(mime: &str) -> bool {
    let raster = mime.starts_with("image/") && !mime.contains("svg");
    raster
        || mime.starts_with("audio/")
        || mime.starts_with("video/")
        || mime == "application/pdf"
        || mime == "text/plain"
}

fn etag(rec: &FileContent) -> String {
    format!("\"{}\"", rec.hash)
}

/// Stored files are untrusted: opened from this origin (a download, or a GET through WebDAV),
/// they may run nothing, and only this origin's page may frame them. (PDF gets no `sandbox` and
/// no `default-src`: either keeps the browser's own PDF viewer from starting.)
pub(crate) fn stored_file_policy(h: &mut HeaderMap, mime: &str) {
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(if mime == "application/pdf" {
            "frame-ancestors 'self'; form-action 'none'; base-uri 'none'"
        } else {
            "default-src 'none'; img-src 'self' data:; media-src 'self'; \
             style-src 'unsafe-inline'; frame-ancestors 'self'; sandbox"
        }),
    );
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
}

/// Whether an `If-None-Match` list names this entity tag (weak comparison, RFC 9110 §13.1.2).
fn etag_matches(list: &str, tag: &str) -> bool {
    list.split(',')
        .map(str::trim)
        .any(|t| t == "*" || t.trim_start_matches("W/") == tag)
}

/// A file's content.
#[utoipa::path(get, path = "/api/files/{id}/content", tag = "files", params(ContentParams),
    responses((status = 200, description = "the whole file"), (status = 206, description = "one range, or multipart/byteranges"),
        (status = 304, description = "If-None-Match matched"), (status = 404, body = disgrafs_core::api::ErrorBody),
        (status = 416, body = disgrafs_core::api::ErrorBody)))]
pub(crate) async fn content(
    State(state): State<AppState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
    Query(p): Query<ContentParams>,
    method: Method,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let rec = state.store.content(&who.viewer(), &id).await?;
    respond(&state, rec, p.wants_inline(), &method, &headers).await
}

/// A content's response to a GET or HEAD of it: conditional, with Range (one range, or
/// `multipart/byteranges`), inline only when asked and safe. What every download goes
/// through (the API's, a share link's).
pub(crate) async fn respond(
    state: &AppState,
    rec: FileContent,
    want_inline: bool,
    method: &Method,
    headers: &HeaderMap,
) -> ApiResult<Response> {
    let tag = etag(&rec);
    let len = rec.size;
    let mut common = HeaderMap::new();
    common.insert(header::ETAG, HeaderValue::from_str(&tag).expect("hex etag"));
    common.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    common.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    common.insert(
        header::CONTENT_DISPOSITION,
        content_disposition(&rec.name, want_inline && inline_safe(&rec.mime)),
    );
    stored_file_policy(&mut common, &rec.mime);
    let mime = HeaderValue::from_str(&rec.mime)
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));

    if let Some(inm) = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        && etag_matches(inm, &tag)
    {
        return Ok((StatusCode::NOT_MODIFIED, common).into_response());
    }
    // A Range applies only if If-Range (when sent) still names this content.
    let range_header = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .filter(|_| {
            // If-Range compares strongly: only this exact tag.
            headers
                .get(header::IF_RANGE)
                .and_then(|v| v.to_str().ok())
                .is_none_or(|ir| ir.trim() == tag)
        });
    // RFC 9110: a Range that is not a well-formed byte range is ignored (200).
    let ranges = match range_header.map(|r| (r, byte_ranges(r, len))) {
        None | Some((_, Ranges::Whole)) => None,
        Some((_, Ranges::Bytes(v))) => Some(v),
        Some((r, Ranges::Unsatisfiable)) => {
            let mut resp = ApiError::new(
                Cause::RangeNotSatisfiable,
                format!("range '{r}' cannot be served from {len} bytes"),
            )
            .into_response();
            resp.headers_mut().insert(
                header::CONTENT_RANGE,
                HeaderValue::from_str(&format!("bytes */{len}")).expect("ascii"),
            );
            return Ok(resp);
        }
    };
    let head = *method == Method::HEAD;
    let body = |stream: Option<disgrafs_store::ByteStream>| {
        stream.map_or_else(Body::empty, Body::from_stream)
    };

    match ranges {
        None => {
            let stream = if head {
                None
            } else {
                Some(state.store.read(&rec.hash, None).await?)
            };
            let mut resp = (StatusCode::OK, common, body(stream)).into_response();
            resp.headers_mut().insert(header::CONTENT_TYPE, mime);
            resp.headers_mut()
                .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
            Ok(resp)
        }
        Some(r) if r.len() == 1 => {
            let (s, e) = (*r[0].start(), *r[0].end());
            let stream = if head {
                None
            } else {
                Some(state.store.read(&rec.hash, Some(s..e + 1)).await?)
            };
            let mut resp = (StatusCode::PARTIAL_CONTENT, common, body(stream)).into_response();
            let h = resp.headers_mut();
            h.insert(header::CONTENT_TYPE, mime);
            h.insert(
                header::CONTENT_RANGE,
                HeaderValue::from_str(&format!("bytes {s}-{e}/{len}")).expect("ascii"),
            );
            h.insert(header::CONTENT_LENGTH, HeaderValue::from(e - s + 1));
            Ok(resp)
        }
        Some(r) => multipart_ranges(state, &rec, r, common, mime, head).await,
    }
}

/// `multipart/byteranges` (RFC 9110 §14.6): one part per range, each with its Content-Range.
async fn multipart_ranges(
    state: &AppState,
    rec: &FileContent,
    ranges: Vec<RangeInclusive<u64>>,
    common: HeaderMap,
    mime: HeaderValue,
    head: bool,
) -> ApiResult<Response> {
    let boundary = uuid::Uuid::new_v4().simple().to_string();
    let mime_str = mime
        .to_str()
        .unwrap_or("application/octet-stream")
        .to_owned();
    let len = rec.size;
    let part_header = |r: &RangeInclusive<u64>| {
        format!(
            "\r\n--{boundary}\r\nContent-Type: {mime_str}\r\nContent-Range: bytes {}-{}/{len}\r\n\r\n",
            r.start(),
            r.end()
        )
    };
    let closing = format!("\r\n--{boundary}--\r\n");
    let total: u64 = ranges
        .iter()
        .map(|r| part_header(r).len() as u64 + (r.end() - r.start() + 1))
        .sum::<u64>()
        + closing.len() as u64;

    let body = if head {
        Body::empty()
    } else {
        let store = state.store.clone();
        let hash = rec.hash.clone();
        let parts: Vec<(Bytes, RangeInclusive<u64>)> = ranges
            .iter()
            .map(|r| (Bytes::from(part_header(r)), r.clone()))
            .collect();
        let stream = futures::stream::iter(parts)
            .then(move |(h, r)| {
                let store = store.clone();
                let hash = hash.clone();
                async move {
                    let data = store
                        .read(&hash, Some(*r.start()..r.end() + 1))
                        .await
                        .map_err(std::io::Error::other)?;
                    Ok::<_, std::io::Error>(futures::stream::once(async move { Ok(h) }).chain(data))
                }
            })
            .map(|r| match r {
                Ok(s) => s.boxed(),
                Err(e) => futures::stream::once(async move { Err(e) }).boxed(),
            })
            .flatten()
            .chain(futures::stream::once(
                async move { Ok(Bytes::from(closing)) },
            ));
        Body::from_stream(stream)
    };
    let mut resp = (StatusCode::PARTIAL_CONTENT, common, body).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(&format!("multipart/byteranges; boundary={boundary}"))
            .expect("ascii boundary"),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(total));
    Ok(resp)
}
