//! disgrafs' domain: the records of the graph file system, the query language and
//! neighbour ranking.
//!
//! Architecture invariant: this crate does no IO (no files, no network, no clock reads); every
//! other crate can depend on it, and it depends on none of them.
#![cfg_attr(
    test,
    allow(
        unused_crate_dependencies,
        reason = "unit tests see the dev-dependencies that only the integration tests use"
    )
)]

pub mod api;
pub mod auth;
pub mod fsname;
pub mod fulltext;
pub mod model;
pub mod query;
pub mod range;
pub mod rank;
pub mod tus;

pub use model::*;
