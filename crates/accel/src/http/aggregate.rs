//! Aggregates of observed requests per method and normalised path, with bounded cardinality: the
//! stable shape the metrics endpoint reads ([`HttpAggregates`]).
//!
//! Paths are normalised so that the label set stays small whatever clients send: the query and
//! fragment are dropped, segments that look like identifiers (numbers, hex hashes, UUIDs) become
//! `:id`, depth and segment length are capped. Past [`AggregateLimits::max_routes`] distinct
//! (method, path) pairs, new pairs are counted under path [`OVERFLOW_PATH`]; past
//! `max_methods`, new methods under [`OTHER_METHOD`].

use std::collections::HashMap;

use serde::Serialize;

/// Path label for requests whose route did not fit in the table.
pub const OVERFLOW_PATH: &str = "<other>";
/// Method label for methods that did not fit in the table.
pub const OTHER_METHOD: &str = "OTHER";
/// Segments kept in a normalised path; deeper ones become `...`.
pub const MAX_DEPTH: usize = 4;
/// Longer segments are labelled `:long`.
pub const MAX_SEGMENT: usize = 48;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AggregateLimits {
    pub max_routes: usize,
    pub max_methods: usize,
}

impl Default for AggregateLimits {
    fn default() -> Self {
        AggregateLimits {
            max_routes: 256,
            max_methods: 32,
        }
    }
}

/// Counts of one (method, normalised path).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RouteStats {
    pub method: String,
    pub path: String,
    pub requests: u64,
    pub bytes: u64,
}

/// A snapshot of everything observed so far. Field names and meanings are stable: the metrics
/// endpoint exports them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct HttpAggregates {
    /// Complete request lines seen.
    pub requests: u64,
    /// Sum of [`RouteStats::bytes`].
    pub bytes: u64,
    /// Request lines split across segments (counted, not reassembled; not in `routes`).
    pub split_request_lines: u64,
    /// Frames the filter kept that user space rejected on full parsing.
    pub rejected: u64,
    /// Sorted by method, then path.
    pub routes: Vec<RouteStats>,
}

/// Normalises a request target to a bounded path label.
pub fn normalize_path(target: &str) -> String {
    if target == "*" {
        return "*".into();
    }
    // Absolute form ("http://host/p"): keep the path only.
    let path = match target.find("://") {
        Some(i) => target[i + 3..]
            .find('/')
            .map_or("/", |j| &target[i + 3 + j..]),
        None if !target.starts_with('/') => return ":authority".into(), // CONNECT host:port
        None => target,
    };
    let path = path.split(['?', '#']).next().unwrap_or("/");
    let mut out = String::new();
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    for (i, seg) in segs.iter().enumerate() {
        if i == MAX_DEPTH {
            out.push_str("/...");
            break;
        }
        out.push('/');
        out.push_str(&normalize_segment(seg));
    }
    if out.is_empty() || (path.ends_with('/') && segs.len() <= MAX_DEPTH && !segs.is_empty()) {
        out.push('/');
    }
    out
}

fn normalize_segment(seg: &str) -> String {
    let is_hex = |s: &str| s.bytes().all(|b| b.is_ascii_hexdigit());
    let digits = seg.bytes().filter(u8::is_ascii_digit).count();
    let uuid_like = seg.len() == 36
        && seg.bytes().filter(|b| *b == b'-').count() == 4
        && is_hex(&seg.replace('-', ""));
    if seg.bytes().all(|b| b.is_ascii_digit())
        || uuid_like
        || (seg.len() >= 16 && is_hex(seg) && digits > 0)
    {
        ":id".into()
    } else if seg.len() > MAX_SEGMENT {
        ":long".into()
    } else {
        seg.to_string()
    }
}

/// Accumulates requests; [`Aggregator::snapshot`] gives the stable view.
#[derive(Debug, Default)]
pub struct Aggregator {
    limits: AggregateLimits,
    routes: HashMap<(String, String), (u64, u64)>,
    methods: std::collections::HashSet<String>,
    requests: u64,
    bytes: u64,
    split: u64,
    rejected: u64,
}

