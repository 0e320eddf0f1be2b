//! Builds the web page from `web/` (npm ci + vite) into `OUT_DIR/dist` and writes
//! `OUT_DIR/assets.rs`, the table of embedded files that `src/lib.rs` serves.
//!
//! Why build.rs and not a separate step: `cargo run -p disgrafs-cli -- serve` on a fresh checkout
//! must give a working page with no other command. Why a fallback instead of a failed build: a
//! machine without Node.js (a Rust-only CI, a packager) must still build the binary; it gets a page
//! that says what to install, never a blank one.
//!
//! `npm ci` runs only when `node_modules` is missing or `package-lock.json` changed since the last
//! install (a stamp with the lockfile's hash lives in `node_modules`). Set `DISGRAFS_WEB_SKIP=1` to
//! embed the fallback page without running npm at all.

use std::env;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const STAMP: &str = ".disgrafs-lock-stamp";

fn main() {
    let manifest =
        PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let web = manifest.join("../../web");
    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let dist = out.join("dist");

    for path in [
        "src",
        "index.html",
        "public",
        "package.json",
        "package-lock.json",
        "vite.config.ts",
        "tsconfig.json",
    ] {
        println!("cargo:rerun-if-changed={}", web.join(path).display());
    }
    println!("cargo:rerun-if-env-changed=DISGRAFS_WEB_SKIP");

    let built = match build_page(&web, &dist) {
        Ok(()) => true,
        Err(reason) => {
            println!(
                "cargo:warning=disgrafs-web: the web page was not built ({reason}); embedding a fallback page"
            );
            write_fallback(&dist, &reason);
            false
        }
    };
    write_table(&dist, &out.join("assets.rs"), built);
}

/// Runs `npm ci` when needed, then vite; any failure is returned as a one-line reason.
fn build_page(web: &Path, dist: &Path) -> Result<(), String> {
    if env::var_os("DISGRAFS_WEB_SKIP").is_some_and(|v| v != "0" && !v.is_empty()) {
        return Err("DISGRAFS_WEB_SKIP is set".into());
    }
    let lock = fs::read(web.join("package-lock.json"))
        .map_err(|e| format!("web/package-lock.json: {e}"))?;
    if !runs("node", &["--version"]) || !runs("npm", &["--version"]) {
        return Err("Node.js and npm were not found on PATH".into());
    }
    let stamp_path = web.join("node_modules").join(STAMP);
    let want_stamp = format!("{:016x}", fnv1a(&lock));
    if fs::read_to_string(&stamp_path).ok().as_deref() != Some(want_stamp.as_str()) {
        run(
            Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
                .current_dir(web),
            "npm ci",
        )?;
        fs::write(&stamp_path, &want_stamp)
            .map_err(|e| format!("writing {}: {e}", stamp_path.display()))?;
    }
    fs::remove_dir_all(dist).ok();
    run(
        Command::new("node")
            .arg(web.join("node_modules/vite/bin/vite.js"))
            .args(["build", "--logLevel", "warn", "--emptyOutDir", "--outDir"])
            .arg(dist)
            .current_dir(web),
        "vite build",
    )?;
    if !dist.join("index.html").is_file() {
        return Err("vite build produced no index.html".into());
    }
    Ok(())
}

fn runs(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success())
}

fn run(cmd: &mut Command, what: &str) -> Result<(), String> {
    let output = cmd.output().map_err(|e| format!("{what}: {e}"))?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let last = stderr
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("no output");
    // The whole log goes to cargo's build output (`cargo build -vv`); the warning keeps one line.
    eprintln!("{stderr}");
    Err(format!("{what} failed ({}): {last}", output.status))
}

fn write_fallback(dist: &Path, reason: &str) {
    fs::remove_dir_all(dist).ok();
    fs::create_dir_all(dist).expect("create OUT_DIR/dist");
    let reason = reason
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    let html = format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>disgrafs — web page not built</title>
<style>body{{font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:4rem auto;padding:0 1rem;color:#1f2937}}
code{{background:#f3f4f6;padding:.1rem .3rem;border-radius:4px}}</style></head>
<body><main><h1>disgrafs</h1>
<p><strong>The web page was not built: install Node.js and npm, then rebuild</strong>
(<code>cargo build --release -p disgrafs-cli</code>).</p>
<p>Reason: {reason}.</p>
<p>The API works without the page: <a href="/api/health">/api/health</a>, and the <code>disgrafs</code> command line.</p>
</main></body></html>
"#
    );
    fs::write(dist.join("index.html"), html).expect("write fallback page");
}

/// Writes the `ASSETS` table: one entry per file under `dist`, with its content type, whether its
/// name carries a content hash (then it is cached forever), and an ETag.
fn write_table(dist: &Path, table: &Path, built: bool) {
    let mut files = Vec::new();
    collect(dist, dist, &mut files);
    files.sort();
    let mut src = String::from("// Generated by build.rs.\n");
    writeln!(src, "pub const BUILT: bool = {built};").unwrap();
    src.push_str("pub static ASSETS: &[Asset] = &[\n");
    for rel in &files {
        let full = dist.join(rel);
        let bytes = fs::read(&full).expect("read built asset");
        let ext = rel.rsplit_once('.').map_or("", |(_, e)| e);
        writeln!(
            src,
            "    Asset {{ path: {rel:?}, mime: {mime:?}, immutable: {imm}, etag: \"\\\"{etag:016x}\\\"\", bytes: include_bytes!({full:?}) }},",
            mime = mime_for(ext),
            imm = rel.starts_with("assets/"),
            etag = fnv1a(&bytes),
            full = full.display().to_string(),
        )
        .unwrap();
    }
    src.push_str("];\n");
    fs::write(table, src).expect("write assets.rs");
}

fn collect(root: &Path, dir: &Path, files: &mut Vec<String>) {
    for entry in fs::read_dir(dir).expect("read dist").flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(root, &path, files);
        } else if path.extension().is_none_or(|e| e != "map") {
            let rel = path
                .strip_prefix(root)
                .expect("under root")
                .to_string_lossy()
                .replace('\\', "/");
            files.push(rel);
        }
    }
}

fn mime_for(ext: &str) -> &'static str {
    match ext {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "json" | "webmanifest" => "application/json",
        "woff2" => "font/woff2",
        "wasm" => "application/wasm",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// FNV-1a 64: enough to tell versions of a file apart; no dependency needed in a build script.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}
