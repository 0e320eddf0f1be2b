//! `disgrafs bench tagging` without building the server and the page:
//! `cargo run --release -p disgrafs-bench --example tagging [-- --json] [--python PY] [--repeats N]`.
#![allow(
    unused_crate_dependencies,
    reason = "integration tests link all of their package's dependencies; the lint checks lib and bin"
)]

use clap::Parser;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: disgrafs_bench::tagging::Args,
    /// Print JSON rows instead of a table.
    #[arg(long)]
    json: bool,
}

fn main() {
    let cli = Cli::parse();
    let printed = disgrafs_bench::tagging::run(&cli.args)
        .map_err(|e| e.to_string())
        .and_then(|rows| disgrafs_bench::print_rows(&rows, cli.json).map_err(|e| e.to_string()));
    if let Err(e) = printed {
        eprintln!("bench tagging: {e}");
        std::process::exit(1);
    }
}
