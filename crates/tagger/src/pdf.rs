//! PDF text, all pages, through pdf-extract. pdf-extract (and lopdf below it) can panic, loop
//! or load a huge document on hostile input, so extraction runs as an [`isolate`] job: in a
//! child process with a memory and time limit when the binary supports it, else under
//! `catch_unwind` with a timeout. The text then goes through the same keyword and language
//! extractors as a text file.

use crate::Collector;
use crate::isolate::{self, Job, Limits};
use std::path::Path;

pub const VERSION: u32 = 1;

/// Larger PDFs are not parsed (lopdf holds the whole file and its objects in memory).
pub const MAX_PDF_BYTES: u64 = 256 << 20;

/// The job's output: `pages\n` then the text of every page, each followed by a blank line.
pub(crate) fn extract_job(path: &Path, max_output: usize) -> Result<Vec<u8>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read: {e}"))?;
    let pages = text_from_bytes(&bytes).map_err(|e| format!("cannot parse PDF: {e}"))?;
    let mut out = format!("{}\n", pages.len()).into_bytes();
    for page in pages {
        if out.len() >= max_output {
            break;
        }
        out.extend_from_slice(page.as_bytes());
        out.extend_from_slice(b"\n\n");
    }
    out.truncate(max_output);
    Ok(out)
}

/// The text of each page of a PDF held in memory. May panic on malformed input: callers outside
/// an isolate job must contain it (the fuzz target does).
pub fn text_from_bytes(bytes: &[u8]) -> Result<Vec<String>, pdf_extract::OutputError> {
    pdf_extract::extract_text_from_mem_by_pages(bytes)
}

/// Splits a job's output into the page count and the text.
fn parse_output(out: &[u8]) -> Option<(u32, String)> {
    let nl = out.iter().position(|&b| b == b'\n')?;
    let pages = std::str::from_utf8(&out[..nl]).ok()?.parse().ok()?;
    // The output may have been cut inside a character: lossy decoding keeps the rest.
    Some((pages, String::from_utf8_lossy(&out[nl + 1..]).into_owned()))
}

pub(crate) fn tag_pdf(c: &mut Collector, path: &Path) {
    match std::fs::metadata(path) {
        Ok(m) if m.len() > MAX_PDF_BYTES => {
            c.warn(format!(
                "pdf: {} MiB is over the {} MiB limit; text not extracted",
                m.len() >> 20,
                MAX_PDF_BYTES >> 20
            ));
            return;
        }
        Ok(_) => {}
        Err(e) => {
            c.warn(format!("pdf: cannot stat: {e}"));
            return;
        }
    }
    let mut limits = Limits {
        max_output: crate::text::MAX_TEXT_BYTES,
        ..Limits::default()
    };
    if let Some(left) = c.deadline.remaining() {
        limits.timeout = limits.timeout.min(left);
    }
    let out = match isolate::run(Job::PdfText, path, &limits) {
        Ok(out) => out,
        Err(e) => {
            c.warn(format!("pdf: text extraction failed: {e}"));
            return;
        }
    };
    let Some((pages, text)) = parse_output(&out) else {
        c.warn("pdf: malformed extractor output");
        return;
    };
    c.field("pages", pages.to_string());
    c.field("text_bytes", text.len().to_string());
    crate::tag_plain_text(c, &text);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_round_trip() {
        assert_eq!(parse_output(b"3\nhello"), Some((3, "hello".to_string())));
        assert_eq!(parse_output(b"x\nhello"), None);
        assert_eq!(parse_output(b"no newline"), None);
    }
}
