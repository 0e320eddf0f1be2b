//! `disgrafs`: the server, its command-line client, the accelerators and the benchmarks.
//! Definitions and glue only: the work is in the library crates.
#![cfg_attr(
    test,
    allow(
        unused_crate_dependencies,
        reason = "unit tests see the dev-dependencies that only the integration tests use"
    )
)]

mod admin;
mod client_cmds;
mod fsck;
mod login;
mod output;
mod serve;
mod worker;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// mimalloc rather than glibc's allocator: a server's many small, short-lived allocations (a
/// listing's 100,000 entries, each request's headers) cost it less, across threads.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const DEFAULT_SERVER: &str = "http://127.0.0.1:7878";

#[derive(Parser)]
#[command(
    name = "disgrafs",
    version,
    about = "A graph file system: files tag themselves, and the graph of files and tags is what you search and browse."
)]
#[command(propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Options shared by the client commands.
#[derive(clap::Args, Clone)]
pub struct ClientOpts {
    /// The disgrafs server to talk to.
    #[arg(long, global = true, env = "DISGRAFS_SERVER", default_value = DEFAULT_SERVER)]
    pub server: String,
    /// Print JSON for scripts instead of text for people.
    #[arg(long, global = true)]
    pub json: bool,
    /// The API token to send (`disgrafs admin token`, `disgrafs login`) [default: the one
    /// `disgrafs login` stored for --server].
    #[arg(long, global = true, env = "DISGRAFS_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (embedded default: SQLite and a local data directory).
    Serve(Box<serve::ServeArgs>),
    /// Run tagging workers only, beside serve nodes that share --meta and --blobs.
    Worker(Box<worker::WorkerArgs>),
    /// Check that a data directory's blobs and metadata agree (orphans, missing or corrupt
    /// contents, reference counts), and with --repair repair what is safe.
    Fsck(Box<fsck::FsckArgs>),
    /// Upload files, or folders recursively (resumable).
    Put {
        /// Files or folders.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        #[command(flatten)]
        opts: ClientOpts,
    },
    /// Download a file (resumes an interrupted download).
    Get {
        id: String,
        /// Where to write it (default: its name, in the current folder).
        #[arg(short, long)]
        output: Option<PathBuf>,
        #[command(flatten)]
        opts: ClientOpts,
    },
    /// List files matching a query, e.g. `rust AND (pdf OR markdown) AND NOT draft`; with `text:`
    /// terms (`disgrafs search text:borrow`), best match first, each with the text around its
    /// match.
    #[command(visible_alias = "search")]
    Ls {
        /// The query (words are tags; AND, OR, NOT, parentheses; name:, kind:, size>, created>,
        /// text:word, text:"a phrase", text:pre*...).
        query: Vec<String>,
        #[arg(long, default_value_t = 100)]
        limit: u32,
        #[arg(long, default_value_t = 0)]
        offset: u64,
        #[command(flatten)]
        opts: ClientOpts,
    },
    /// Show a file's record and its related files.
    Info {
        id: String,
        #[command(flatten)]
        opts: ClientOpts,
    },
    /// Add or remove user tags.
    Tag {
        #[command(subcommand)]
        action: TagAction,
    },
    /// Delete a file.
    Rm {
        #[arg(required = true)]
        ids: Vec<String>,
        #[command(flatten)]
        opts: ClientOpts,
    },
    /// Print the graph of the files matching a query and their tags.
    Graph {
        query: Vec<String>,
        #[arg(long, value_enum, default_value_t = client_cmds::GraphFormat::Json)]
        format: client_cmds::GraphFormat,
        /// Most nodes.
        #[arg(long, default_value_t = 2000)]
        limit: u32,
        #[command(flatten)]
        opts: ClientOpts,
    },
    /// Queue automatic tagging again (only contents tagged by an older extractor, or --all).
    Retag {
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        opts: ClientOpts,
    },
    /// Read-only share links to a file or to a query's files, for people without an account.
    Share {
        #[command(subcommand)]
        action: client_cmds::ShareAction,
        #[command(flatten)]
        opts: ClientOpts,
    },
    /// Mount the graph as a file system (FUSE): files/ by folder, tags/A/B/ (A AND B),
    /// query/EXPR/, recent/, read-write, until Ctrl-C or SIGTERM.
    Mount {
        #[command(flatten)]
        args: disgrafs_mount::MountArgs,
        #[command(flatten)]
        opts: ClientOpts,
    },
    /// Users and API tokens, on the data directory (or --meta) directly.
    #[command(subcommand)]
    Admin(admin::AdminCommand),
    /// Store a token for a server in your config directory (0600), used when no --token is
    /// given: a token on standard input, or with --user a password exchanged for a new token.
    Login {
        /// Log in as this user (password on standard input).
        #[arg(long)]
        user: Option<String>,
        #[command(flatten)]
        opts: ClientOpts,
    },
    /// eBPF accelerators of the services' network IO (need root).
    #[command(subcommand)]
    Accel(AccelCli),
    /// Reproducible measurements beside a peer, printed as a table.
    Bench(disgrafs_bench::BenchArgs),
}

