//! A file open for reading: one GET from an offset on, read ahead by a task into a bounded
//! channel, and a bounded window of what arrived, so the kernel's reads (in parallel and a
//! little out of order, with its own read-ahead) are answered from it; a read outside the
//! window starts a new GET there.

use bytes::Bytes;
use disgrafs_client::{Client, ClientError};
use futures::StreamExt;
use std::collections::VecDeque;

/// How many received chunks the read-ahead task may hold before the reader takes them.
const AHEAD_CHUNKS: usize = 32;
/// How many bytes behind the newest one the window keeps (reads that come late).
const WINDOW: u64 = 8 << 20;
/// How far past the window a read may start and still be reached by reading on (rather than a
/// new GET).
const SKIP: u64 = 4 << 20;

struct Stream {
    rx: tokio::sync::mpsc::Receiver<Result<Bytes, ClientError>>,
    task: tokio::task::JoinHandle<()>,
    /// The offset of the next byte from `rx`.
    next: u64,
}

impl Drop for Stream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub(crate) struct Reader {
    client: Client,
    path: String,
    size: u64,
    stream: Option<Stream>,
    /// Received chunks, by their offset, contiguous up to `stream.next`.
    window: VecDeque<(u64, Bytes)>,
}

impl Reader {
    pub(crate) fn new(client: Client, path: String, size: u64) -> Self {
        Reader {
            client,
            path,
            size,
            stream: None,
            window: VecDeque::new(),
        }
    }

    fn window_start(&self) -> Option<u64> {
        self.window.front().map(|(o, _)| *o)
    }

    async fn start(&mut self, at: u64) -> Result<(), ClientError> {
        self.stream = None;
        self.window.clear();
        let body = self.client.dav_read_from(&self.path, at).await?;
        let (tx, rx) = tokio::sync::mpsc::channel(AHEAD_CHUNKS);
        let task = tokio::spawn(async move {
            let mut body = std::pin::pin!(body);
            while let Some(chunk) = body.next().await {
                let stop = chunk.is_err();
                if tx.send(chunk).await.is_err() || stop {
                    return;
                }
            }
        });
        self.stream = Some(Stream { rx, task, next: at });
        Ok(())
    }

    /// Up to `len` bytes from `offset` (fewer only at the end of the file).
    pub(crate) async fn read(&mut self, offset: u64, len: u32) -> Result<Vec<u8>, ClientError> {
        let end = (offset + u64::from(len)).min(self.size);
        if offset >= end {
            return Ok(Vec::new());
        }
        let reachable = match (&self.stream, self.window_start()) {
            (Some(s), start) => offset >= start.unwrap_or(s.next) && offset <= s.next + SKIP,
            (None, _) => false,
        };
        if !reachable {
            self.start(offset).await?;
        }
        let stream = self.stream.as_mut().expect("started");
        while stream.next < end {
            match stream.rx.recv().await {
                Some(Ok(chunk)) => {
                    let at = stream.next;
                    stream.next += chunk.len() as u64;
                    self.window.push_back((at, chunk));
                }
                Some(Err(e)) => {
                    self.stream = None;
                    return Err(e);
                }
                None => {
                    self.stream = None;
                    return Err(ClientError::Protocol(format!(
                        "{}: the content ended early",
                        self.path
                    )));
                }
            }
            // Forget what is out of the window and not needed by this read.
            while let Some((o, c)) = self.window.front() {
                let chunk_end = o + c.len() as u64;
                if chunk_end <= offset && stream.next - chunk_end > WINDOW {
                    self.window.pop_front();
                } else {
                    break;
                }
            }
        }
        let mut out = Vec::with_capacity((end - offset) as usize);
        for (o, c) in &self.window {
            let chunk_end = o + c.len() as u64;
            if chunk_end <= offset || *o >= end {
                continue;
            }
            let from = offset.saturating_sub(*o) as usize;
            let to = (end.min(chunk_end) - o) as usize;
            out.extend_from_slice(&c[from..to]);
        }
        Ok(out)
    }
}
