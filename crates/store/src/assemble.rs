//! What every adapter does with rows once SQL has produced them, written once above the
//! adapters: rows into records, the order of a file's tags, the ranking of related files and the
//! assembly of a subgraph. An adapter only fetches rows of these shapes (`sqlx::FromRow` is
//! derived generically, so one struct decodes a SQLite row and a PostgreSQL row alike).

use crate::StoreError;
use crate::meta::{CredentialKind, CredentialRow, FileEntry, ShareRow, ShareTarget};
use disgrafs_core::auth::Scope;
use disgrafs_core::fulltext::snippet_parts;
use disgrafs_core::rank::{SharedTag, overlap_score};
use disgrafs_core::{
    FileKind, FileRecord, Graph, GraphEdge, GraphNode, Related, TagKind, TagRef, TaggingState,
    file_node_id, tag_node_id,
};
use std::collections::{HashMap, HashSet};
use time::OffsetDateTime;

/// How long a failed job waits before its next try, per attempt already made.
pub(crate) const RETRY_BACKOFF_MS: i64 = 5_000;
/// Bounds the rows `related` reads: it reads the file's tags rarest first while the files of
/// the tags taken so far are fewer than this, and this many rows at most, so a tag carried by
/// every file does not make it scan the store.
pub const RELATED_SCAN_LIMIT: i64 = 50_000;
/// Co-occurrence pairs only the most frequent this many tags (so its cost is bounded by the
/// edges times this, not by the square of a file's tags).
pub(crate) const CO_TAGS: i64 = 512;
/// Bound values in one `IN (...)` list: a statement per few hundred keeps each one cheap, and
/// well under either database's limit of bound parameters.
pub(crate) const IN_LIST_CHUNK: usize = 500;
/// The most text in one `blob_texts` row: PostgreSQL refuses a tsvector over 1 MiB, which a
/// part this size stays well below whatever its words; a phrase across two parts is not found.
pub(crate) const TEXT_PART_BYTES: usize = 128 << 10;
/// The error a job that killed its worker (lease expired on its last attempt) ends with.
pub(crate) const DIED_ERROR: &str = "the worker died while tagging it";

pub(crate) fn now_ms() -> i64 {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// `text` in parts of at most [`TEXT_PART_BYTES`], cut at white space where there is some.
pub(crate) fn text_parts(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        if rest.len() <= TEXT_PART_BYTES {
            parts.push(rest);
            break;
        }
        let mut cut = TEXT_PART_BYTES;
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        if let Some(space) = rest[..cut].rfind(char::is_whitespace)
            && space > 0
        {
            cut = space;
        }
        parts.push(&rest[..cut]);
        rest = rest[cut..].trim_start();
    }
    parts
}

/// Gives each record the snippet of its content's best-matching part; `rows` are `(hash,
/// marked snippet)`, best first.
pub(crate) fn attach_snippets(records: &mut [FileRecord], rows: Vec<(String, String)>) {
    let mut best: HashMap<String, String> = HashMap::new();
    for (hash, snippet) in rows {
        best.entry(hash).or_insert(snippet);
    }
    for r in records {
        if let Some(s) = best.get(&r.hash) {
            r.snippet = snippet_parts(s);
        }
    }
}

