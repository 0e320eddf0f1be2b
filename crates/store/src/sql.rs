//! SQL shared by every query: the visibility rule of edges, and the compilation of a parsed
//! query ([`Expr`]) into a condition over `files f JOIN blobs b`.
//!
//! Every value from a request is a bound parameter; only fixed SQL text is pushed, so no input
//! reaches the SQL text itself.

use disgrafs_core::query::{Expr, Predicate, TimeField};
use sqlx::{QueryBuilder, Sqlite};

/// The one definition of which edges are shown: user tags always, automatic tags at or above the
/// confidence threshold (weaker ones are kept, and shown again if the threshold is lowered).
/// Every query over edges reads them through this relation, as `FROM {visible} e`.
/// `min_confidence` is the server's setting, checked to be a number in 0..=1, never a request's
/// input.
pub(crate) fn visible_edges(min_confidence: f64) -> String {
    debug_assert!((0.0..=1.0).contains(&min_confidence));
    format!(
        "(SELECT file_id, tag_id, kind, extractor, weight FROM edges \
         WHERE kind = 'user' OR weight >= {min_confidence:?})"
    )
}

/// Pushes `v1, v2, ...)` as bound values: the rest of an `IN (` list.
pub(crate) fn push_list<'a>(qb: &mut QueryBuilder<'a, Sqlite>, items: &'a [String]) {
    let mut sep = qb.separated(", ");
    for v in items {
        sep.push_bind(v);
    }
    qb.push(")");
}

/// Pushes the condition `e` over `files f JOIN blobs b`; `visible` is [`visible_edges`].
pub(crate) fn push_expr(qb: &mut QueryBuilder<'_, Sqlite>, e: &Expr, visible: &str) {
    match e {
        Expr::All => {
            qb.push("1");
        }
        Expr::And(parts) | Expr::Or(parts) => {
            let op = if matches!(e, Expr::And(_)) {
                " AND "
            } else {
                " OR "
            };
            qb.push("(");
            for (i, p) in parts.iter().enumerate() {
                if i > 0 {
                    qb.push(op);
                }
                push_expr(qb, p, visible);
            }
            qb.push(")");
        }
        Expr::Not(inner) => {
            qb.push("NOT (");
            push_expr(qb, inner, visible);
            qb.push(")");
        }
        Expr::Pred(p) => push_pred(qb, p, visible),
    }
}

fn push_pred(qb: &mut QueryBuilder<'_, Sqlite>, p: &Predicate, visible: &str) {
    match p {
        Predicate::Tag(name) => {
            qb.push(format!(
                "EXISTS (SELECT 1 FROM {visible} e JOIN tags t ON t.id = e.tag_id \
                 WHERE e.file_id = f.id AND t.name = "
            ))
            .push_bind(name.clone())
            .push(")");
        }
        Predicate::NameContains(s) => {
            qb.push("instr(f.name_lower, ")
                .push_bind(s.clone())
                .push(") > 0");
        }
        Predicate::Kind(k) => {
            qb.push("b.kind = ").push_bind(k.as_str());
        }
        Predicate::Mime {
            prefix,
            exact: true,
        } => {
            qb.push("b.mime = ").push_bind(prefix.clone());
        }
        Predicate::Mime {
            prefix,
            exact: false,
        } => {
            qb.push("substr(b.mime, 1, ")
                .push_bind(prefix.chars().count() as i64)
                .push(") = ")
                .push_bind(prefix.clone());
        }
        Predicate::Ext(ext) => {
            let suffix = format!(".{ext}");
            qb.push("substr(f.name_lower, -")
                .push_bind(suffix.chars().count() as i64)
                .push(") = ")
                .push_bind(suffix);
        }
        // A whole hash can use the index.
        Predicate::HashPrefix(h) if h.len() == 64 => {
            qb.push("f.hash = ").push_bind(h.clone());
        }
        Predicate::HashPrefix(h) => {
            qb.push("substr(f.hash, 1, ")
                .push_bind(h.len() as i64)
                .push(") = ")
                .push_bind(h.clone());
        }
        Predicate::Size { min, max } => {
            qb.push("(1");
            if let Some(min) = min {
                qb.push(" AND f.size >= ")
                    .push_bind((*min).min(i64::MAX as u64) as i64);
            }
            if let Some(max) = max {
                qb.push(" AND f.size <= ")
                    .push_bind((*max).min(i64::MAX as u64) as i64);
            }
            qb.push(")");
        }
        Predicate::Time { field, start, end } => {
            let col = match field {
                TimeField::Created => "f.created",
                TimeField::Modified => "f.modified",
            };
            qb.push("(1");
            if let Some(s) = start {
                qb.push(format!(" AND {col} >= ")).push_bind(*s);
            }
            if let Some(e) = end {
                qb.push(format!(" AND {col} < ")).push_bind(*e);
            }
            qb.push(")");
        }
    }
}
