//! SQL shared by every query of every adapter: the visibility rule of edges, and the compilation
//! of a parsed query ([`Expr`]) into a condition over `files f JOIN blobs b`.
//!
//! One compiler serves both databases through [`Dialect`]: sqlx's `QueryBuilder` already writes
//! each database's placeholders (`?` or `$n`), so a dialect only says how to spell the few string
//! tests SQLite and PostgreSQL name differently. (sea-query would give the same with a second
//! AST to build and keep in step with `Expr`; the differences are three functions.)
//!
//! Every value from a request is a bound parameter; only fixed SQL text is pushed, so no input
//! reaches the SQL text itself.

use crate::StoreError;
use crate::meta::Viewer;
use disgrafs_core::fulltext::{HIT_END, HIT_START};
use disgrafs_core::query::{Expr, Predicate, TextTerm, TimeField};
use sqlx::{Database, Postgres, QueryBuilder, Sqlite};

/// The one definition of which edges are shown: user tags always, automatic tags at or above the
/// confidence threshold (weaker ones are kept, and shown again if the threshold is lowered), an
/// automatic tag overridden by a row of the file's own (a user tag of that name, or its hiding)
/// never. Every query over edges reads them through this relation (`FROM {relation} e`, columns
/// `file_id, tag_id, kind, extractor, weight`), with the query's own condition on the file or
/// the tag written into each arm of the union ([`EdgeScope`]): neither database pushes a
/// condition through a view of a union by itself, and without it every query read every edge.
/// `min_confidence` is the server's setting, checked to be a number in 0..=1 by
/// [`check_min_confidence`], never a request's input.
#[derive(Debug, Clone)]
pub(crate) struct VisibleEdges {
    /// The automatic arm's test of `bt.weight`.
    weight_test: String,
}

/// The column names a scope's condition is written with, in one arm of [`VisibleEdges`].
pub(crate) struct Arm {
    pub(crate) file: &'static str,
    pub(crate) tag: &'static str,
}

const AUTO_ARM: Arm = Arm {
    file: "ef.id",
    tag: "bt.tag_id",
};
const USER_ARM: Arm = Arm {
    file: "ft.file_id",
    tag: "ft.tag_id",
};

/// The threshold the per-tag counts' `shown` column was counted at, as SQL.
pub(crate) const COUNT_BASIS: &str = "(SELECT min_confidence FROM tag_counts_basis WHERE id = 1)";

impl VisibleEdges {
    /// The edges shown at `min_confidence`.
    pub(crate) fn new(min_confidence: f64) -> Self {
        debug_assert!((0.0..=1.0).contains(&min_confidence));
        VisibleEdges {
            weight_test: format!("bt.weight >= {min_confidence:?}"),
        }
    }

    /// Every edge, whatever its weight (what the per-tag counts count; a user edge weighs 1,
    /// so `weight >= t` tells whether one is shown at threshold `t`).
    pub(crate) fn every() -> Self {
        VisibleEdges {
            weight_test: "bt.weight >= 0".into(),
        }
    }

    fn auto_head(&self) -> String {
        format!(
            "(SELECT ef.id AS file_id, bt.tag_id AS tag_id, CAST('auto' AS TEXT) AS kind, \
             bt.extractor AS extractor, bt.weight AS weight \
             FROM blob_tags bt JOIN files ef ON ef.hash = bt.hash WHERE {} \
             AND NOT EXISTS (SELECT 1 FROM file_tags o WHERE o.file_id = ef.id AND o.tag_id = bt.tag_id) AND ",
            self.weight_test
        )
    }

    const USER_HEAD: &str = " UNION ALL SELECT ft.file_id, ft.tag_id, CAST('user' AS TEXT), \
         CAST(NULL AS TEXT), CAST(1.0 AS DOUBLE PRECISION) FROM file_tags ft WHERE ft.hidden = 0 AND ";

