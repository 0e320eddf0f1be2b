//! Compiles a parsed query ([`Expr`]) into a SQL condition over `files f JOIN blobs b`.
//!
//! Every value is a bound parameter; only fixed SQL text is pushed, so no input reaches the SQL
//! text itself.

use disgrafs_core::query::{Expr, Predicate, TimeField};
use sqlx::{QueryBuilder, Sqlite};

pub(crate) fn push_expr(qb: &mut QueryBuilder<'_, Sqlite>, e: &Expr, min_confidence: f64) {
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
                push_expr(qb, p, min_confidence);
            }
            qb.push(")");
        }
        Expr::Not(inner) => {
            qb.push("NOT (");
            push_expr(qb, inner, min_confidence);
            qb.push(")");
        }
        Expr::Pred(p) => push_pred(qb, p, min_confidence),
    }
}

fn push_pred(qb: &mut QueryBuilder<'_, Sqlite>, p: &Predicate, min_confidence: f64) {
    match p {
        Predicate::Tag(name) => {
            // A user tag on the file, or a confident automatic tag on its content that the
            // person has not hidden.
            qb.push("(EXISTS (SELECT 1 FROM file_tags ft JOIN tags t ON t.id = ft.tag_id WHERE ft.file_id = f.id AND ft.hidden = 0 AND t.name = ")
                .push_bind(name.clone())
                .push(") OR EXISTS (SELECT 1 FROM blob_tags bt JOIN tags t ON t.id = bt.tag_id WHERE bt.hash = f.hash AND t.name = ")
                .push_bind(name.clone())
                .push(" AND bt.weight >= ")
                .push_bind(min_confidence)
                .push(" AND NOT EXISTS (SELECT 1 FROM file_tags h WHERE h.file_id = f.id AND h.tag_id = bt.tag_id AND h.hidden = 1)))");
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