impl Aggregator {
    pub fn new(limits: AggregateLimits) -> Self {
        Aggregator {
            limits,
            ..Default::default()
        }
    }

    pub fn record(&mut self, method: &str, target: &str, bytes: u64) {
        self.requests += 1;
        self.bytes += bytes;
        let method = if self.methods.contains(method) {
            method.to_string()
        } else if self.methods.len() < self.limits.max_methods {
            self.methods.insert(method.to_string());
            method.to_string()
        } else {
            OTHER_METHOD.to_string()
        };
        let mut key = (method, normalize_path(target));
        if !self.routes.contains_key(&key) && self.routes.len() >= self.limits.max_routes {
            key.1 = OVERFLOW_PATH.to_string();
        }
        let e = self.routes.entry(key).or_default();
        e.0 += 1;
        e.1 += bytes;
    }

    pub fn record_split(&mut self) {
        self.split += 1;
    }

    pub fn record_rejected(&mut self) {
        self.rejected += 1;
    }

    pub fn snapshot(&self) -> HttpAggregates {
        let mut routes: Vec<RouteStats> = self
            .routes
            .iter()
            .map(|((m, p), (n, b))| RouteStats {
                method: m.clone(),
                path: p.clone(),
                requests: *n,
                bytes: *b,
            })
            .collect();
        routes.sort_by(|a, b| (&a.method, &a.path).cmp(&(&b.method, &b.path)));
        HttpAggregates {
            requests: self.requests,
            bytes: self.bytes,
            split_request_lines: self.split,
            rejected: self.rejected,
            routes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes() {
        for (t, want) in [
            ("/", "/"),
            ("/api/files?limit=10#x", "/api/files"),
            ("/api/files/12345", "/api/files/:id"),
            (
                "/api/files/3f2a9c0b8d7e6f5a4b3c2d1e0f9a8b7c",
                "/api/files/:id",
            ),
            (
                "/api/tags/550e8400-e29b-41d4-a716-446655440000/files",
                "/api/tags/:id/files",
            ),
            ("/a/b/c/d/e/f", "/a/b/c/d/..."),
            ("/static/", "/static/"),
            ("/deadbeef", "/deadbeef"),
            ("http://example.test/x/1?q", "/x/:id"),
            ("http://example.test", "/"),
            ("example.test:443", ":authority"),
            ("*", "*"),
        ] {
            assert_eq!(normalize_path(t), want, "{t}");
        }
        assert_eq!(normalize_path(&format!("/{}", "a".repeat(100))), "/:long");
    }

    #[test]
    fn bounded_cardinality() {
        let mut a = Aggregator::new(AggregateLimits {
            max_routes: 3,
            max_methods: 2,
        });
        for i in 0..10 {
            a.record("GET", &format!("/r{i}"), 10);
        }
        a.record("GET", "/r0", 5);
        a.record("PUT", "/r0", 1);
        a.record("BREW", "/pot", 1);
        a.record_split();
        let s = a.snapshot();
        assert_eq!(s.requests, 13);
        assert_eq!(s.bytes, 107);
        assert_eq!(s.split_request_lines, 1);
        assert_eq!(s.routes.len(), 6, "{:?}", s.routes);
        let find = |m: &str, p: &str| {
            s.routes
                .iter()
                .find(|r| r.method == m && r.path == p)
                .map(|r| (r.requests, r.bytes))
        };
        assert_eq!(find("GET", "/r0"), Some((2, 15)));
        assert_eq!(find("GET", OVERFLOW_PATH), Some((7, 70)));
        assert_eq!(find("PUT", OVERFLOW_PATH), Some((1, 1)));
        assert_eq!(find(OTHER_METHOD, OVERFLOW_PATH), Some((1, 1)));
    }
}
