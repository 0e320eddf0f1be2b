//! Every bound the server puts on a request, in one place. Uploads stream without a size bound
//! other than `Config::max_upload`; everything else a request sends is bounded here, so no client
//! can make the server hold memory, threads or file descriptors it does not give back.

use crate::error::{ApiError, Cause};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Largest body of a route that reads its body into memory (the JSON routes).
pub const JSON_BODY: usize = 1 << 20;
/// Most tags one request may add or remove.
pub const MAX_TAGS: usize = 1_000;
/// Most parts of one multipart upload (each is staged before any is stored).
pub const MAX_PARTS: usize = 256;
/// Largest header block of one multipart part.
pub const MAX_PART_HEADER: usize = 16 * 1024;
/// A client has this long to send a request's headers.
pub const HEADER_READ: Duration = Duration::from_secs(30);
/// A request body that sends nothing for this long is dropped; what arrived before stays (a tus
/// upload resumes from there).
pub const BODY_IDLE: Duration = Duration::from_secs(60);
/// Most tus uploads in progress at once (each is a row and its parts in the stores).
pub const MAX_LIVE_UPLOADS: usize = 10_000;
/// tus uploads one user may have in progress at once (429 beyond).
pub const MAX_LIVE_UPLOADS_PER_USER: usize = 100;
/// Uploads staged at once; more wait (without a thread) for one to finish.
pub const MAX_STAGING: usize = 128;
/// Uploads one client may send at once (PUT, POST, a tus PATCH or creation, a WebDAV PUT), on a
/// server that listens beyond loopback, unless configured otherwise.
pub const UPLOADS_PER_CLIENT: usize = 8;
/// How often the rate limiter forgets clients that have been quiet long enough to be fresh again.
const FORGET_EVERY: Duration = Duration::from_secs(60);

/// Requests per second one client may make, with a burst of as many at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub per_second: NonZeroU32,
    pub burst: NonZeroU32,
}

impl Rate {
    /// The limit of a server that listens beyond loopback, unless configured otherwise.
    pub const NETWORK_DEFAULT: Rate = Rate {
        per_second: NonZeroU32::new(100).expect("non-zero"),
        burst: NonZeroU32::new(200).expect("non-zero"),
    };
}

impl std::str::FromStr for Rate {
    type Err = String;
    /// `N` (per second, burst N) or `N/BURST`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad =
            || format!("rate limit {s:?}: expected requests per second, N or N/BURST (N > 0)");
        let (rate, burst) = s.split_once('/').unwrap_or((s, s));
        let n = |t: &str| t.trim().parse::<NonZeroU32>().map_err(|_| bad());
        Ok(Rate {
            per_second: n(rate)?,
            burst: n(burst)?,
        })
    }
}

/// Who a request counts against: the bearer of a token (by a hash of the `Authorization`
/// header, so the limiter keeps no secret), or else the peer's address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Client {
    Token(u64),
    Ip(IpAddr),
}

/// The peer address of a connection, put on each of its requests by the accept loop.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);

/// Per-client bounds: the request rate and the uploads in flight.
pub struct Clients {
    rate: Option<DefaultKeyedRateLimiter<Client>>,
    clock: DefaultClock,
    uploads: Mutex<HashMap<Client, usize>>,
    max_uploads: Option<usize>,
    hasher: RandomState,
}

impl Clients {
    pub fn new(rate: Option<Rate>, max_uploads: Option<usize>) -> Arc<Self> {
        Arc::new(Clients {
            rate: rate
                .map(|r| RateLimiter::keyed(Quota::per_second(r.per_second).allow_burst(r.burst))),
            clock: DefaultClock::default(),
            uploads: Mutex::new(HashMap::new()),
            max_uploads,
            hasher: RandomState::new(),
        })
    }

    fn client(&self, req: &Request) -> Option<Client> {
        if let Some(auth) = req.headers().get(header::AUTHORIZATION) {
            return Some(Client::Token(self.hasher.hash_one(auth.as_bytes())));
        }
        req.extensions().get::<Peer>().map(|p| Client::Ip(p.0.ip()))
    }

    /// Takes one of the client's upload slots; None when it has `max` in flight.
    fn upload_slot(self: &Arc<Self>, client: &Client, max: usize) -> Option<UploadSlot> {
        let mut uploads = self.uploads.lock().unwrap_or_else(|p| p.into_inner());
        let n = uploads.entry(client.clone()).or_default();
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(UploadSlot {
            clients: self.clone(),
            client: client.clone(),
        })
    }

    /// Forgets, now and then, the clients whose rate state is back to fresh (bounded memory).
    pub(crate) fn spawn_forget(self: &Arc<Self>) {
        let clients = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(FORGET_EVERY);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(c) = clients.upgrade() else { return };
                if let Some(r) = &c.rate {
                    r.retain_recent();
                    r.shrink_to_fit();
                }
            }
        });
    }
}

/// One upload in flight of one client; given back when dropped.
struct UploadSlot {
    clients: Arc<Clients>,
    client: Client,
}

impl Drop for UploadSlot {
    fn drop(&mut self) {
        let mut uploads = self
            .clients
            .uploads
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(n) = uploads.get_mut(&self.client) {
            *n -= 1;
            if *n == 0 {
                uploads.remove(&self.client);
            }
        }
    }
}

/// Whether a request sends a file's bytes.
fn is_upload(method: &Method, path: &str) -> bool {
    match *method {
        Method::PUT => path == "/api/files" || path.starts_with("/dav/"),
        Method::POST => path == "/api/files" || path.trim_end_matches('/') == "/api/uploads",
        Method::PATCH => path.starts_with("/api/uploads/"),
        _ => false,
    }
}

/// 429 with `Retry-After` (whole seconds, at least one) in the JSON error shape.
fn too_many(wait: Duration, msg: String) -> Response {
    let mut r = ApiError::new(Cause::RateLimited, msg).into_response();
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
    r
}

/// The middleware of the per-client bounds. A request without a token or a peer address (none
/// reaches here that way from the listener) is not limited.
pub(crate) async fn per_client(
    State(clients): State<Arc<Clients>>,
    req: Request,
    next: Next,
) -> Response {
    let Some(client) = clients.client(&req) else {
        return next.run(req).await;
    };
    if let Some(rate) = &clients.rate
        && let Err(not_until) = rate.check_key(&client)
    {
        let wait = not_until.wait_time_from(clients.clock.now());
        return too_many(
            wait,
            "too many requests from this client; retry later".into(),
        );
    }
    let _slot = match clients.max_uploads {
        Some(max) if is_upload(req.method(), req.uri().path()) => {
            match clients.upload_slot(&client, max) {
                Some(s) => Some(s),
                None => {
                    return too_many(
                        Duration::from_secs(1),
                        format!("this client already sends {max} uploads; retry when one is done"),
                    );
                }
            }
        }
        _ => None,
    };
    next.run(req).await
}
