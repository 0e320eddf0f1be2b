//! Profiling aid: YAKE over one text file, many times
//! (`cargo run --release -p disgrafs-tagger --example profile_keywords -- FILE [PASSES]`).
#![allow(
    unused_crate_dependencies,
    reason = "integration tests link all of their package's dependencies; the lint checks lib and bin"
)]

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(path) = args.next() else {
        eprintln!("usage: profile_keywords FILE [PASSES]");
        std::process::exit(2);
    };
    let passes: usize = args.next().and_then(|p| p.parse().ok()).unwrap_or(20);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{path}: {e}");
            std::process::exit(1);
        }
    };
    let lang = whatlang::detect_lang(&text);
    let yake = disgrafs_tagger::keywords::Yake::default();
    let start = std::time::Instant::now();
    let mut kws = Vec::new();
    for _ in 0..passes {
        kws = yake.ranked(&text, lang, 10);
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{:.2} MB/s over {passes} passes of {} bytes",
        (text.len() * passes) as f64 / secs / 1e6,
        text.len()
    );
    for k in kws {
        println!("{:.4} {:.2} {}", k.score, k.confidence, k.text);
    }
}
