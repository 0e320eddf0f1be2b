//! Keyword extraction benchmark (stub).
