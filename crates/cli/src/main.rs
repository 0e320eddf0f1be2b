//! The `disgrafs` binary. On the accel branch only the accelerator commands are wired here,
//! thinly: the lead folds them into the real CLI.

use clap::{Parser, Subcommand};
use disgrafs_accel::{bench::CpuBalanceBenchOptions, cli::AccelCommand};

#[derive(Debug, Parser)]
#[command(name = "disgrafs", version, about = "disgrafs: a graph file system")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// eBPF accelerators.
    #[command(subcommand)]
    Accel(AccelCommand),
    /// Reproducible before/after measurements.
    #[command(subcommand)]
    Bench(BenchCmd),
}

#[derive(Debug, Subcommand)]
enum BenchCmd {
    /// XDP CPU balancing against no balancer on a veth pair (needs root).
    CpuBalance {
        #[command(flatten)]
        opts: CpuBalanceBenchOptions,
        /// Print JSON rows instead of a table.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> std::process::ExitCode {
    let result: anyhow::Result<()> = match Cli::parse().cmd {
        Cmd::Accel(cmd) => disgrafs_accel::cli::run(cmd).map_err(Into::into),
        Cmd::Bench(BenchCmd::CpuBalance { opts, json }) => disgrafs_accel::bench::cpu_balance(&opts)
            .map_err(Into::into)
            .and_then(|rows| {
                if json {
                    println!("{}", serde_json::to_string_pretty(&rows)?);
                } else {
                    print!("{}", disgrafs_core::bench::render_table(&rows));
                }
                Ok(())
            }),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
