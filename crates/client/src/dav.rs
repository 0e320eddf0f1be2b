//! The WebDAV view at `/dav/` (see `disgrafs_server`'s `dav` module for its layout) as a
//! file-system client sees it: directory listings (PROPFIND, depth 1), reads from an offset
//! (GET with Range), streamed writes (PUT), DELETE, MKCOL and MOVE. Paths are the view's names
//! joined by `/`, relative to `/dav/` (`tags/rust/a.txt`); what a path means, and what writing
//! there does, is decided by the server alone.

use crate::{Client, ClientError, Result};
use disgrafs_core::api;
use futures::{Stream, StreamExt};
use percent_encoding::{AsciiSet, CONTROLS, percent_decode_str, utf8_percent_encode};
use reqwest::{Method, StatusCode, header};
use std::time::SystemTime;

/// What a path segment escapes in a URL (RFC 3986 `pchar`, and `%` itself).
const SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

/// The properties a listing asks for.
const PROPFIND_BODY: &str = r#"<?xml version="1.0" encoding="utf-8"?><D:propfind xmlns:D="DAV:"><D:prop><D:resourcetype/><D:getcontentlength/><D:getlastmodified/></D:prop></D:propfind>"#;

/// One entry of a WebDAV directory.
#[derive(Debug, Clone, PartialEq)]
pub struct DavEntry {
    /// Its name in the directory (decoded).
    pub name: String,
    pub dir: bool,
    pub size: u64,
    pub modified: Option<SystemTime>,
}

fn method(name: &'static str) -> Method {
    Method::from_bytes(name.as_bytes()).expect("a WebDAV method name")
}

impl Client {
    /// The URL of `path` under `/dav/`, a collection's with its trailing `/`.
    pub fn dav_url(&self, path: &str, dir: bool) -> String {
        let mut url = format!("{}/dav", self.base);
        for seg in path.split('/').filter(|s| !s.is_empty()) {
            url.push('/');
            url.extend(utf8_percent_encode(seg, SEGMENT));
        }
        if dir || path.trim_matches('/').is_empty() {
            url.push('/');
        }
        url
    }

    /// The entries of the directory `path`, from its JSON listing (the entries a PROPFIND of
    /// depth 1 gives, without the XML).
    pub async fn dav_list(&self, path: &str) -> Result<Vec<DavEntry>> {
        let resp = self
            .send(
                self.http
                    .get(self.dav_url(path, true))
                    .header(header::ACCEPT, api::DIR_LISTING_TYPE),
            )
            .await?;
        let entries: Vec<api::DirEntry> = resp.json().await?;
        Ok(entries
            .into_iter()
            .map(|e| DavEntry {
                modified: Some(e.modified()),
                name: e.name,
                dir: e.dir,
                size: e.size,
            })
            .collect())
    }

    /// The entries of the directory `path` (PROPFIND, depth 1), the directory itself left out:
    /// what any WebDAV client reads.
    pub async fn dav_propfind(&self, path: &str) -> Result<Vec<DavEntry>> {
        let url = self.dav_url(path, true);
        let resp = self
            .send(
                self.http
                    .request(method("PROPFIND"), &url)
                    .header("Depth", "1")
                    .header(header::CONTENT_TYPE, "application/xml")
                    .body(PROPFIND_BODY),
            )
            .await?;
        if resp.status() != StatusCode::MULTI_STATUS {
            return Err(ClientError::Protocol(format!(
                "PROPFIND {url}: {} instead of 207",
                resp.status()
            )));
        }
        let body = resp.text().await?;
        let own = decoded_path(&url);
        let mut out = Vec::new();
        for e in parse_multistatus(&body)? {
            let href = decoded_path(&e.href);
            if href.trim_end_matches('/') == own.trim_end_matches('/') {
                continue;
            }
            let name = href
                .trim_end_matches('/')
                .rsplit('/')
                .next()
                .unwrap_or_default()
                .to_owned();
            if name.is_empty() {
                continue;
            }
            out.push(DavEntry {
                name,
                dir: e.dir,
                size: e.size,
                modified: e.modified,
            });
        }
        Ok(out)
    }

