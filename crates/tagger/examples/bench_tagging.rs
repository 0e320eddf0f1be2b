//! Runs the keyword-extraction benchmark and prints its table (or JSON rows with `--json`):
//! `cargo run --release -p disgrafs-tagger --example bench_tagging [-- --json]`.

fn main() {
    let json = std::env::args().any(|a| a == "--json");
    match disgrafs_tagger::bench::run(&disgrafs_tagger::bench::BenchOptions::default()) {
        Ok(rows) if json => {
            for r in rows {
                println!("{}", serde_json::to_string(&r).unwrap_or_default());
            }
        }
        Ok(rows) => print!("{}", disgrafs_core::bench::render_table(&rows)),
        Err(e) => {
            eprintln!("bench tagging: {e}");
            std::process::exit(1);
        }
    }
}
