//! Extractors whose refusals are [`ApiError`]s: axum's own rejections answer in plain text, these
//! answer in the JSON error shape with a [`crate::error::Cause`] like every other error.

use crate::error::ApiError;
use axum::extract::{FromRequest, FromRequestParts};

/// A JSON request body (bounded by the router's `DefaultBodyLimit`): an object, whatever `T` is.
/// serde would also read a struct from an array of its fields (`[null]`), which no client means
/// and the OpenAPI document does not allow.
pub(crate) struct JsonBody<T>(pub T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        let axum::Json(v) = axum::Json::<serde_json::Value>::from_request(req, state).await?;
        if !v.is_object() {
            return Err(ApiError::invalid("the body must be a JSON object"));
        }
        serde_json::from_value(v)
            .map(JsonBody)
            .map_err(|e| ApiError::invalid(format!("the JSON body does not fit: {e}")))
    }
}

/// Query-string parameters.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub(crate) struct Query<T>(pub T);

/// Path parameters.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub(crate) struct Path<T>(pub T);
