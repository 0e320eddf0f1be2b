//! The OpenAPI document, generated from the handlers' annotations, then made exact where the
//! annotations cannot be: what every operation may answer on error, the real range of unsigned
//! integer parameters, and the configured upload size.

use crate::AppState;
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::schema::{Object, Schema, SchemaFormat, SchemaType, Type};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
use utoipa::{Modify, Number, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(title = "disgrafs", description = "A graph file system: files, tags and the graph between them."),
    paths(
        crate::files::health, crate::files::list, crate::files::upload_raw, crate::files::upload_multipart,
        crate::files::get_file, crate::files::delete_file, crate::download::content, crate::files::add_tags,
        crate::files::remove_tags, crate::files::related, crate::files::share, crate::files::retag, crate::graph::graph,
        crate::graph::tags, crate::graph::cooccurrence, crate::events::events,
        crate::tus::options, crate::tus::create, crate::tus::head, crate::tus::patch, crate::tus::terminate,
        crate::recent::recent, crate::auth::login, crate::auth::link, crate::auth::logout,
        crate::auth::me, crate::auth::token, crate::share::make, crate::share::list,
        crate::share::revoke, crate::share::files, crate::share::download, crate::share::unlock,
    ),
    components(schemas(disgrafs_core::api::ErrorBody)),
    modifiers(&Exact),
    tags(
        (name = "files", description = "Upload, list, search, download, delete"),
        (name = "tags", description = "User and automatic tags"),
        (name = "graph", description = "The graph of files and tags"),
        (name = "events", description = "Live changes"),
        (name = "metrics", description = "The dashboard's figures over the last minutes (Prometheus text is at /metrics)"),
        (name = "auth", description = "Logins, sessions and API tokens (every other route needs a credential: Authorization: Bearer TOKEN, Basic with the token as password, or the page's session cookie)"),
        (name = "shares", description = "Read-only share links to a file or a query (`/s/…` needs no credential: the link is one)"),
        (name = "tus", description = "Resumable uploads, tus 1.0 (core, creation, creation-with-upload, termination, expiration)"),
    )
)]
pub struct ApiDoc;

/// What the annotations leave loose, made exact for every operation at once.
struct Exact;

impl Modify for Exact {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        for item in doc.paths.paths.values_mut() {
            for op in operations(item) {
                // Every error, whatever its status (a rejected Host, an overloaded store, a body
                // too large…), is the JSON error body.
                op.responses
                    .responses
                    .entry("default".to_owned())
                    .or_insert_with(|| {
                        ResponseBuilder::new()
                            .description("any other error, in the JSON error shape")
                            .content(
                                "application/json",
                                ContentBuilder::new()
                                    .schema(Some(Ref::from_schema_name("ErrorBody")))
                                    .build(),
                            )
                            .build()
                            .into()
                    });
                for p in op.parameters.iter_mut().flatten() {
                    if let Some(RefOr::T(Schema::Object(o))) = &mut p.schema {
                        unsigned_range(o);
                    }
                }
            }
        }
    }
}

fn operations(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.options,
        &mut item.head,
        &mut item.patch,
        &mut item.trace,
    ]
    .into_iter()
    .filter_map(Option::as_mut)
}

/// utoipa describes `u32` as int32 and `u64` as int64 (with minimum 0), whose ranges are the
/// signed ones: the server takes the whole unsigned range (and answers 400 beyond it), so that is
/// what the document says.
fn unsigned_range(o: &mut Object) {
    let is_integer = match &o.schema_type {
        SchemaType::Type(t) => *t == Type::Integer,
        SchemaType::Array(ts) => ts.contains(&Type::Integer),
        SchemaType::AnyValue => false,
    };
    let from_zero = match o.minimum {
        Some(Number::UInt(0) | Number::Int(0)) => true,
        Some(Number::Float(f)) => f == 0.0,
        _ => false,
    };
    if !is_integer || !from_zero {
        return;
    }
    let max = match &o.format {
        Some(SchemaFormat::KnownFormat(utoipa::openapi::KnownFormat::Int32)) => u32::MAX as usize,
        Some(SchemaFormat::KnownFormat(utoipa::openapi::KnownFormat::Int64)) => usize::MAX,
        _ => return,
    };
    o.format = None;
    o.maximum = Some(Number::UInt(max));
}

/// The document for this server: the upload size is its configured one.
fn document(state: &AppState) -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    let max_upload = usize::try_from(state.config.max_upload).unwrap_or(usize::MAX);
    for item in doc.paths.paths.values_mut() {
        for op in operations(item) {
            for p in op.parameters.iter_mut().flatten() {
                if p.name.eq_ignore_ascii_case(crate::tus::UPLOAD_LENGTH)
                    && let Some(RefOr::T(Schema::Object(o))) = &mut p.schema
                {
                    o.maximum = Some(Number::UInt(max_upload));
                }
            }
        }
    }
    doc
}

pub(crate) fn routes() -> Router<AppState> {
    Router::new().route(
        "/api/openapi.json",
        get(|State(state): State<AppState>| async move { Json(document(&state)) }),
    )
}
