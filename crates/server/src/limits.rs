//! Every bound the server puts on a request, in one place. Uploads stream without a size bound
//! other than `Config::max_upload`; everything else a request sends is bounded here, so no client
//! can make the server hold memory, threads or file descriptors it does not give back.

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
/// Uploads staged at once; more wait (without a thread) for one to finish.
pub const MAX_STAGING: usize = 128;