    /// The relation as SQL text, `cond` giving each arm's condition (numbered placeholders may
    /// appear in both).
    pub(crate) fn sql(&self, cond: impl Fn(&Arm) -> String) -> String {
        format!(
            "{}{}{}{})",
            self.auto_head(),
            cond(&AUTO_ARM),
            Self::USER_HEAD,
            cond(&USER_ARM)
        )
    }

    /// Pushes the relation, `cond` pushing each arm's condition (and its bound values, once
    /// per arm).
    pub(crate) fn push<DB: Dialect>(
        &self,
        qb: &mut QueryBuilder<'_, DB>,
        mut cond: impl FnMut(&mut QueryBuilder<'_, DB>, &Arm),
    ) {
        qb.push(self.auto_head());
        cond(qb, &AUTO_ARM);
        qb.push(Self::USER_HEAD);
        cond(qb, &USER_ARM);
        qb.push(")");
    }
}

/// The one rule of who sees a file: the condition that file row `f` (an alias of `files`) is
/// visible to `who`. Every query over files, and through them over edges, tags and counts, is
/// written with it ([`visible_ids`], [`writable`]); a user id comes from the credential's row,
/// never from a request, so it is written into the text as a number.
pub(crate) fn file_visible(who: &Viewer, f: &str) -> String {
    match who {
        Viewer::All => "TRUE".into(),
        Viewer::User(u) => format!(
            "({f}.owner = {u} OR {f}.grp IN (SELECT gm.group_id FROM group_members gm WHERE gm.user_id = {u}))"
        ),
    }
}

/// The condition that the folder path in column `col` is `folder` (a column or bound value) or
/// inside it at any depth.
pub(crate) fn in_folder(col: &str, folder: &str) -> String {
    format!("({col} = {folder} OR substr({col}, 1, length({folder}) + 1) = {folder} || '/')")
}

/// The condition that the folder row aliased `fo` is shown to `who`: every folder to a viewer
/// who sees everything; else a folder it claims (made, or uploaded into), or one holding a
/// file it sees at any depth.
pub(crate) fn folder_shown(who: &Viewer, fo: &str) -> String {
    match who {
        Viewer::All => "TRUE".into(),
        Viewer::User(u) => format!(
            "(EXISTS (SELECT 1 FROM folder_claims c WHERE c.user_id = {u} AND c.path = {fo}.path) \
             OR EXISTS (SELECT 1 FROM files f WHERE {} AND {}))",
            in_folder("f.folder", &format!("{fo}.path")),
            file_visible(who, "f")
        ),
    }
}

/// The condition that the file id in column `col` is of a file visible to `who` (for the arms
/// of [`VisibleEdges`], whose file is an id).
pub(crate) fn visible_ids(who: &Viewer, col: &str) -> String {
    match who {
        Viewer::All => "TRUE".into(),
        Viewer::User(_) => format!(
            "{col} IN (SELECT vf.id FROM files vf WHERE {})",
            file_visible(who, "vf")
        ),
    }
}

/// The condition that `who` may change file row `f`: its owner (a group's members only read).
pub(crate) fn writable(who: &Viewer, f: &str) -> String {
    owned_by(who, &format!("{f}.owner"))
}

/// The condition that the user column `col` is `who`'s (always, for a viewer of everything):
/// who may change a row.
pub(crate) fn owned_by(who: &Viewer, col: &str) -> String {
    match who {
        Viewer::All => "TRUE".into(),
        Viewer::User(u) => format!("{col} = {u}"),
    }
}

/// The per-tag counts as `who` may see them, a relation `(tag_id, files, shown)` for `FROM`:
/// the kept counts ([`COUNT_BASIS`]) for a viewer who sees everything; for another, the edges of
/// the files it sees, counted live (a tag none of them carries is in no row).
pub(crate) fn tag_counts(who: &Viewer, min_confidence: f64) -> String {
    match who {
        Viewer::All => "tag_counts".into(),
        Viewer::User(_) => format!(
            "(SELECT e.tag_id AS tag_id, count(*) AS files, \
             count(*) FILTER (WHERE e.weight >= {min_confidence:?}) AS shown FROM {} e GROUP BY e.tag_id)",
            VisibleEdges::every().sql(|arm| visible_ids(who, arm.file))
        ),
    }
}

/// The threshold's range, checked when an adapter opens.
pub(crate) fn check_min_confidence(min_confidence: f64) -> Result<(), StoreError> {
    if (0.0..=1.0).contains(&min_confidence) {
        Ok(())
    } else {
        Err(StoreError::Config(format!(
            "min_confidence must be between 0 and 1, not {min_confidence}"
        )))
    }
}

/// How a database spells what the query language needs beyond standard SQL. The texts compared
/// are lower case already (`name_lower`, normalised tags), so no case folding is needed here.
pub(crate) trait Dialect: Database {
    /// Starts a write transaction.
    const BEGIN_WRITE: &str;
    /// The database's clock in unix milliseconds: every process sharing a database measures
    /// leases on one clock.
    const NOW_MS: &str;
    /// Appended to the queue's `SELECT ... LIMIT 1`: claimers skip a row another one is taking.
    const SKIP_LOCKED: &str;
    /// Appended to a `SELECT` of rows the transaction is about to change.
    const FOR_UPDATE: &str;
    /// Only one process uses the database (see `MetaStore::recover_jobs`).
    const SINGLE_OWNER: bool;
    fn bind_text(qb: &mut QueryBuilder<'_, Self>, v: String);
    fn bind_int(qb: &mut QueryBuilder<'_, Self>, v: i64);
    /// `col` contains `needle`.
    fn push_contains(qb: &mut QueryBuilder<'_, Self>, col: &str, needle: String);
    /// `col` starts with `prefix`.
    fn push_starts_with(qb: &mut QueryBuilder<'_, Self>, col: &str, prefix: String);
    /// `col` ends with `suffix`.
    fn push_ends_with(qb: &mut QueryBuilder<'_, Self>, col: &str, suffix: String);
    /// The full-text query that matches any of `terms`, in the database's syntax. Each word is
    /// letters and digits only ([`disgrafs_core::fulltext::words`]), so quoting it is enough.
    fn text_query(terms: &[&TextTerm]) -> String;
    /// A relation `(hash, score)` of the text parts matching `query` (from [`Dialect::text_query`],
    /// bound): the content's hash and a score, higher for a better match.
    fn push_text_hits(qb: &mut QueryBuilder<'_, Self>, query: String);
    /// A relation `(hash, score, snippet)` of the parts of the `hashes` that match `query`:
    /// `snippet` is text around the match, [`HIT_START`] and [`HIT_END`] around each matched
    /// word.
    fn push_snippets(qb: &mut QueryBuilder<'_, Self>, query: String, hashes: &[String]);
    /// An aggregate over a relation's rows: one JSON text, an array of `[fields…]` arrays in no
    /// particular order (`[]` for no rows). A listing of 100,000 rows then crosses the driver
    /// once (sqlx-sqlite hands each row over a channel from its worker thread, a wake-up per row).
    fn json_rows(fields: &str) -> String;
}

/// Words in a snippet: enough to show a match in context on one line.
const SNIPPET_WORDS: i64 = 24;

impl Dialect for Sqlite {
    // IMMEDIATE takes the write lock up front, so a transaction that reads first never fails to
    // upgrade; the one writer connection serializes writers, so no row locks are needed.
    const BEGIN_WRITE: &str = "BEGIN IMMEDIATE";
    const NOW_MS: &str = "CAST(unixepoch('subsec') * 1000 AS INTEGER)";
    const SKIP_LOCKED: &str = "";
    const FOR_UPDATE: &str = "";
    const SINGLE_OWNER: bool = true;
    fn bind_text(qb: &mut QueryBuilder<'_, Self>, v: String) {
        qb.push_bind(v);
    }
    fn bind_int(qb: &mut QueryBuilder<'_, Self>, v: i64) {
        qb.push_bind(v);
    }
    fn push_contains(qb: &mut QueryBuilder<'_, Self>, col: &str, needle: String) {
        qb.push(format!("instr({col}, "))
            .push_bind(needle)
            .push(") > 0");
    }
    fn push_starts_with(qb: &mut QueryBuilder<'_, Self>, col: &str, prefix: String) {
        // A range of SQLite's binary collation (UTF-8 bytes sort as code points), so an index
        // on `col` is searched rather than every row's prefix compared.
        qb.push(format!("({col} >= ")).push_bind(prefix.clone());
        if let Some(end) = prefix_end(&prefix) {
            qb.push(format!(" AND {col} < ")).push_bind(end);
        }
        qb.push(")");
    }
    fn push_ends_with(qb: &mut QueryBuilder<'_, Self>, col: &str, suffix: String) {
        // A negative start counts from the end in SQLite.
        qb.push(format!("substr({col}, -"))
            .push_bind(suffix.chars().count() as i64)
            .push(") = ")
            .push_bind(suffix);
    }
    fn text_query(terms: &[&TextTerm]) -> String {
        // FTS5: `"w1 w2"` is a phrase, a `*` after it makes its last word a prefix.
        let phrase = |t: &&TextTerm| {
            format!(
                "\"{}\"{}",
                t.words.join(" "),
                if t.prefix { "*" } else { "" }
            )
        };
        terms.iter().map(phrase).collect::<Vec<_>>().join(" OR ")
    }
    fn push_text_hits(qb: &mut QueryBuilder<'_, Self>, query: String) {
        // bm25 is lower for a better match.
        qb.push(
            "(SELECT t.hash AS hash, m.score AS score FROM \
               (SELECT rowid, -bm25(blob_texts_fts) AS score FROM blob_texts_fts WHERE blob_texts_fts MATCH ",
        )
        .push_bind(query)
        // OFFSET keeps SQLite from flattening this into the caller's query, where bm25 has no
        // full-text context.
        .push(" LIMIT -1 OFFSET 0) m JOIN blob_texts t ON t.id = m.rowid)");
    }
    fn push_snippets(qb: &mut QueryBuilder<'_, Self>, query: String, hashes: &[String]) {
        qb.push("(SELECT t.hash AS hash, -bm25(blob_texts_fts) AS score, snippet(blob_texts_fts, 0, ")
            .push_bind(HIT_START.to_string())
            .push(", ")
            .push_bind(HIT_END.to_string())
            .push(", '…', ")
            .push_bind(SNIPPET_WORDS)
            .push(") AS snippet FROM blob_texts_fts JOIN blob_texts t ON t.id = blob_texts_fts.rowid WHERE blob_texts_fts MATCH ")
            .push_bind(query)
            .push(" AND t.hash IN (");
        push_list(qb, hashes);
        qb.push(")");
    }
    fn json_rows(fields: &str) -> String {
        format!("COALESCE(json_group_array(json_array({fields})), '[]')")
    }
}

impl Dialect for Postgres {
    const BEGIN_WRITE: &str = "BEGIN";
    const NOW_MS: &str = "CAST(extract(epoch FROM clock_timestamp()) * 1000 AS BIGINT)";
    const SKIP_LOCKED: &str = " FOR UPDATE SKIP LOCKED";
    const FOR_UPDATE: &str = " FOR UPDATE";
    const SINGLE_OWNER: bool = false;
    fn bind_text(qb: &mut QueryBuilder<'_, Self>, v: String) {
        qb.push_bind(v);
    }
    fn bind_int(qb: &mut QueryBuilder<'_, Self>, v: i64) {
        qb.push_bind(v);
    }
    fn push_contains(qb: &mut QueryBuilder<'_, Self>, col: &str, needle: String) {
        qb.push(format!("strpos({col}, "))
            .push_bind(needle)
            .push(") > 0");
    }
    fn push_starts_with(qb: &mut QueryBuilder<'_, Self>, col: &str, prefix: String) {
        qb.push(format!("starts_with({col}, "))
            .push_bind(prefix)
            .push(")");
    }
    fn push_ends_with(qb: &mut QueryBuilder<'_, Self>, col: &str, suffix: String) {
        qb.push(format!("right({col}, "))
            .push_bind(suffix.chars().count() as i32)
            .push(") = ")
            .push_bind(suffix);
    }
    fn text_query(terms: &[&TextTerm]) -> String {
        // tsquery: `'w1' <-> 'w2'` is a phrase, `:*` makes a lexeme a prefix.
        let phrase = |t: &&TextTerm| {
            let last = t.words.len().saturating_sub(1);
            let words: Vec<String> = (t.words.iter().enumerate())
                .map(|(i, w)| format!("'{w}'{}", if t.prefix && i == last { ":*" } else { "" }))
                .collect();
            format!("({})", words.join(" <-> "))
        };
        terms.iter().map(phrase).collect::<Vec<_>>().join(" | ")
    }
    fn push_text_hits(qb: &mut QueryBuilder<'_, Self>, query: String) {
        qb.push(
            "(SELECT t.hash AS hash, ts_rank(t.tsv, q.q, 1) AS score FROM blob_texts t, \
               (SELECT to_tsquery('english', ",
        )
        .push_bind(query)
        .push(") AS q) q WHERE t.tsv @@ q.q)");
    }
    fn push_snippets(qb: &mut QueryBuilder<'_, Self>, query: String, hashes: &[String]) {
        qb.push(
            "(SELECT t.hash AS hash, ts_rank(t.tsv, q.q, 1) AS score, \
               ts_headline('english', t.body, q.q, ",
        )
        .push_bind(format!(
            "StartSel=\"{HIT_START}\", StopSel=\"{HIT_END}\", MaxWords={SNIPPET_WORDS}, MinWords={}",
            SNIPPET_WORDS / 2
        ))
        .push(") AS snippet FROM blob_texts t, (SELECT to_tsquery('english', ")
        .push_bind(query)
        .push(") AS q) q WHERE t.tsv @@ q.q AND t.hash IN (");
        push_list(qb, hashes);
        qb.push(")");
    }
    fn json_rows(fields: &str) -> String {
        format!("CAST(COALESCE(json_agg(json_build_array({fields})), '[]') AS TEXT)")
    }
}

/// The least string after every string that starts with `prefix`, in code point order: the
/// prefix with its last character incremented (a last character that cannot be is dropped
/// first). None when every string is below it (an empty prefix, or only `char::MAX`).
fn prefix_end(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let next = (last as u32 + 1..=char::MAX as u32).find_map(char::from_u32);
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// Pushes `v1, v2, ...)` as bound values: the rest of an `IN (` list.
pub(crate) fn push_list<DB: Dialect>(qb: &mut QueryBuilder<'_, DB>, items: &[String]) {
    for (i, v) in items.iter().enumerate() {
        if i > 0 {
            qb.push(", ");
        }
        DB::bind_text(qb, v.clone());
    }
    qb.push(")");
}

/// Pushes the condition `e` over `files f JOIN blobs b`.
pub(crate) fn push_expr<DB: Dialect>(
    qb: &mut QueryBuilder<'_, DB>,
    e: &Expr,
    visible: &VisibleEdges,
) {
    match e {
        Expr::All => {
            qb.push("TRUE");
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

/// Whether a query reads the content's columns (`b.`, a join of `blobs b` on the file's hash).
pub(crate) fn reads_blobs(e: &Expr) -> bool {
    match e {
        Expr::All => false,
        Expr::And(parts) | Expr::Or(parts) => parts.iter().any(reads_blobs),
        Expr::Not(inner) => reads_blobs(inner),
        Expr::Pred(p) => matches!(p, Predicate::Kind(_) | Predicate::Mime { .. }),
    }
}

fn push_pred<DB: Dialect>(qb: &mut QueryBuilder<'_, DB>, p: &Predicate, visible: &VisibleEdges) {
    match p {
        // The tag's edges, found from the tag in each arm (covering indexes from the tag to
        // the files' ids): the files they name are looked up by id rather than every file
        // tested for the tag.
        Predicate::Tag(name) => {
            qb.push("f.id IN (SELECT e.file_id FROM ");
            visible.push(qb, |qb, arm| {
                qb.push(format!("{} = (SELECT id FROM tags WHERE name = ", arm.tag));
                DB::bind_text(qb, name.clone());
                qb.push(")");
            });
            qb.push(" e)");
        }
        Predicate::NameContains(s) => DB::push_contains(qb, "f.name_lower", s.clone()),
        Predicate::Kind(k) => {
            qb.push("b.kind = ");
            DB::bind_text(qb, k.as_str().to_string());
        }
        Predicate::Mime {
            prefix,
            exact: true,
        } => {
            qb.push("b.mime = ");
            DB::bind_text(qb, prefix.clone());
        }
        Predicate::Mime {
            prefix,
            exact: false,
        } => DB::push_starts_with(qb, "b.mime", prefix.clone()),
        Predicate::Ext(ext) => DB::push_ends_with(qb, "f.name_lower", format!(".{ext}")),
        // A whole hash can use the index.
        Predicate::HashPrefix(h) if h.len() == 64 => {
            qb.push("f.hash = ");
            DB::bind_text(qb, h.clone());
        }
        Predicate::HashPrefix(h) => DB::push_starts_with(qb, "f.hash", h.clone()),
        Predicate::Size { min, max } => {
            qb.push("(TRUE");
            if let Some(min) = min {
                qb.push(" AND f.size >= ");
                DB::bind_int(qb, (*min).min(i64::MAX as u64) as i64);
            }
            if let Some(max) = max {
                qb.push(" AND f.size <= ");
                DB::bind_int(qb, (*max).min(i64::MAX as u64) as i64);
            }
            qb.push(")");
        }
        Predicate::Text(t) => {
            qb.push("f.hash IN (SELECT hash FROM ");
            DB::push_text_hits(qb, DB::text_query(&[t]));
            qb.push(" h)");
        }
        Predicate::Time { field, start, end } => {
            let col = match field {
                TimeField::Created => "f.created",
                TimeField::Modified => "f.modified",
            };
            qb.push("(TRUE");
            if let Some(s) = start {
                qb.push(format!(" AND {col} >= "));
                DB::bind_int(qb, *s);
            }
            if let Some(e) = end {
                qb.push(format!(" AND {col} < "));
                DB::bind_int(qb, *e);
            }
            qb.push(")");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::prefix_end;

    #[test]
    fn prefix_end_bounds_every_extension() {
        assert_eq!(prefix_end("ka").as_deref(), Some("kb"));
        assert_eq!(prefix_end("image/").as_deref(), Some("image0"));
        // Surrogates are no characters: the one after U+D7FF is U+E000.
        assert_eq!(prefix_end("a\u{d7ff}").as_deref(), Some("a\u{e000}"));
        assert_eq!(prefix_end("a\u{10ffff}").as_deref(), Some("b"));
        assert_eq!(prefix_end(""), None);
        assert_eq!(prefix_end("\u{10ffff}"), None);
        for p in ["ka", "a\u{10ffff}", "z\u{d7ff}"] {
            let end = prefix_end(p).unwrap();
            for tail in ["", "a", "\u{10ffff}\u{10ffff}", "\u{e000}"] {
                let s = format!("{p}{tail}");
                assert!(s.as_str() >= p && s < end, "{s:?} in [{p:?}, {end:?})");
            }
            assert!(end.as_str() > p && !end.starts_with(p));
        }
    }
}
