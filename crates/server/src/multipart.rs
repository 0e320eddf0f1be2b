//! `multipart/form-data` bodies, parsed by multer behind a guard that bounds what multer would
//! otherwise buffer: a part's header block (multer keeps and rescans it until `\r\n\r\n` comes,
//! so an endless one costs memory and quadratic time) and the number of parts.

use crate::error::{ApiError, Cause};
use crate::limits::{MAX_PART_HEADER, MAX_PARTS};
use axum::extract::{FromRequest, Request};
use axum::http::header;
use bytes::Bytes;
use futures::Stream;
use std::pin::Pin;
use std::task::{Context, Poll};

/// A multipart body; its refusals are [`ApiError`]s.
pub(crate) struct Multipart(multer::Multipart<'static>);

impl<S: Send + Sync> FromRequest<S> for Multipart {
    type Rejection = ApiError;

    async fn from_request(req: Request, _: &S) -> Result<Self, ApiError> {
        let ct = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let boundary = multer::parse_boundary(ct).map_err(|e| match e {
            multer::Error::NoBoundary => {
                ApiError::bad_request("multipart Content-Type has no valid boundary")
            }
            _ => ApiError::new(
                Cause::UnsupportedMediaType,
                "expected Content-Type: multipart/form-data; boundary=…",
            ),
        })?;
        let guard = Guard::new(req.into_body().into_data_stream(), &boundary);
        Ok(Multipart(multer::Multipart::new(guard, boundary)))
    }
}

impl Multipart {
    /// The next part, or `None` after the last.
    pub(crate) async fn next_field(&mut self) -> Result<Option<multer::Field<'static>>, ApiError> {
        self.0.next_field().await.map_err(refusal)
    }
}