    /// The content of the file `path` from byte `from` on, as it arrives.
    pub async fn dav_read_from(
        &self,
        path: &str,
        from: u64,
    ) -> Result<impl Stream<Item = Result<bytes::Bytes>> + Send + 'static> {
        let mut req = self.http.get(self.dav_url(path, false));
        if from > 0 {
            req = req.header(header::RANGE, format!("bytes={from}-"));
        }
        let resp = self.send(req).await?;
        if from > 0 && resp.status() != StatusCode::PARTIAL_CONTENT {
            return Err(ClientError::Protocol(format!(
                "GET {path} from {from}: {} instead of 206",
                resp.status()
            )));
        }
        Ok(resp.bytes_stream().map(|r| r.map_err(ClientError::from)))
    }

    /// Writes the local file `file` (`len` bytes) to `path`, streamed (PUT).
    pub async fn dav_put(&self, path: &str, file: tokio::fs::File, len: u64) -> Result<()> {
        let body = reqwest::Body::wrap_stream(crate::file_stream(file));
        self.send(
            self.http
                .put(self.dav_url(path, false))
                .header(header::CONTENT_LENGTH, len)
                .body(body),
        )
        .await
        .map(drop)
    }

    pub async fn dav_delete(&self, path: &str, dir: bool) -> Result<()> {
        self.send(self.http.delete(self.dav_url(path, dir)))
            .await
            .map(drop)
    }

    pub async fn dav_mkcol(&self, path: &str) -> Result<()> {
        self.send(self.http.request(method("MKCOL"), self.dav_url(path, true)))
            .await
            .map(drop)
    }

    /// Moves `from` to `to`, replacing what is there when `overwrite`.
    pub async fn dav_move(&self, from: &str, to: &str, dir: bool, overwrite: bool) -> Result<()> {
        self.send(
            self.http
                .request(method("MOVE"), self.dav_url(from, dir))
                .header("Destination", self.dav_url(to, dir))
                .header("Overwrite", if overwrite { "T" } else { "F" }),
        )
        .await
        .map(drop)
    }

    /// The kinds of the server's events (`/api/events`: `file.created`, …, `resync`), as they
    /// come; ends when the connection does.
    pub async fn events(&self) -> Result<impl Stream<Item = Result<String>> + Send + 'static> {
        let resp = self
            .send(
                self.http
                    .get(self.url("/api/events"))
                    .header(header::ACCEPT, "text/event-stream"),
            )
            .await?;
        let mut pending = Vec::new();
        let lines = resp.bytes_stream().map(move |chunk| {
            let chunk = chunk.map_err(ClientError::from)?;
            pending.extend_from_slice(&chunk);
            let mut kinds = Vec::new();
            while let Some(i) = pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = pending.drain(..=i).collect();
                let line = String::from_utf8_lossy(&line);
                if let Some(kind) = line.strip_prefix("event:") {
                    kinds.push(Ok(kind.trim().to_owned()));
                }
            }
            Ok::<_, ClientError>(futures::stream::iter(kinds))
        });
        Ok(lines
            .map(|r| match r {
                Ok(s) => s.left_stream(),
                Err(e) => futures::stream::iter(vec![Err(e)]).right_stream(),
            })
            .flatten())
    }
}

/// The decoded path of a URL or of an absolute path.
fn decoded_path(href: &str) -> String {
    let path = match href.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or("/", |i| &rest[i..]),
        None => href,
    };
    percent_decode_str(path).decode_utf8_lossy().into_owned()
}

struct Response {
    href: String,
    dir: bool,
    size: u64,
    modified: Option<SystemTime>,
}

