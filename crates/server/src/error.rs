//! The one place where failures become HTTP statuses and JSON bodies: every error response names
//! a [`Cause`], and [`Cause::status`] is the table of statuses.

use axum::extract::rejection::{
    BytesRejection, FailedToBufferBody, JsonRejection, PathRejection, QueryRejection,
};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use disgrafs_core::api::ErrorBody;
use disgrafs_core::query::QueryError;
use disgrafs_core::{NameError, TagNameError};
use disgrafs_store::StoreError;

/// Why a request failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    BadRequest,
    BadQuery,
    /// A query the database aborted over its budget (`disgrafs_store::QueryBudget`).
    QueryTooCostly,
    /// A name, a tag or metadata that is well-formed HTTP but not acceptable.
    Invalid,
    NotFound,
    TooLarge,
    StorageFull,
    /// The user's quota has no room for the upload (`disgrafs admin user quota`).
    OverQuota,
    /// No credential, or one that is unknown, revoked or expired.
    Unauthorized,
    /// A credential whose scope is too small, or a cookie write without its CSRF proof.
    Forbidden,
    /// A browser page of another site tried to change the store.
    CrossOrigin,
    /// The request's Host is not one this server answers to (DNS rebinding).
    MisdirectedHost,
    TusVersion,
    UnsupportedMediaType,
    /// Another request is writing the same upload.
    Locked,
    OffsetMismatch,
    RangeNotSatisfiable,
    /// A response larger than the AF_XDP fast path serves: the normal server answers it.
    FastPathLimit,
    /// No route has this path.
    NoRoute,
    /// The route exists but not with this method.
    MethodNotAllowed,
    /// A server-wide bound (say, of uploads in progress) is reached; retry later.
    Busy,
    /// One client sent too many requests, or too many uploads at once (with `Retry-After`).
    RateLimited,
    /// The metadata store is out of reach for now (restarting, down); retry later.
    Unavailable,
    Internal,
}

impl Cause {
    pub fn status(self) -> StatusCode {
        match self {
            Cause::BadRequest | Cause::BadQuery | Cause::QueryTooCostly => StatusCode::BAD_REQUEST,
            Cause::Invalid => StatusCode::UNPROCESSABLE_ENTITY,
            Cause::NotFound => StatusCode::NOT_FOUND,
            Cause::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Cause::StorageFull | Cause::OverQuota => StatusCode::INSUFFICIENT_STORAGE,
            Cause::Unauthorized => StatusCode::UNAUTHORIZED,
            Cause::Forbidden | Cause::CrossOrigin => StatusCode::FORBIDDEN,
            Cause::MisdirectedHost => StatusCode::MISDIRECTED_REQUEST,
            Cause::TusVersion => StatusCode::PRECONDITION_FAILED,
            Cause::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Cause::Locked => StatusCode::LOCKED,
            Cause::OffsetMismatch => StatusCode::CONFLICT,
            Cause::RangeNotSatisfiable => StatusCode::RANGE_NOT_SATISFIABLE,
            Cause::FastPathLimit | Cause::Busy | Cause::Unavailable => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Cause::NoRoute => StatusCode::NOT_FOUND,
            Cause::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            Cause::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Cause::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The same table for WebDAV, whose handler (dav-server) turns a file-system error into the
    /// status: the nearest of its errors.
    pub(crate) fn fs_error(self) -> dav_server::fs::FsError {
        use dav_server::fs::FsError;
        match self {
            Cause::NotFound | Cause::NoRoute => FsError::NotFound,
            Cause::TooLarge => FsError::TooLarge,
            Cause::StorageFull | Cause::OverQuota => FsError::InsufficientStorage,
            Cause::Invalid
            | Cause::CrossOrigin
            | Cause::Unauthorized
            | Cause::Forbidden
            | Cause::BadRequest
            | Cause::BadQuery
            | Cause::QueryTooCostly => FsError::Forbidden,
            _ => FsError::GeneralFailure,
        }
    }

    /// The stable, machine-readable `code` of the body.
    pub fn code(self) -> &'static str {
        match self {
            Cause::BadRequest => "bad_request",
            Cause::BadQuery => "bad_query",
            Cause::QueryTooCostly => "query_too_costly",
            Cause::Invalid => "invalid",
            Cause::NotFound => "not_found",
            Cause::TooLarge => "too_large",
            Cause::StorageFull => "storage_full",
            Cause::OverQuota => "over_quota",
            Cause::Unauthorized => "unauthorized",
            Cause::Forbidden => "forbidden",
            Cause::CrossOrigin => "cross_origin",
            Cause::MisdirectedHost => "unknown_host",
            Cause::TusVersion => "tus_version",
            Cause::UnsupportedMediaType => "bad_content_type",
            Cause::Locked => "busy",
            Cause::OffsetMismatch => "offset_mismatch",
            Cause::RangeNotSatisfiable => "range_not_satisfiable",
            Cause::FastPathLimit => "fast_path_limit",
            Cause::NoRoute => "no_route",
            Cause::MethodNotAllowed => "method_not_allowed",
            Cause::Busy => "server_busy",
            Cause::RateLimited => "rate_limited",
            Cause::Unavailable => "store_unavailable",
            Cause::Internal => "internal",
        }
    }
}

#[derive(Debug)]
pub struct ApiError {
    cause: Cause,
    message: String,
    /// Character offset of a query error.
    position: Option<usize>,
}

impl ApiError {
    pub fn new(cause: Cause, msg: impl Into<String>) -> Self {
        ApiError {
            cause,
            message: msg.into(),
            position: None,
        }
    }
    pub fn bad_request(msg: impl Into<String>) -> Self {
        Self::new(Cause::BadRequest, msg)
    }
    pub fn invalid(msg: impl Into<String>) -> Self {
        Self::new(Cause::Invalid, msg)
    }
    pub fn not_found(msg: impl Into<String>) -> Self {
        Self::new(Cause::NotFound, msg)
    }
    pub fn too_large(msg: impl Into<String>) -> Self {
        Self::new(Cause::TooLarge, msg)
    }
    pub fn internal(msg: impl Into<String>) -> Self {
        Self::new(Cause::Internal, msg)
    }