/// The error for a body multer could not read: the guard's bound, or malformed.
pub(crate) fn refusal(e: multer::Error) -> ApiError {
    if let multer::Error::StreamReadFailed(inner) = &e
        && let Some(limit) = inner.downcast_ref::<PartLimit>()
    {
        return ApiError::too_large(limit.to_string());
    }
    ApiError::bad_request(format!("malformed multipart body: {e}"))
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum PartLimit {
    #[error("a multipart part's headers exceed {MAX_PART_HEADER} bytes")]
    Header,
    #[error("a multipart body may have at most {MAX_PARTS} parts")]
    Parts,
}

/// Where the guard is in the body.
enum At {
    /// In a part's content (or the preamble): looking for the next delimiter.
    Content,
    /// After a delimiter: `len` header bytes seen, the last four in `window`.
    Headers { len: usize, window: u32 },
    /// After the closing delimiter: nothing more is checked.
    End,
}

/// Passes the body through unchanged while it counts delimiters and measures header blocks.
/// Content is searched with memchr's `memmem`, so the guard adds a linear scan, no copies.
struct Guard<S> {
    inner: S,
    /// `\r\n--BOUNDARY`.
    delimiter: memchr::memmem::Finder<'static>,
    /// The last `delimiter.len() - 1` content bytes, for a delimiter split between chunks.
    carry: Vec<u8>,
    at: At,
    delimiters: usize,
    failed: bool,
}

impl<S> Guard<S> {
    fn new(inner: S, boundary: &str) -> Self {
        let delimiter = format!("\r\n--{boundary}").into_bytes();
        Guard {
            inner,
            delimiter: memchr::memmem::Finder::new(&delimiter).into_owned(),
            // The first delimiter may open the body, without the line break before it.
            carry: b"\r\n".to_vec(),
            at: At::Content,
            delimiters: 0,
            failed: false,
        }
    }

    /// Checks one chunk.
    fn check(&mut self, chunk: &[u8]) -> Result<(), PartLimit> {
        let mut i = 0;
        while i < chunk.len() {
            match &mut self.at {
                At::End => return Ok(()),
                At::Content => match self.find_delimiter(&chunk[i..]) {
                    Some(end) => {
                        i += end;
                        self.delimiters += 1;
                        // The closing delimiter is one more than the parts.
                        if self.delimiters > MAX_PARTS + 1 {
                            return Err(PartLimit::Parts);
                        }
                        self.carry.clear();
                        self.at = At::Headers { len: 0, window: 0 };
                    }
                    None => {
                        self.keep_tail(&chunk[i..]);
                        return Ok(());
                    }
                },
                At::Headers { len, window } => {
                    let b = chunk[i];
                    i += 1;
                    *len += 1;
                    *window = (*window << 8) | u32::from(b);
                    if *len == 2 && *window & 0xffff == u32::from(u16::from_be_bytes(*b"--")) {
                        self.at = At::End;
                    } else if *window == u32::from_be_bytes(*b"\r\n\r\n") {
                        self.at = At::Content;
                    } else if *len > MAX_PART_HEADER {
                        return Err(PartLimit::Header);
                    }
                }
            }
        }
        Ok(())
    }

    /// Where the first delimiter in `data` (or one begun in `carry`) ends, as an offset in `data`.
    fn find_delimiter(&self, data: &[u8]) -> Option<usize> {
        let n = self.delimiter.needle().len();
        if !self.carry.is_empty() {
            let mut joined = self.carry.clone();
            joined.extend_from_slice(&data[..data.len().min(n - 1)]);
            if let Some(p) = self.delimiter.find(&joined) {
                return Some(p + n - self.carry.len());
            }
        }
        self.delimiter.find(data).map(|p| p + n)
    }

    fn keep_tail(&mut self, data: &[u8]) {
        let n = self.delimiter.needle().len() - 1;
        if data.len() >= n {
            self.carry.clear();
            self.carry.extend_from_slice(&data[data.len() - n..]);
        } else {
            self.carry.extend_from_slice(data);
            let excess = self.carry.len().saturating_sub(n);
            self.carry.drain(..excess);
        }
    }
}

impl<S, E> Stream for Guard<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Item = Result<Bytes, Box<dyn std::error::Error + Send + Sync>>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.failed {
            return Poll::Ready(None);
        }
        match Pin::new(&mut self.inner).poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => match self.check(&chunk) {
                Ok(()) => Poll::Ready(Some(Ok(chunk))),
                Err(e) => {
                    self.failed = true;
                    Poll::Ready(Some(Err(Box::new(e))))
                }
            },
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(chunks: &[&[u8]]) -> Result<usize, PartLimit> {
        let mut g = Guard::new(
            futures::stream::empty::<Result<Bytes, std::io::Error>>(),
            "XY",
        );
        for c in chunks {
            g.check(c)?;
        }
        Ok(g.delimiters)
    }

    #[test]
    fn counts_delimiters_split_anywhere() {
        let body: &[u8] =
            b"--XY\r\nA: b\r\n\r\nhello\r\n--XY\r\nA: c\r\n\r\n--X-\r\nworld\r\n--XY--\r\nepilogue";
        assert_eq!(run(&[body]).unwrap(), 3);
        for cut in 1..body.len() {
            assert_eq!(
                run(&[&body[..cut], &body[cut..]]).unwrap(),
                3,
                "cut at {cut}"
            );
        }
        let bytes: Vec<&[u8]> = body.chunks(1).collect();
        assert_eq!(run(&bytes).unwrap(), 3);
    }

    #[test]
    fn endless_headers_are_refused() {
        let mut body = b"--XY\r\n".to_vec();
        body.extend(std::iter::repeat_n(b'h', MAX_PART_HEADER + 1));
        assert!(matches!(run(&[&body]), Err(PartLimit::Header)));
    }

    #[test]
    fn too_many_parts_are_refused() {
        let mut body = Vec::new();
        for _ in 0..=MAX_PARTS + 1 {
            body.extend_from_slice(b"--XY\r\nA: b\r\n\r\nx\r\n");
        }
        assert!(matches!(run(&[&body]), Err(PartLimit::Parts)));
    }
}
