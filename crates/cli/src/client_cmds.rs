//! The client commands: thin glue between clap, `disgrafs_client` and the terminal.

use crate::ClientOpts;
use crate::output::{out, outln, term_safe};
use anyhow::{Context, bail};
use disgrafs_client::{Client, ClientError, Progress};
use disgrafs_core::query::human_size as human;
use disgrafs_core::{FileRecord, Graph, GraphNode, SnippetPart};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn client(opts: &ClientOpts) -> anyhow::Result<Client> {
    Ok(Client::new(
        &opts.server,
        crate::login::token(opts).as_deref(),
    )?)
}

fn print_json(v: &impl serde::Serialize) -> anyhow::Result<()> {
    outln!("{}", serde_json::to_string_pretty(v)?)?;
    Ok(())
}

/// Points a query error at its position, on one line.
fn query_error(q: &str, e: ClientError) -> anyhow::Error {
    if let ClientError::Api {
        position: Some(p),
        message,
        ..
    } = &e
    {
        let (before, after): (String, String) =
            (q.chars().take(*p).collect(), q.chars().skip(*p).collect());
        return anyhow::anyhow!("bad {message}: {before}<here>{after}");
    }
    e.into()
}

fn bar_style() -> ProgressStyle {
    ProgressStyle::with_template(
        "{msg:30!} {bar:30.cyan/blue} {bytes:>10}/{total_bytes:<10} {bytes_per_sec:>12} {eta:>4}",
    )
    .expect("valid template")
    .progress_chars("=> ")
}

/// Where interrupted uploads are remembered, so that `put` run again resumes them.
fn resume_file() -> PathBuf {
    let base = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("disgrafs").join("uploads.json")
}

struct ResumeBook {
    path: PathBuf,
    map: BTreeMap<String, String>,
}

impl ResumeBook {
    fn load() -> Self {
        let path = resume_file();
        let map = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        ResumeBook { path, map }
    }
    fn key(server: &str, file: &Path) -> Option<String> {
        let meta = std::fs::metadata(file).ok()?;
        let mtime = meta
            .modified()
            .ok()?
            .duration_since(std::time::UNIX_EPOCH)
            .ok()?
            .as_nanos();
        let abs = std::fs::canonicalize(file).ok()?;
        Some(format!("{server}|{}|{}|{mtime}", abs.display(), meta.len()))
    }
    fn set(&mut self, key: &str, url: Option<&str>) {
        match url {
            Some(u) => self.map.insert(key.to_owned(), u.to_owned()),
            None => self.map.remove(key),
        };
        std::fs::create_dir_all(self.path.parent().unwrap_or(Path::new("."))).ok();
        let tmp = self.path.with_extension("tmp");
        if std::fs::write(&tmp, serde_json::to_vec(&self.map).unwrap_or_default()).is_ok() {
            std::fs::rename(tmp, &self.path).ok();
        }
    }
}

/// Expands folders into their files (recursively, sorted), each with the name to store it under:
/// a folder's files keep their path relative to the folder's parent (`put docs` stores
/// `docs/api/README.md` in folder `docs/api`).
fn expand(paths: &[PathBuf]) -> anyhow::Result<Vec<(PathBuf, String)>> {
    let mut out = Vec::new();
    for p in paths {
        let meta = std::fs::metadata(p).with_context(|| format!("cannot read {}", p.display()))?;
        if meta.is_dir() {
            let abs = std::fs::canonicalize(p)?;
            let base = abs.parent().unwrap_or(&abs).to_path_buf();
            let mut stack = vec![abs.clone()];
            while let Some(dir) = stack.pop() {
                let mut entries: Vec<_> = std::fs::read_dir(&dir)
                    .with_context(|| format!("cannot read {}", dir.display()))?
                    .collect::<Result<_, _>>()?;
                entries.sort_by_key(|e| e.file_name());
                for e in entries {
                    let ft = e.file_type()?;
                    if ft.is_dir() {
                        stack.push(e.path());
                    } else if ft.is_file() {
                        let rel = e.path();
                        let rel = rel.strip_prefix(&base).unwrap_or(&rel);
                        let rel: Vec<String> = rel
                            .components()
                            .map(|c| c.as_os_str().to_string_lossy().into_owned())
                            .collect();
                        out.push((e.path(), rel.join("/")));
                    }
                }
            }
        } else {
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .with_context(|| format!("{} has no file name", p.display()))?;
            out.push((p.clone(), name));
        }
    }
    Ok(out)
}