/// The `response` elements of a WebDAV multistatus body.
fn parse_multistatus(body: &str) -> Result<Vec<Response>> {
    use quick_xml::events::Event;
    let bad = |e: &dyn std::fmt::Display| ClientError::Protocol(format!("PROPFIND reply: {e}"));
    let mut reader = quick_xml::Reader::from_str(body);
    let mut out = Vec::new();
    let mut cur: Option<Response> = None;
    // The element whose text is being read, and the text so far.
    let mut field: Option<Vec<u8>> = None;
    let mut text = String::new();
    loop {
        match reader.read_event().map_err(|e| bad(&e))? {
            Event::Start(e) => {
                let name = e.local_name().as_ref().to_vec();
                match name.as_slice() {
                    b"response" => {
                        cur = Some(Response {
                            href: String::new(),
                            dir: false,
                            size: 0,
                            modified: None,
                        })
                    }
                    b"collection" => {
                        if let Some(c) = &mut cur {
                            c.dir = true;
                        }
                    }
                    b"href" | b"getcontentlength" | b"getlastmodified" => {
                        field = Some(name);
                        text.clear();
                    }
                    _ => {}
                }
            }
            Event::Empty(e) if e.local_name().as_ref() == b"collection" => {
                if let Some(c) = &mut cur {
                    c.dir = true;
                }
            }
            Event::Text(t) if field.is_some() => text.push_str(&t.decode().map_err(|e| bad(&e))?),
            Event::GeneralRef(r) if field.is_some() => {
                let name = r.decode().map_err(|e| bad(&e))?;
                match r.resolve_char_ref().map_err(|e| bad(&e))? {
                    Some(c) => text.push(c),
                    None => text.push_str(
                        quick_xml::escape::resolve_predefined_entity(&name)
                            .ok_or_else(|| bad(&format!("unknown entity &{name};")))?,
                    ),
                }
            }
            Event::End(e) => match e.local_name().as_ref() {
                b"response" => out.extend(cur.take()),
                n if field.as_deref() == Some(n) => {
                    if let Some(c) = &mut cur {
                        let t = text.trim();
                        match n {
                            b"href" => c.href = t.to_owned(),
                            b"getcontentlength" => c.size = t.parse().unwrap_or(0),
                            _ => c.modified = httpdate::parse_http_date(t).ok(),
                        }
                    }
                    field = None;
                }
                _ => {}
            },
            Event::Eof => return Ok(out),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_multistatus_is_read() {
        let body = r#"<?xml version="1.0" encoding="utf-8"?>
<D:multistatus xmlns:D="DAV:"><D:response><D:href>/dav/tags/x/</D:href><D:propstat><D:prop>
<D:resourcetype><D:collection/></D:resourcetype></D:prop></D:propstat></D:response>
<D:response><D:href>/dav/tags/x/a%20%26%20b.txt</D:href><D:propstat><D:prop><D:resourcetype/>
<D:getcontentlength>12</D:getcontentlength>
<D:getlastmodified>Wed, 02 Dec 2026 13:00:00 GMT</D:getlastmodified></D:prop></D:propstat>
</D:response><D:response><D:href>http://h/dav/tags/x/R&amp;D/</D:href><D:propstat><D:prop>
<D:resourcetype><D:collection/></D:resourcetype></D:prop></D:propstat></D:response>
</D:multistatus>"#;
        let r = parse_multistatus(body).unwrap();
        assert_eq!(r.len(), 3);
        assert!(r[0].dir);
        assert_eq!(decoded_path(&r[1].href), "/dav/tags/x/a & b.txt");
        assert_eq!((r[1].dir, r[1].size), (false, 12));
        assert!(r[1].modified.is_some());
        assert_eq!(decoded_path(&r[2].href), "/dav/tags/x/R&D/");
        assert!(r[2].dir);
        assert!(parse_multistatus("<a><b></a>").is_err());
    }

    #[test]
    fn paths_are_escaped_per_segment() {
        let c = Client::new("http://h:1/", None).unwrap();
        assert_eq!(c.dav_url("", true), "http://h:1/dav/");
        assert_eq!(
            c.dav_url("tags/a%2Fb/x y?.txt", false),
            "http://h:1/dav/tags/a%252Fb/x%20y%3F.txt"
        );
        assert_eq!(c.dav_url("files/d", true), "http://h:1/dav/files/d/");
    }
}
