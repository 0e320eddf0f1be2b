//! Audio and video: artist, album, genre, year and title from the file's tags, duration and
//! bit rate from its stream properties, with lofty (MP3/ID3, FLAC/Vorbis comments, Ogg, Opus,
//! M4A/MP4, WAV, AIFF, APE, WavPack, Musepack).
//!
//! lofty trusts sizes declared in the file; a global allocation limit and "best attempt" parsing
//! keep a lying header from costing more than [`ALLOCATION_LIMIT`] or failing the whole file.

use crate::Collector;
use lofty::config::{GlobalOptions, ParseOptions, ParsingMode};
use lofty::file::{AudioFile, TaggedFile, TaggedFileExt};
use lofty::probe::Probe;
use lofty::tag::Accessor;
use std::io::{BufReader, Read, Seek};
use std::path::Path;
use std::sync::Once;

pub const VERSION: u32 = 1;

/// The most lofty may allocate for one item (a tag frame, a picture).
pub const ALLOCATION_LIMIT: usize = 16 << 20;

/// What a media file's tags and properties say.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MediaFacts {
    pub artist: Option<String>,
    pub album: Option<String>,
    pub title: Option<String>,
    pub genres: Vec<String>,
    pub year: Option<u16>,
    pub duration_ms: Option<u128>,
    pub bitrate_kbps: Option<u32>,
    pub sample_rate: Option<u32>,
}

/// The detected MIME types lofty reads (others, such as Matroska or AVI, would only give a
/// useless "unknown format" warning).
pub fn supports(mime: &str) -> bool {
    matches!(
        mime,
        "audio/mpeg"
            | "audio/m4a"
            | "audio/x-m4a"
            | "audio/mp4"
            | "audio/ogg"
            | "audio/opus"
            | "audio/x-flac"
            | "audio/flac"
            | "audio/x-wav"
            | "audio/wav"
            | "audio/aac"
            | "audio/x-aiff"
            | "audio/x-ape"
            | "audio/x-wavpack"
            | "audio/x-musepack"
            | "video/mp4"
            | "video/x-m4v"
            | "video/quicktime"
    )
}

fn configure_lofty() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        lofty::config::apply_global_options(
            GlobalOptions::new().allocation_limit(ALLOCATION_LIMIT),
        );
    });
}

fn clean(s: Option<std::borrow::Cow<'_, str>>) -> Option<String> {
    s.map(|s| {
        s.trim_matches(|c: char| c == '\0' || c.is_whitespace())
            .to_string()
    })
    .filter(|s| !s.is_empty())
}

/// Reads tags and properties from a media stream.
pub fn inspect<R: Read + Seek>(r: R) -> Result<MediaFacts, lofty::error::FileParseError> {
    configure_lofty();
    let options = ParseOptions::new()
        .read_cover_art(false)
        .parsing_mode(ParsingMode::BestAttempt);
    let file: TaggedFile = Probe::new(BufReader::new(r))
        .options(options)
        .guess_file_type()?
        .read()?;
    let mut f = MediaFacts::default();
    if let Some(tag) = file.primary_tag().or_else(|| file.first_tag()) {
        f.artist = clean(tag.artist());
        f.album = clean(tag.album());
        f.title = clean(tag.title());
        f.year = tag
            .date()
            .map(|d| d.year)
            .filter(|y| (1800..=2200).contains(y));
        // Several genres are often packed in one value.
        if let Some(g) = clean(tag.genre()) {
            f.genres = g
                .split([';', '/', ',', '\0'])
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect();
        }
    }
    let p = file.properties();
    let d = p.duration();
    f.duration_ms = (!d.is_zero()).then_some(d.as_millis());
    f.bitrate_kbps = p.audio_bitrate().filter(|&b| b > 0);
    f.sample_rate = p.sample_rate().filter(|&s| s > 0);
    Ok(f)
}

pub(crate) fn tag_media(c: &mut Collector, path: &Path) {
    let Some(mut file) = c.open("media", path) else {
        return;
    };
    let f = inspect(&mut file);
    c.count_read(&file);
    let f = match f {
        Ok(f) => f,
        Err(e) => {
            c.warn(format!("media: unreadable: {e}"));
            return;
        }
    };
    if let Some(a) = &f.artist {
        c.tag("media", VERSION, a, 0.95);
        c.field("artist", a.clone());
    }
    if let Some(a) = &f.album {
        c.tag("media", VERSION, a, 0.9);
        c.field("album", a.clone());
    }
    for g in &f.genres {
        c.tag("media", VERSION, g, 0.9);
    }
    c.field("genre", f.genres.join("; "));
    if let Some(y) = f.year {
        c.tag("media", VERSION, &y.to_string(), 0.9);
        c.field("year", y.to_string());
    }
    if let Some(t) = &f.title {
        c.field("title", t.clone());
    }
    if let Some(ms) = f.duration_ms {
        c.field("duration_s", format!("{:.3}", ms as f64 / 1000.0));
    }
    if let Some(b) = f.bitrate_kbps {
        c.field("bitrate_kbps", b.to_string());
    }
    if let Some(s) = f.sample_rate {
        c.field("sample_rate", s.to_string());
    }
}