    pub fn cause(&self) -> Cause {
        self.cause
    }

    /// The one line a person reads.
    pub fn message(&self) -> &str {
        &self.message
    }

    pub fn status(&self) -> StatusCode {
        self.cause.status()
    }

    /// Puts `context: ` before the message.
    pub fn context(mut self, context: &str) -> Self {
        self.message = format!("{context}: {}", self.message);
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(%status, "{}", self.message);
        }
        let body = ErrorBody {
            error: self.message,
            code: self.cause.code().to_owned(),
            position: self.position,
        };
        (status, axum::Json(body)).into_response()
    }
}

impl From<QueryError> for ApiError {
    fn from(e: QueryError) -> Self {
        ApiError {
            cause: Cause::BadQuery,
            message: format!("query: {}", e.message),
            position: Some(e.position),
        }
    }
}

impl From<NameError> for ApiError {
    fn from(e: NameError) -> Self {
        ApiError::invalid(format!("file name: {e}"))
    }
}

impl From<TagNameError> for ApiError {
    fn from(e: TagNameError) -> Self {
        ApiError::invalid(e.to_string())
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => ApiError::not_found(format!("{what} not found")),
            StoreError::Invalid(m) => ApiError::invalid(m),
            StoreError::Query(q) => q.into(),
            StoreError::Full(m) => {
                ApiError::new(Cause::StorageFull, format!("storage is full: {m}"))
            }
            StoreError::OverQuota(m) => ApiError::new(Cause::OverQuota, m),
            StoreError::Busy(m) => ApiError::new(Cause::Busy, m),
            StoreError::TooMany(m) => ApiError::new(Cause::RateLimited, m),
            StoreError::Locked(m) => ApiError::new(Cause::Locked, m),
            StoreError::TooCostly(m) => ApiError::new(Cause::QueryTooCostly, m),
            e @ StoreError::Unavailable(_) => ApiError::new(Cause::Unavailable, e.to_string()),
            other => ApiError::internal(other.to_string()),
        }
    }
}

impl From<crate::host::UnknownHost> for ApiError {
    fn from(e: crate::host::UnknownHost) -> Self {
        ApiError::new(
            Cause::MisdirectedHost,
            format!(
                "this server does not answer to host {:?} (add it with --allowed-host)",
                e.0
            ),
        )
    }
}

/// A body that could not be read whole: too large for the route, or broken off.
fn buffer_cause(e: &FailedToBufferBody) -> Cause {
    match e {
        FailedToBufferBody::LengthLimitError(_) => Cause::TooLarge,
        _ => Cause::BadRequest,
    }
}

impl From<JsonRejection> for ApiError {
    fn from(e: JsonRejection) -> Self {
        let cause = match &e {
            JsonRejection::JsonDataError(_) => Cause::Invalid,
            JsonRejection::MissingJsonContentType(_) => Cause::UnsupportedMediaType,
            JsonRejection::BytesRejection(BytesRejection::FailedToBufferBody(b)) => buffer_cause(b),
            _ => Cause::BadRequest,
        };
        ApiError::new(cause, one_line(&e.body_text()))
    }
}

impl From<QueryRejection> for ApiError {
    fn from(e: QueryRejection) -> Self {
        ApiError::bad_request(one_line(&e.body_text()))
    }
}

impl From<PathRejection> for ApiError {
    fn from(e: PathRejection) -> Self {
        ApiError::bad_request(one_line(&e.body_text()))
    }
}

/// Error messages are one line (serde's may carry a newline and a caret).
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The answer for a path no route has.
pub(crate) async fn no_route(uri: axum::http::Uri) -> ApiError {
    ApiError::new(Cause::NoRoute, format!("no route for {}", uri.path()))
}

/// The answer for a route asked with a method it does not take.
pub(crate) async fn method_not_allowed(method: axum::http::Method) -> ApiError {
    ApiError::new(
        Cause::MethodNotAllowed,
        format!("this route does not take {method}"),
    )
}

pub type ApiResult<T> = Result<T, ApiError>;
