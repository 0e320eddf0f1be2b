//! What one tagging may spend: a [`Deadline`] every extractor checks in its loops (and on every
//! read of the file, through [`Metered`]), and the [`Work`] it did, counted so that tests can
//! assert bounds on work rather than on wall-clock time.

use serde::{Deserialize, Serialize};
use std::io::{Read, Seek, SeekFrom};
use std::time::{Duration, Instant};

/// When tagging must give up. The server passes its job timeout; the plain [`crate::tag_file`]
/// uses [`DEFAULT_TIMEOUT`]. An extractor that meets it stops, and `tag_file_with` returns
/// [`crate::TagError::Deadline`] rather than a tagging it could not finish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadline(Option<Instant>);

/// The deadline of [`crate::tag_file`]: far beyond what any input costs within the bounds, so it
/// only ever stops a bug.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

/// Loops check the clock once per this many steps (words, events, lines): reading it costs
/// about as much as a step.
pub const CHECK_EVERY: usize = 1024;

impl Deadline {
    /// No deadline (benchmarks, fuzzing).
    pub const NEVER: Deadline = Deadline(None);

    pub fn after(timeout: Duration) -> Deadline {
        Deadline(Instant::now().checked_add(timeout))
    }

    pub fn at(instant: Instant) -> Deadline {
        Deadline(Some(instant))
    }

    pub fn passed(&self) -> bool {
        self.0.is_some_and(|at| Instant::now() >= at)
    }

    /// Time left, None when there is no deadline.
    pub fn remaining(&self) -> Option<Duration> {
        self.0
            .map(|at| at.saturating_duration_since(Instant::now()))
    }

    /// `Err(Expired)` once the deadline has passed.
    pub fn check(&self) -> Result<(), Expired> {
        if self.passed() { Err(Expired) } else { Ok(()) }
    }
}

/// The deadline passed before the work was done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("deadline passed")]
pub struct Expired;

/// What one tagging did, counted by the extractors. Every count is bounded by the crate's
/// limits whatever the input; tests assert those bounds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Work {
    /// Bytes read from the file by this process, the type-detection head included (an
    /// [`crate::isolate`] child's reads are bounded by its limits instead).
    pub bytes_read: u64,
    /// Bytes decompressed (gzip of a tar).
    pub bytes_unpacked: u64,
    /// Archive entries listed.
    pub entries: u64,
    /// Words the keyword extractor scanned (over-long tokens included).
    pub words: u64,
    /// Distinct keyphrase candidates kept.
    pub candidates: u64,
    /// Candidates looked at while picking the top keyphrases.
    pub considered: u64,
    /// Cells of the LCS tables filled by the duplicate check.
    pub similarity_cells: u64,
}

impl Work {
    pub(crate) fn add(&mut self, other: &Work) {
        self.bytes_read += other.bytes_read;
        self.bytes_unpacked += other.bytes_unpacked;
        self.entries += other.entries;
        self.words += other.words;
        self.candidates += other.candidates;
        self.considered += other.considered;
        self.similarity_cells += other.similarity_cells;
    }
}

/// Checks `deadline` every [`CHECK_EVERY`] calls.
pub(crate) struct Ticker<'d> {
    deadline: &'d Deadline,
    steps: usize,
}

impl<'d> Ticker<'d> {
    pub(crate) fn new(deadline: &'d Deadline) -> Self {
        Ticker { deadline, steps: 0 }
    }

    pub(crate) fn tick(&mut self) -> Result<(), Expired> {
        self.steps += 1;
        if self.steps.is_multiple_of(CHECK_EVERY) {
            self.deadline.check()?;
        }
        Ok(())
    }
}

/// A reader that counts the bytes through it and fails every read once the deadline has passed,
/// so that a library parser (lofty, kamadak-exif, tar, gzip) that keeps reading is stopped too.
#[derive(Debug)]
pub(crate) struct Metered<R> {
    inner: R,
    deadline: Deadline,
    pub(crate) bytes: u64,
}

impl<R> Metered<R> {
    pub(crate) fn new(inner: R, deadline: Deadline) -> Self {
        Metered {
            inner,
            deadline,
            bytes: 0,
        }
    }
}

impl<R: Read> Read for Metered<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.deadline.passed() {
            return Err(std::io::Error::new(std::io::ErrorKind::TimedOut, Expired));
        }
        let n = self.inner.read(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }
}

impl<R: Seek> Seek for Metered<R> {
    fn seek(&mut self, pos: SeekFrom) -> std::io::Result<u64> {
        self.inner.seek(pos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines() {
        assert!(!Deadline::NEVER.passed() && Deadline::NEVER.remaining().is_none());
        assert!(Deadline::at(Instant::now()).passed());
        assert_eq!(Deadline::at(Instant::now()).check(), Err(Expired));
        assert!(Deadline::after(Duration::from_secs(3600)).check().is_ok());
    }

    #[test]
    fn metered_counts_and_stops() {
        let mut m = Metered::new(&b"hello world"[..], Deadline::NEVER);
        let mut s = String::new();
        m.read_to_string(&mut s).unwrap();
        assert_eq!(m.bytes, 11);
        let mut m = Metered::new(&b"hello"[..], Deadline::at(Instant::now()));
        let e = m.read(&mut [0u8; 4]).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::TimedOut);
        assert_eq!(m.bytes, 0);
    }
}
