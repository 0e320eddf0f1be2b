//! Command output that ends quietly when its reader goes away (`disgrafs ls | head -1`).
//!
//! `println!` panics when stdout is a closed pipe. Restoring the default SIGPIPE action (what C
//! tools get, and what some Rust CLIs do at the start of `main`) is not safe here: the same
//! process writes to sockets with `writev` (hyper) and to pipes of isolated extractors, where the
//! signal would kill it instead of returning an error that a download resumes from or a job
//! records. So the Rust runtime keeps SIGPIPE ignored, writes to stdout go through [`print`],
//! and `main` turns the resulting [`StdoutClosed`] into a silent exit with status 0, as ripgrep
//! does.

use std::io::Write;

/// Stdout's reader closed it: the command stops, and this is not a failure.
#[derive(Debug)]
pub struct StdoutClosed;

impl std::fmt::Display for StdoutClosed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("standard output was closed")
    }
}

impl std::error::Error for StdoutClosed {}

/// Writes to stdout; a closed pipe becomes [`StdoutClosed`].
pub fn print(args: std::fmt::Arguments<'_>) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_fmt(args).map_err(|e| match e.kind() {
        std::io::ErrorKind::BrokenPipe => anyhow::Error::new(StdoutClosed),
        _ => anyhow::Error::new(e).context("cannot write to standard output"),
    })
}

/// `println!` that returns [`StdoutClosed`] instead of panicking: use it with `?`.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::output::print(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `print!` that returns [`StdoutClosed`] instead of panicking: use it with `?`.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::output::print(format_args!($($arg)*))
    };
}

pub(crate) use {out, outln};

/// `s` made safe to print to a terminal: the characters no file name may carry (controls, which
/// a terminal obeys, and invisible formatting, which reorders what it shows) become `\u{…}`. For
/// strings a server sent, which this client does not trust.
pub fn term_safe(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.chars().any(disgrafs_core::invisible) {
        return s.into();
    }
    s.chars()
        .map(|c| {
            if disgrafs_core::invisible(c) {
                format!("\\u{{{:04X}}}", c as u32)
            } else {
                c.to_string()
            }
        })
        .collect::<String>()
        .into()
}

#[cfg(test)]
mod tests {
    #[test]
    fn term_safe_escapes_what_a_terminal_would_obey() {
        assert_eq!(super::term_safe("plain.txt"), "plain.txt");
        assert_eq!(
            super::term_safe("a\u{1b}[2Jb\u{202E}c"),
            "a\\u{001B}[2Jb\\u{202E}c"
        );
    }
}