#[derive(Subcommand)]
enum AccelCli {
    #[command(flatten)]
    Bpf(disgrafs_accel::cli::AccelCommand),
    /// Serve file records and small contents over AF_XDP with a user-space TCP stack (smoltcp),
    /// from the data directory of a running `disgrafs serve`, until Ctrl-C or SIGTERM.
    Afxdp(disgrafs_fastpath::cli::AfxdpArgs),
}

#[derive(Subcommand)]
enum TagAction {
    /// Add user tags to a file.
    Add {
        id: String,
        #[arg(required = true)]
        tags: Vec<String>,
        #[command(flatten)]
        opts: ClientOpts,
    },
    /// Remove tags from a file (an automatic tag is hidden on that file).
    Rm {
        id: String,
        #[arg(required = true)]
        tags: Vec<String>,
        #[command(flatten)]
        opts: ClientOpts,
    },
}

fn main() {
    // A re-run of this executable as an isolated extractor (see disgrafs_tagger::isolate) does its
    // job and exits here.
    disgrafs_tagger::isolate::run_child_if_requested();
    // So does a mount's watchdog (see disgrafs_mount), once its mount's process is gone.
    disgrafs_mount::run_watchdog_if_requested();
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => fail(anyhow::anyhow!("cannot start the runtime: {e}")),
    };
    if let Err(e) = rt.block_on(run(cli.command)) {
        if e.is::<output::StdoutClosed>() {
            std::process::exit(0);
        }
        fail(e);
    }
}

fn fail(e: anyhow::Error) -> ! {
    // One line: the chain of causes, joined.
    eprintln!("disgrafs: {}", format!("{e:#}").replace('\n', " "));
    std::process::exit(1);
}

async fn run(cmd: Command) -> anyhow::Result<()> {
    use client_cmds as c;
    match cmd {
        Command::Serve(args) => serve::run(*args).await,
        Command::Worker(args) => worker::run(*args).await,
        Command::Fsck(args) => fsck::run(*args).await,
        Command::Admin(cmd) => admin::run(cmd).await,
        Command::Login { user, opts } => login::run(&opts, user.as_deref()).await,
        Command::Put { paths, opts } => c::put(&opts, &paths).await,
        Command::Get { id, output, opts } => c::get(&opts, &id, output).await,
        Command::Ls {
            query,
            limit,
            offset,
            opts,
        } => c::ls(&opts, &query.join(" "), limit, offset).await,
        Command::Info { id, opts } => c::info(&opts, &id).await,
        Command::Tag {
            action: TagAction::Add { id, tags, opts },
        } => c::tag(&opts, &id, &tags, c::TagEdit::Add).await,
        Command::Tag {
            action: TagAction::Rm { id, tags, opts },
        } => c::tag(&opts, &id, &tags, c::TagEdit::Remove).await,
        Command::Rm { ids, opts } => c::rm(&opts, &ids).await,
        Command::Graph {
            query,
            format,
            limit,
            opts,
        } => c::graph(&opts, &query.join(" "), format, limit).await,
        Command::Retag { all, opts } => c::retag(&opts, all).await,
        Command::Share { action, opts } => c::share(&opts, action).await,
        Command::Bench(bench) => disgrafs_bench::run(bench).await,
        Command::Mount { args, opts } => {
            let token = login::token(&opts);
            let mounted = disgrafs_mount::mount(&opts.server, token.as_deref(), &args)?;
            println!("mounted {} on {}", opts.server, args.mountpoint.display());
            tokio::select! {
                () = serve::shutdown_signal() => {}
                () = mounted.ended() => {}
            }
            tokio::task::spawn_blocking(move || mounted.unmount()).await?
        }
        // The accelerators block (netlink, bpf(2), a reader thread): keep them off the runtime.
        Command::Accel(AccelCli::Bpf(cmd)) => {
            Ok(tokio::task::spawn_blocking(move || disgrafs_accel::cli::run(cmd)).await??)
        }
        Command::Accel(AccelCli::Afxdp(args)) => {
            let (fp, line) =
                tokio::task::spawn_blocking(move || disgrafs_fastpath::cli::start(args)).await??;
            println!("{line}");
            Ok(disgrafs_fastpath::cli::supervise(fp, serve::shutdown_signal()).await?)
        }
    }
}
