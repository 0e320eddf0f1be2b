//! Runs the keyword-extraction benchmark and prints its table (or JSON rows with `--json`):
//! `cargo run --release -p disgrafs-tagger --example bench_tagging [-- --json]`.
#![allow(
    unused_crate_dependencies,
    reason = "integration tests link all of their package's dependencies; the lint checks lib and bin"
)]

fn main() {
    let json = std::env::args().any(|a| a == "--json");
    match disgrafs_tagger::bench::run(&disgrafs_tagger::bench::BenchOptions::default()) {
        // The same JSON as the other `disgrafs bench` suites: one array of rows.
        Ok(rows) if json => println!(
            "{}",
            serde_json::to_string_pretty(&rows).unwrap_or_default()
        ),
        Ok(rows) => print!("{}", disgrafs_core::bench::render_table(&rows)),
        Err(e) => {
            eprintln!("bench tagging: {e}");
            std::process::exit(1);
        }
    }
}