fn ms_to_time(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// The columns a [`RecordRow`] reads; `{RECORD_COLUMNS} WHERE ...` selects records.
pub(crate) const RECORD_COLUMNS: &str = "f.id, f.name, f.folder, f.size, f.hash, b.mime, b.kind, f.created, f.modified, b.tagging, b.fields FROM files f JOIN blobs b ON b.hash = f.hash";

#[derive(sqlx::FromRow)]
pub(crate) struct RecordRow {
    id: String,
    name: String,
    folder: String,
    size: i64,
    hash: String,
    mime: String,
    kind: String,
    created: i64,
    modified: i64,
    tagging: String,
    fields: String,
}

impl From<RecordRow> for FileRecord {
    fn from(r: RecordRow) -> Self {
        FileRecord {
            id: r.id,
            name: r.name,
            folder: r.folder,
            size: r.size as u64,
            hash: r.hash,
            mime: r.mime,
            kind: FileKind::parse(&r.kind).unwrap_or_default(),
            created: ms_to_time(r.created),
            modified: ms_to_time(r.modified),
            // Filled by [`attach_tags`].
            tags: Vec::new(),
            tagging: TaggingState::parse(&r.tagging).unwrap_or(TaggingState::Pending),
            fields: serde_json::from_str(&r.fields).unwrap_or_default(),
            // Filled by `list_files` for a query with text terms.
            snippet: Vec::new(),
        }
    }
}

/// The columns an [`EntryRow`] reads, in its fields' order, of a relation of `files` rows.
pub(crate) const ENTRY_COLUMNS: [&str; 7] = [
    "id", "name", "folder", "size", "hash", "created", "modified",
];

/// An entry as a row of [`ENTRY_COLUMNS`], or as the JSON array of them
/// ([`crate::sql::Dialect::json_rows`]).
#[derive(serde::Deserialize)]
pub(crate) struct EntryRow {
    id: String,
    name: String,
    folder: String,
    size: i64,
    hash: String,
    created: i64,
    modified: i64,
}

impl From<EntryRow> for FileEntry {
    fn from(r: EntryRow) -> Self {
        FileEntry {
            id: r.id,
            name: r.name,
            folder: r.folder,
            size: r.size as u64,
            hash: r.hash,
            created: ms_to_time(r.created),
            modified: ms_to_time(r.modified),
        }
    }
}

/// The entries of [`crate::sql::Dialect::json_rows`] over [`ENTRY_COLUMNS`], in the order of
/// the query that chose them (by date, then id; newest first or oldest first). The aggregate
/// keeps no order: sorting 100,000 entries here costs less than a second sort in the database.
pub(crate) fn entries_from_json(
    json: &str,
    newest_first: bool,
) -> Result<Vec<FileEntry>, StoreError> {
    let mut rows: Vec<EntryRow> =
        serde_json::from_str(json).map_err(|e| StoreError::Db(format!("a listing's rows: {e}")))?;
    rows.sort_unstable_by(|a, b| {
        let order = (a.created, &a.id).cmp(&(b.created, &b.id));
        if newest_first { order.reverse() } else { order }
    });
    Ok(rows.into_iter().map(FileEntry::from).collect())
}

/// The columns an [`EdgeRow`] reads, over `{visible} e JOIN tags t`.
pub(crate) const EDGE_COLUMNS: &str = "e.file_id, t.name, e.kind, e.extractor, e.weight";

/// One visible edge of a file.
#[derive(sqlx::FromRow)]
pub(crate) struct EdgeRow {
    file_id: String,
    name: String,
    kind: String,
    extractor: Option<String>,
    weight: f64,
}

/// The edges of each file, in the order a record shows them: user tags first, then by weight.
pub(crate) fn tags_by_file(rows: Vec<EdgeRow>) -> HashMap<String, Vec<TagRef>> {
    let mut out: HashMap<String, Vec<TagRef>> = HashMap::new();
    for r in rows {
        out.entry(r.file_id).or_default().push(TagRef {
            name: r.name,
            kind: TagKind::parse(&r.kind).unwrap_or(TagKind::Auto),
            extractor: r.extractor,
            weight: r.weight,
        });
    }
    for tags in out.values_mut() {
        tags.sort_by(|a, b| {
            (b.kind == TagKind::User)
                .cmp(&(a.kind == TagKind::User))
                .then(b.weight.total_cmp(&a.weight))
                .then(a.name.cmp(&b.name))
        });
    }
    out
}

/// Gives each record its tags.
pub(crate) fn attach_tags(records: &mut [FileRecord], mut tags: HashMap<String, Vec<TagRef>>) {
    for r in records {
        r.tags = tags.remove(&r.id).unwrap_or_default();
    }
}

/// One tag a file shares with another (`related`'s query).
#[derive(sqlx::FromRow)]
pub(crate) struct SharedRow {
    file_id: String,
    name: String,
    /// The tag's weight on the file asked about, and on the other one.
    wa: f64,
    wb: f64,
    /// Files carrying the tag.
    n: i64,
}

/// The neighbours by score (best first, ties by id), at most `limit`, with the tags shared.
pub(crate) fn rank_related(
    total_files: u64,
    rows: Vec<SharedRow>,
    limit: u32,
) -> Vec<(String, f64, Vec<String>)> {
    let mut by_file: HashMap<String, (Vec<SharedTag>, Vec<String>)> = HashMap::new();
    for r in rows {
        let e = by_file.entry(r.file_id).or_default();
        e.0.push(SharedTag {
            weight_a: r.wa,
            weight_b: r.wb,
            tag_files: r.n as u64,
        });
        e.1.push(r.name);
    }
    let mut scored: Vec<(String, f64, Vec<String>)> = by_file
        .into_iter()
        .map(|(f, (shared, mut names))| {
            names.sort();
            (f, overlap_score(total_files, shared), names)
        })
        .collect();
    scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    scored.truncate(limit as usize);
    scored
}

/// Joins ranked neighbours with their records (a record deleted meanwhile drops out).
pub(crate) fn related_with_records(
    scored: Vec<(String, f64, Vec<String>)>,
    records: Vec<FileRecord>,
) -> Vec<Related> {
    let mut records: HashMap<String, FileRecord> =
        records.into_iter().map(|r| (r.id.clone(), r)).collect();
    scored
        .into_iter()
        .filter_map(|(f, score, shared_tags)| {
            records.remove(&f).map(|file| Related {
                file,
                score,
                shared_tags,
            })
        })
        .collect()
}

/// The columns a [`GraphFileRow`] reads.
pub(crate) const GRAPH_FILE_COLUMNS: &str =
    "f.id, f.name, f.size, b.mime, b.kind FROM files f JOIN blobs b ON b.hash = f.hash";

/// A file node's row, newest first (the graph's query asks for `limit + 1` of them).
#[derive(sqlx::FromRow)]
pub(crate) struct GraphFileRow {
    pub(crate) id: String,
    name: String,
    size: i64,
    mime: String,
    kind: String,
}

/// Assembles the subgraph of `files` (up to `limit + 1`, newest first) and their edges, at most
/// `limit` nodes. A file joins with all its tags or not at all, newest first, until the limit: a
/// file drawn without its edges would look unconnected. Tag degrees are left at 0 for
/// [`set_degrees`]; the tag names to look them up for are [`tag_names`].
pub(crate) fn assemble_graph(
    files: Vec<GraphFileRow>,
    mut edges_by_file: HashMap<String, Vec<TagRef>>,
    limit: usize,
) -> Graph {
    let mut truncated = files.len() > limit;
    let mut g = Graph::default();
    let mut tag_nodes: HashMap<String, usize> = HashMap::new();
    for r in files.into_iter().take(limit) {
        let edges = edges_by_file.remove(&r.id).unwrap_or_default();
        let new_tags: HashSet<&str> = edges
            .iter()
            .map(|e| e.name.as_str())
            .filter(|t| !tag_nodes.contains_key(*t))
            .collect();
        if g.nodes.len() + 1 + new_tags.len() > limit {
            truncated = true;
            break;
        }
        let id = r.id;
        g.nodes.push(GraphNode::File {
            id: file_node_id(&id),
            name: r.name,
            kind: FileKind::parse(&r.kind).unwrap_or_default(),
            mime: r.mime,
            size: r.size as u64,
        });
        for TagRef {
            name: tag,
            kind,
            weight,
            ..
        } in edges
        {
            match tag_nodes.get(&tag) {
                Some(&i) => {
                    // A tag any person used is a user tag in the picture.
                    if let GraphNode::Tag { kind: k, .. } = &mut g.nodes[i]
                        && kind == TagKind::User
                    {
                        *k = TagKind::User;
                    }
                }
                None => {
                    tag_nodes.insert(tag.clone(), g.nodes.len());
                    g.nodes.push(GraphNode::Tag {
                        id: tag_node_id(&tag),
                        name: tag.clone(),
                        kind,
                        degree: 0,
                    });
                }
            }
            g.edges.push(GraphEdge {
                source: file_node_id(&id),
                target: tag_node_id(&tag),
                kind,
                weight,
            });
        }
    }
    g.truncated = truncated;
    g
}

/// The tag nodes' names, whose degrees [`set_degrees`] needs.
pub(crate) fn tag_names(g: &Graph) -> Vec<String> {
    g.nodes
        .iter()
        .filter_map(|n| match n {
            GraphNode::Tag { name, .. } => Some(name.clone()),
            GraphNode::File { .. } => None,
        })
        .collect()
}

/// A tag's degree over the whole store (`graph`'s second query).
#[derive(sqlx::FromRow)]
pub(crate) struct DegreeRow {
    name: String,
    n: i64,
}

/// Degrees over the whole store, so node size means the same in every view.
pub(crate) fn set_degrees(g: &mut Graph, rows: Vec<DegreeRow>) {
    let degree: HashMap<String, u64> = rows.into_iter().map(|r| (r.name, r.n as u64)).collect();
    for n in &mut g.nodes {
        if let GraphNode::Tag {
            name, degree: d, ..
        } = n
        {
            *d = degree.get(name.as_str()).copied().unwrap_or(0);
        }
    }
}

/// A row of `tags`: how many files carry a tag, and whether any person gave it.
#[derive(sqlx::FromRow)]
pub(crate) struct TagCountRow {
    name: String,
    user: bool,
    n: i64,
}

impl From<TagCountRow> for disgrafs_core::TagCount {
    fn from(r: TagCountRow) -> Self {
        disgrafs_core::TagCount {
            name: r.name,
            kind: if r.user { TagKind::User } else { TagKind::Auto },
            files: r.n as u64,
        }
    }
}

/// A pair of tags on the same files (`cooccurrence`).
#[derive(sqlx::FromRow)]
pub(crate) struct PairRow {
    a: String,
    b: String,
    n: i64,
}

impl From<PairRow> for disgrafs_core::CoOccurrence {
    fn from(r: PairRow) -> Self {
        // Pairs are ordered by tag id in SQL; the API orders them by name.
        let (a, b) = if r.a <= r.b { (r.a, r.b) } else { (r.b, r.a) };
        disgrafs_core::CoOccurrence {
            a,
            b,
            files: r.n as u64,
        }
    }
}

/// Decodes a content's stored extractor versions (JSON), for [`crate::Retag::is_due`].
pub(crate) fn stored_versions(json: &str) -> std::collections::BTreeMap<String, u32> {
    serde_json::from_str(json).unwrap_or_default()
}

/// What `complete_job` stores as text: the fields and versions of a [`crate::TagResult`].
pub(crate) fn result_json(
    result: &crate::TagResult,
) -> Result<(String, String), crate::StoreError> {
    let enc = |e: serde_json::Error| crate::StoreError::Db(e.to_string());
    Ok((
        serde_json::to_string(&result.fields).map_err(enc)?,
        serde_json::to_string(&result.versions).map_err(enc)?,
    ))
}

/// A stored scope or role back into a [`Scope`] (the schema's CHECK allows only these).
pub(crate) fn scope_of(s: &str) -> Result<Scope, StoreError> {
    s.parse()
        .map_err(|e: disgrafs_core::auth::BadScope| StoreError::Db(e.to_string()))
}

/// A credential as SQL gives it: id, user name, kind, scope, expiry.
pub(crate) type CredentialTuple = (i64, i64, String, String, String, Option<i64>);

pub(crate) fn credential_row(
    (id, user_id, user, kind, scope, expires): CredentialTuple,
) -> Result<CredentialRow, StoreError> {
    Ok(CredentialRow {
        id,
        user_id,
        user,
        kind: CredentialKind::parse(&kind)
            .ok_or_else(|| StoreError::Db(format!("credential kind {kind:?}")))?,
        scope: scope_of(&scope)?,
        expires,
    })
}

/// The columns a [`ShareTuple`] reads, over `shares s JOIN users u ON u.id = s.user_id`.
pub(crate) const SHARE_COLUMNS: &str =
    "s.id, s.user_id, u.name, u.role, s.file_id, s.query, s.password, s.created, s.expires";

pub(crate) type ShareTuple = (
    i64,
    i64,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    i64,
    Option<i64>,
);

pub(crate) fn share_row(
    (id, user_id, user, role, file, query, password, created, expires): ShareTuple,
) -> Result<ShareRow, StoreError> {
    let target = match (file, query) {
        (Some(f), None) => ShareTarget::File(f),
        (None, Some(q)) => ShareTarget::Query(q),
        _ => return Err(StoreError::Db(format!("share {id} has no single target"))),
    };
    Ok(ShareRow {
        id,
        user_id,
        user,
        role: scope_of(&role)?,
        target,
        password,
        created,
        expires,
    })
}
