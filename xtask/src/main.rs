//! Tasks cargo does not do by itself.
//!
//! * `cargo xtask build-bpf`: compiles `crates/accel/bpf/*.bpf.c` with clang-19 and writes the
//!   objects next to their sources (they are committed, so `cargo build` needs no clang).
//! * `cargo xtask check-bpf`: rebuilds them and fails when any differs from the committed one.
//! * `cargo xtask vmlinux`: regenerates `crates/accel/bpf/vmlinux.h` from this kernel's BTF.
//!
//! Reproducibility: clang-19 orders BTF types differently depending on the directory it compiles
//! in (`-ffile-prefix-map` does not cover it), so sources are copied to one fixed directory,
//! [`BUILD_DIR`], and compiled there; the result is byte-identical from any checkout path. DWARF is
//! stripped (`llvm-strip -g`), leaving the BTF that loaders need. vmlinux.h is committed rather
//! than regenerated at build time, so the objects do not depend on the building machine's kernel.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, Result, bail};

/// The one directory BPF objects are compiled in (see the module docs).
const BUILD_DIR: &str = "/tmp/disgrafs-bpf-build";
const CLANG: &str = "clang-19";
const STRIP: &str = "llvm-strip-19";
const CFLAGS: &[&str] = &[
    "-g",
    "-O2",
    "-target",
    "bpf",
    "-mcpu=v3",
    "-D__TARGET_ARCH_x86",
    "-Wall",
    "-Werror",
    "-I.",
];

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = workspace_root();
    match args.first().map(String::as_str) {
        Some("build-bpf") => {
            for (name, obj) in build_bpf(&root)? {
                fs::write(bpf_dir(&root).join(&name), obj)
                    .with_context(|| format!("writing {name}"))?;
                println!("built crates/accel/bpf/{name}");
            }
            Ok(())
        }
        Some("check-bpf") => check_bpf(&root),
        Some("vmlinux") => vmlinux(&root),
        _ => bail!("usage: cargo xtask build-bpf | check-bpf | vmlinux"),
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace root")
        .to_path_buf()
}

fn bpf_dir(root: &Path) -> PathBuf {
    root.join("crates/accel/bpf")
}

fn run(cmd: &mut Command) -> Result<()> {
    let status = cmd.status().with_context(|| {
        format!("running {cmd:?} (is it installed? see scripts/deps.d/20-accel.sh)")
    })?;
    if !status.success() {
        bail!("{cmd:?} failed: {status}");
    }
    Ok(())
}

/// Compiles every `*.bpf.c` in the fixed build directory; returns (object file name, bytes).
fn build_bpf(root: &Path) -> Result<Vec<(String, Vec<u8>)>> {
    let src = bpf_dir(root);
    let build = Path::new(BUILD_DIR);
    fs::create_dir_all(build).with_context(|| format!("creating {BUILD_DIR}"))?;
    // Two checkouts building at once would overwrite each other's sources: serialise them.
    let lock = fs::File::create(build.join(".lock"))?;
    lock.lock().context("locking the BPF build directory")?;
    for entry in fs::read_dir(build)? {
        let path = entry?.path();
        if path.file_name().is_some_and(|n| n != ".lock") {
            fs::remove_file(&path).with_context(|| format!("cleaning {}", path.display()))?;
        }
    }
    let mut sources = Vec::new();
    for entry in fs::read_dir(&src).with_context(|| format!("reading {}", src.display()))? {
        let path = entry?.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        if name.ends_with(".c") || name.ends_with(".h") {
            fs::copy(&path, build.join(&name))?;
            if let Some(stem) = name.strip_suffix(".bpf.c") {
                sources.push(stem.to_string());
            }
        }
    }
    sources.sort();
    let mut out = Vec::new();
    for stem in sources {
        let obj = format!("{stem}.bpf.o");
        run(Command::new(CLANG).current_dir(build).args(CFLAGS).args([
            "-c",
            &format!("{stem}.bpf.c"),
            "-o",
            &obj,
        ]))?;
        run(Command::new(STRIP).current_dir(build).args(["-g", &obj]))?;
        out.push((obj.clone(), fs::read(build.join(&obj))?));
    }
    Ok(out)
}

fn check_bpf(root: &Path) -> Result<()> {
    let mut stale = Vec::new();
    for (name, built) in build_bpf(root)? {
        let committed = fs::read(bpf_dir(root).join(&name)).unwrap_or_default();
        if committed != built {
            stale.push(name);
        }
    }
    if !stale.is_empty() {
        bail!(
            "BPF objects differ from their sources: {} (run `cargo xtask build-bpf` and commit the objects)",
            stale.join(", ")
        );
    }
    println!("BPF objects match their sources");
    Ok(())
}

fn vmlinux(root: &Path) -> Result<()> {
    let out = Command::new("bpftool")
        .args([
            "btf",
            "dump",
            "file",
            "/sys/kernel/btf/vmlinux",
            "format",
            "c",
        ])
        .output()
        .context("running bpftool (apt-get install bpftool)")?;
    if !out.status.success() {
        bail!(
            "bpftool failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    fs::write(bpf_dir(root).join("vmlinux.h"), out.stdout)?;
    println!("wrote crates/accel/bpf/vmlinux.h");
    Ok(())
}
