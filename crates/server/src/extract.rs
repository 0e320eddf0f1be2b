//! Extractors whose refusals are [`ApiError`]s: axum's own rejections answer in plain text, these
//! answer in the JSON error shape with a [`crate::error::Cause`] like every other error.

use crate::error::ApiError;
use axum::extract::{FromRequest, FromRequestParts};

/// A JSON request body (bounded by the router's `DefaultBodyLimit`).
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub(crate) struct JsonBody<T>(pub T);

/// Query-string parameters.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub(crate) struct Query<T>(pub T);

/// Path parameters.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub(crate) struct Path<T>(pub T);