pub async fn put(opts: &ClientOpts, paths: &[PathBuf]) -> anyhow::Result<()> {
    let c = client(opts)?;
    let files = expand(paths)?;
    let mut book = ResumeBook::load();
    let multi = MultiProgress::new();
    if opts.json {
        multi.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let total: u64 = files
        .iter()
        .filter_map(|(p, _)| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum();
    let overall = (files.len() > 1).then(|| {
        let b = multi.add(ProgressBar::new(total).with_style(bar_style()));
        b.set_message(format!("{} files", files.len()));
        b
    });
    let mut done_bytes = 0u64;
    let mut records = Vec::new();
    let mut failures = 0;
    for (path, name) in &files {
        let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        let bar = multi.add(ProgressBar::new(size).with_style(bar_style()));
        bar.set_message(name.clone());
        let progress: Progress = {
            let (bar, overall, base) = (bar.clone(), overall.clone(), done_bytes);
            Arc::new(move |n| {
                bar.set_position(n);
                if let Some(o) = &overall {
                    o.set_position(base + n);
                }
            })
        };
        let key = ResumeBook::key(c.base(), path);
        let resume = key.as_ref().and_then(|k| book.map.get(k).cloned());
        let mut created = None;
        let res = c
            .upload(
                path,
                name,
                resume,
                |u| created = Some(u.to_owned()),
                Some(progress),
            )
            .await;
        if let (Some(k), Some(u)) = (&key, &created) {
            book.set(k, Some(u));
        }
        done_bytes += size;
        match res {
            Ok(rec) => {
                if let Some(k) = &key {
                    book.set(k, None);
                }
                bar.finish_and_clear();
                if !opts.json {
                    multi.suspend(|| outln!("{}  {}  {}", rec.id, human(rec.size), rec.name))?;
                }
                records.push(rec);
            }
            Err(e) => {
                bar.abandon();
                failures += 1;
                multi.suspend(|| eprintln!("disgrafs: {}: {e}", path.display()));
            }
        }
    }
    if let Some(o) = overall {
        o.finish_and_clear();
    }
    if opts.json {
        print_json(&records)?;
    }
    if failures > 0 {
        bail!(
            "{failures} of {} uploads failed (run the same command again to resume them)",
            files.len()
        );
    }
    Ok(())
}

pub async fn get(opts: &ClientOpts, id: &str, output: Option<PathBuf>) -> anyhow::Result<()> {
    let c = client(opts)?;
    let rec = c.record(id).await?;
    let dest = match output {
        Some(o) => o,
        None => {
            // The name comes from the server: never let it choose a path, or replace a file.
            disgrafs_core::FileName::new(rec.name.as_str()).map_err(|e| {
                anyhow::anyhow!(
                    "the server sent an unusable name {:?}: {e}; use -o PATH",
                    rec.name
                )
            })?;
            let p = PathBuf::from(&rec.name);
            if p.exists() {
                bail!(
                    "{} exists; remove it or choose another path with -o",
                    p.display()
                );
            }
            p
        }
    };
    let bar = ProgressBar::new(rec.size).with_style(bar_style());
    if opts.json {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    bar.set_message(rec.name.clone());
    let b = bar.clone();
    let rec = c
        .download(id, &dest, Some(Arc::new(move |n| b.set_position(n))))
        .await?;
    bar.finish_and_clear();
    if opts.json {
        print_json(&serde_json::json!({ "file": rec, "path": dest }))
    } else {
        outln!("{}  {}  -> {}", rec.id, human(rec.size), dest.display())?;
        Ok(())
    }
}

fn tag_list(r: &FileRecord) -> String {
    r.tags
        .iter()
        .map(|t| {
            if t.kind == disgrafs_core::TagKind::User {
                format!("#{}", term_safe(&t.name))
            } else {
                term_safe(&t.name).into_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A snippet on one line, matched words in brackets: `…the [borrow] checker…`.
fn snippet_line(parts: &[SnippetPart]) -> String {
    parts
        .iter()
        .map(|p| {
            let text = term_safe(&p.text).replace(['\n', '\r', '\t'], " ");
            if p.hit { format!("[{text}]") } else { text }
        })
        .collect()
}

pub async fn ls(opts: &ClientOpts, q: &str, limit: u32, offset: u64) -> anyhow::Result<()> {
    let c = client(opts)?;
    let list = c
        .list(q, limit, offset)
        .await
        .map_err(|e| query_error(q, e))?;
    if opts.json {
        return print_json(&serde_json::json!({ "files": list.files, "total": list.total }));
    }
    if list.files.is_empty() {
        outln!("no files match")?;
        return Ok(());
    }
    let w = list
        .files
        .iter()
        .map(|f| term_safe(&f.name).chars().count())
        .max()
        .unwrap_or(4)
        .clamp(4, 40);
    outln!(
        "{:<36}  {:<w$}  {:>10}  {:<24}  TAGS (#user)",
        "ID",
        "NAME",
        "SIZE",
        "TYPE"
    )?;
    for f in &list.files {
        let name = term_safe(&f.name);
        let name: String = if name.chars().count() > w {
            name.chars().take(w - 1).chain(['…']).collect()
        } else {
            name.into_owned()
        };
        outln!(
            "{:<36}  {:<w$}  {:>10}  {:<24}  {}",
            term_safe(&f.id),
            name,
            human(f.size),
            term_safe(&f.mime),
            tag_list(f)
        )?;
        if !f.snippet.is_empty() {
            outln!("    {}", snippet_line(&f.snippet))?;
        }
    }
    if list.total > list.files.len() as u64 + offset {
        outln!(
            "({} of {} shown; --offset and --limit page through the rest)",
            list.files.len(),
            list.total
        )?;
    }
    Ok(())
}

pub async fn info(opts: &ClientOpts, id: &str) -> anyhow::Result<()> {
    let c = client(opts)?;
    let rec = c.record(id).await?;
    let related = c.related(id, 10).await?;
    if opts.json {
        return print_json(&serde_json::json!({ "file": rec, "related": related }));
    }
    outln!("id        {}", term_safe(&rec.id))?;
    outln!("name      {}", term_safe(&rec.name))?;
    outln!("size      {} ({} bytes)", human(rec.size), rec.size)?;
    outln!("type      {} ({})", term_safe(&rec.mime), rec.kind.as_str())?;
    outln!("blake3    {}", term_safe(&rec.hash))?;
    outln!("created   {}", rec.created)?;
    outln!("modified  {}", rec.modified)?;
    outln!("tagging   {}", rec.tagging.as_str())?;
    outln!("tags      {}", tag_list(&rec))?;
    for r in related {
        outln!(
            "related   {:.2}  {}  {}  ({})",
            r.score,
            term_safe(&r.file.id),
            term_safe(&r.file.name),
            term_safe(&r.shared_tags.join(", "))
        )?;
    }
    Ok(())
}

/// What `disgrafs tag` does to the named tags.
#[derive(Debug, Clone, Copy)]
pub enum TagEdit {
    Add,
    /// Removes user tags; hides automatic ones on this file.
    Remove,
}

pub async fn tag(
    opts: &ClientOpts,
    id: &str,
    tags: &[String],
    edit: TagEdit,
) -> anyhow::Result<()> {
    let c = client(opts)?;
    let rec = match edit {
        TagEdit::Add => c.add_tags(id, tags).await?,
        TagEdit::Remove => c.remove_tags(id, tags).await?,
    };
    if opts.json {
        print_json(&rec)
    } else {
        outln!("{}  {}", rec.id, tag_list(&rec))?;
        Ok(())
    }
}

pub async fn rm(opts: &ClientOpts, ids: &[String]) -> anyhow::Result<()> {
    let c = client(opts)?;
    for id in ids {
        c.delete(id)
            .await
            .with_context(|| format!("cannot delete {id}"))?;
        if !opts.json {
            outln!("deleted {id}")?;
        }
    }
    if opts.json {
        print_json(&serde_json::json!({ "deleted": ids }))?;
    }
    Ok(())
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum GraphFormat {
    Json,
    Dot,
}

fn dot_escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

pub fn to_dot(g: &Graph) -> String {
    let mut out = String::from("graph disgrafs {\n  node [fontname=\"sans-serif\"];\n");
    for n in &g.nodes {
        match n {
            GraphNode::File { id, name, .. } => out.push_str(&format!(
                "  \"{}\" [label=\"{}\", shape=box];\n",
                dot_escape(id),
                dot_escape(name)
            )),
            GraphNode::Tag { id, name, kind, .. } => out.push_str(&format!(
                "  \"{}\" [label=\"{}\", shape=ellipse, style={}];\n",
                dot_escape(id),
                dot_escape(name),
                if *kind == disgrafs_core::TagKind::User {
                    "bold"
                } else {
                    "solid"
                }
            )),
        }
    }
    for e in &g.edges {
        out.push_str(&format!(
            "  \"{}\" -- \"{}\" [weight={:.3}];\n",
            dot_escape(&e.source),
            dot_escape(&e.target),
            e.weight
        ));
    }
    out.push_str("}\n");
    out
}

pub async fn graph(
    opts: &ClientOpts,
    q: &str,
    format: GraphFormat,
    limit: u32,
) -> anyhow::Result<()> {
    let c = client(opts)?;
    let g = c.graph(q, limit).await.map_err(|e| query_error(q, e))?;
    match format {
        GraphFormat::Json => print_json(&g),
        GraphFormat::Dot => {
            out!("{}", to_dot(&g))?;
            Ok(())
        }
    }
}

pub async fn retag(opts: &ClientOpts, all: bool) -> anyhow::Result<()> {
    let n = client(opts)?.retag(all).await?;
    if opts.json {
        print_json(&serde_json::json!({ "queued": n }))
    } else {
        outln!("queued {n} contents for tagging")?;
        Ok(())
    }
}

#[derive(clap::Subcommand)]
pub enum ShareAction {
    /// Make a link to one of your files (by id), or with --query to the files matching a query
    /// as you see them (the link follows the query as files come and go). Prints the link.
    Make {
        /// The file's id.
        #[arg(required_unless_present = "query", conflicts_with = "query")]
        id: Option<String>,
        /// Share the files matching this query instead.
        #[arg(long)]
        query: Option<String>,
        /// How long the link works: 30m, 12h, 7d (at most 366d) [default: until revoked].
        #[arg(long, value_parser = crate::admin::parse_duration)]
        expires: Option<std::time::Duration>,
        /// Ask visitors for a password, read from standard input (one line).
        #[arg(long)]
        password_stdin: bool,
    },
    /// List your live links (every link, for an admin).
    Ls,
    /// Revoke a link: it stops working at once.
    Revoke { id: i64 },
}

fn share_line(base: &str, l: &disgrafs_core::api::ShareLink) -> String {
    let what = match (&l.file, &l.query) {
        (Some(f), _) => format!("file {f}"),
        (_, Some(q)) => format!("query {q}"),
        _ => String::new(),
    };
    let expires = match l.expires {
        Some(ms) => time::OffsetDateTime::from_unix_timestamp(ms / 1000)
            .ok()
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
            .map_or_else(|| format!("expires at {ms} ms"), |t| format!("expires {t}")),
        None => "no expiry".into(),
    };
    let password = if l.password { ", password" } else { "" };
    let url = l
        .url
        .as_deref()
        .map(|u| format!("  {}{u}", base.trim_end_matches('/')))
        .unwrap_or_default();
    term_safe(&format!(
        "{}  {what}  ({expires}{password}, by {}){url}",
        l.id, l.user
    ))
    .into_owned()
}

pub async fn share(opts: &ClientOpts, action: ShareAction) -> anyhow::Result<()> {
    let c = client(opts)?;
    match action {
        ShareAction::Make {
            id,
            query,
            expires,
            password_stdin,
        } => {
            let password = password_stdin
                .then(|| crate::admin::stdin_line("password"))
                .transpose()?;
            let body = disgrafs_core::api::NewShareLink {
                file: id,
                query,
                expires_in: expires.map(|d| d.as_secs()),
                password,
            };
            let link = c.make_share(&body).await?;
            if opts.json {
                print_json(&link)
            } else {
                outln!("{}", share_line(c.base(), &link))?;
                Ok(())
            }
        }
        ShareAction::Ls => {
            let links = c.shares().await?;
            if opts.json {
                return print_json(&links);
            }
            for l in &links {
                outln!("{}", share_line(c.base(), l))?;
            }
            Ok(())
        }
        ShareAction::Revoke { id } => {
            c.revoke_share(id).await?;
            if opts.json {
                print_json(&serde_json::json!({ "revoked": id }))
            } else {
                outln!("revoked share link {id}")?;
                Ok(())
            }
        }
    }
}
