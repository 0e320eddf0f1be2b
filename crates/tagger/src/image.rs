//! Images: dimensions and orientation from the header (imagesize reads a few hundred bytes,
//! never the pixels), then EXIF (kamadak-exif) for the camera, the date taken and GPS presence.
//! Two extractors with their own versions: `image` (header) and `exif`.

use crate::Collector;
use exif::{In, Tag, Value};
use std::io::{BufRead, BufReader, Read, Seek};
use std::path::Path;

pub const VERSION: u32 = 1;
pub const EXIF_VERSION: u32 = 1;

/// EXIF lives in the first segments of JPEG, PNG and WebP files; for HEIF/TIFF it can be further
/// in, but reading past this is not worth the IO of a huge image.
const MAX_EXIF_SCAN: u64 = 16 << 20;

/// What the header and EXIF tell about an image.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ImageFacts {
    /// As displayed (EXIF orientation 5-8 swaps the stored width and height).
    pub width: Option<u64>,
    pub height: Option<u64>,
    pub make: Option<String>,
    pub model: Option<String>,
    pub taken: Option<Taken>,
    /// Decimal degrees, when both coordinates parse.
    pub gps: Option<(f64, f64)>,
    /// GPS tags are present (even if their values do not parse).
    pub has_gps: bool,
    pub warnings: Vec<String>,
}

/// The date and time a photo was taken, as the camera recorded it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Taken {
    pub year: u16,
    pub month: u8,
    pub day: u8,
    pub hour: u8,
    pub minute: u8,
    pub second: u8,
    /// Minutes east of UTC, when the camera recorded it (EXIF 2.31 `OffsetTimeOriginal`).
    pub offset_minutes: Option<i16>,
}

/// Reads dimensions and EXIF from an image stream.
pub fn inspect<R: BufRead + Seek>(r: &mut R) -> ImageFacts {
    let mut f = ImageFacts::default();
    match imagesize::reader_size(&mut *r) {
        Ok(size) => {
            f.width = Some(size.width as u64);
            f.height = Some(size.height as u64);
        }
        Err(e) => f
            .warnings
            .push(format!("image: cannot read dimensions: {e}")),
    }
    if let Err(e) = r.rewind() {
        f.warnings.push(format!("exif: cannot rewind: {e}"));
        return f;
    }
    let mut limited = BufReader::new(r.take(MAX_EXIF_SCAN));
    match exif::Reader::new().read_from_container(&mut limited) {
        Ok(exif) => read_exif(&exif, &mut f),
        // No EXIF at all is normal (screenshots, web images).
        Err(exif::Error::NotFound(_)) => {}
        Err(e) => f.warnings.push(format!("exif: unreadable: {e}")),
    }
    f
}

fn ascii(exif: &exif::Exif, tag: Tag) -> Option<String> {
    let field = exif.get_field(tag, In::PRIMARY)?;
    let Value::Ascii(ref parts) = field.value else {
        return None;
    };
    let s = String::from_utf8_lossy(parts.first()?)
        .trim_matches(|c: char| c == '\0' || c.is_whitespace())
        .to_string();
    (!s.is_empty()).then_some(s)
}

fn degrees(exif: &exif::Exif, tag: Tag, reference: Tag, negative: u8) -> Option<f64> {
    let field = exif.get_field(tag, In::PRIMARY)?;
    let Value::Rational(ref v) = field.value else {
        return None;
    };
    let part = |i: usize| v.get(i).filter(|r| r.denom != 0).map(|r| r.to_f64());
    let deg = part(0)? + part(1).unwrap_or(0.0) / 60.0 + part(2).unwrap_or(0.0) / 3600.0;
    let sign = match exif.get_field(reference, In::PRIMARY).map(|f| &f.value) {
        Some(Value::Ascii(r)) if r.first().and_then(|s| s.first()) == Some(&negative) => -1.0,
        _ => 1.0,
    };
    Some(sign * deg)
}

fn read_exif(exif: &exif::Exif, f: &mut ImageFacts) {
    f.make = ascii(exif, Tag::Make);
    f.model = ascii(exif, Tag::Model);
    let date = exif
        .get_field(Tag::DateTimeOriginal, In::PRIMARY)
        .or_else(|| exif.get_field(Tag::DateTime, In::PRIMARY))
        .map(|field| (field.tag, &field.value));
    if let Some((tag, Value::Ascii(parts))) = date
        && let Some(Ok(mut dt)) = parts.first().map(|p| exif::DateTime::from_ascii(p))
    {
        let offset_tag = if tag == Tag::DateTimeOriginal {
            Tag::OffsetTimeOriginal
        } else {
            Tag::OffsetTime
        };
        if let Some(Value::Ascii(o)) = exif.get_field(offset_tag, In::PRIMARY).map(|f| &f.value)
            && let Some(o) = o.first()
        {
            dt.parse_offset(o).ok();
        }
        let valid = (1826..=2200).contains(&dt.year)
            && (1..=12).contains(&dt.month)
            && (1..=31).contains(&dt.day)
            && dt.hour < 24
            && dt.minute < 60
            && dt.second < 61;
        if valid {
            f.taken = Some(Taken {
                year: dt.year,
                month: dt.month,
                day: dt.day,
                hour: dt.hour,
                minute: dt.minute,
                second: dt.second,
                offset_minutes: dt.offset,
            });
        } else {
            f.warnings.push("exif: date taken out of range".into());
        }
    }
    f.has_gps = exif.get_field(Tag::GPSLatitude, In::PRIMARY).is_some()
        || exif.get_field(Tag::GPSLongitude, In::PRIMARY).is_some();
    let lat = degrees(exif, Tag::GPSLatitude, Tag::GPSLatitudeRef, b'S');
    let lon = degrees(exif, Tag::GPSLongitude, Tag::GPSLongitudeRef, b'W');
    if let (Some(lat), Some(lon)) = (lat, lon)
        && (-90.0..=90.0).contains(&lat)
        && (-180.0..=180.0).contains(&lon)
    {
        f.gps = Some((lat, lon));
    }
    // Orientations 5-8 are rotated by 90°: the displayed image is the stored one turned.
    let rotated = exif
        .get_field(Tag::Orientation, In::PRIMARY)
        .and_then(|o| o.value.get_uint(0))
        .is_some_and(|o| (5..=8).contains(&o));
    if rotated {
        std::mem::swap(&mut f.width, &mut f.height);
    }
}

/// `NIKON CORPORATION` → `nikon`; `Canon` → `canon`: the maker's first word, which is how people
/// name it.
fn make_tag(make: &str) -> Option<String> {
    make.split_whitespace()
        .next()
        .map(|w| w.trim_end_matches([',', '.']).to_lowercase())
        .filter(|w| !w.is_empty())
}

pub(crate) fn tag_image(c: &mut Collector, path: &Path) {
    let Some(mut file) = c.open("image", path) else {
        return;
    };
    let f = inspect(&mut BufReader::new(&mut file));
    c.count_read(&file);
    for w in f.warnings {
        c.warn(w);
    }
    if let (Some(w), Some(h)) = (f.width, f.height) {
        c.field("width", w.to_string());
        c.field("height", h.to_string());
        let orientation = match w.cmp(&h) {
            std::cmp::Ordering::Greater => "landscape",
            std::cmp::Ordering::Less => "portrait",
            std::cmp::Ordering::Equal => "square",
        };
        c.field("orientation", orientation);
        c.tag("image", VERSION, orientation, 0.9);
    }
    if let Some(make) = f.make.as_deref().and_then(make_tag) {
        c.tag("exif", EXIF_VERSION, &make, 0.9);
    }
    if let Some(model) = &f.model {
        c.tag("exif", EXIF_VERSION, model, 0.9);
    }
    let camera = match (&f.make, &f.model) {
        // Many models repeat the make ("Canon" + "Canon EOS 5D").
        (Some(make), Some(model))
            if model
                .to_lowercase()
                .starts_with(&make_tag(make).unwrap_or_default()) =>
        {
            model.clone()
        }
        (Some(make), Some(model)) => format!("{make} {model}"),
        (Some(one), None) | (None, Some(one)) => one.clone(),
        (None, None) => String::new(),
    };
    c.field("camera", camera);
    if let Some(Taken {
        year: y,
        month: mo,
        day: d,
        hour: h,
        minute: mi,
        second: s,
        offset_minutes: offset,
    }) = f.taken
    {
        c.tag("exif", EXIF_VERSION, &y.to_string(), 0.9);
        c.field("taken", format!("{y:04}-{mo:02}-{d:02}"));
        if let Some(off) = offset {
            let sign = if off < 0 { '-' } else { '+' };
            let off = off.unsigned_abs();
            c.field(
                "taken_at",
                format!(
                    "{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}{sign}{:02}:{:02}",
                    off / 60,
                    off % 60
                ),
            );
        }
    }
    if f.has_gps {
        c.tag("exif", EXIF_VERSION, "gps", 0.9);
    }
    if let Some((lat, lon)) = f.gps {
        c.field("gps", format!("{lat:.6},{lon:.6}"));
    }
}

/// Whether an image is small enough for an extractor that decodes its pixels: at most
/// `max_bytes` and `max_pixels` (width × height from the `image` extractor's fields, which must
/// be there); otherwise the extractor's warning says it was skipped.
pub(crate) fn within_bounds(
    c: &mut Collector,
    extractor: &str,
    path: &Path,
    max_bytes: u64,
    max_pixels: u64,
) -> bool {
    let size = match std::fs::metadata(path) {
        Ok(m) => m.len(),
        Err(e) => {
            c.warn(format!("{extractor}: cannot stat: {e}"));
            return false;
        }
    };
    let dim = |k: &str| c.out.fields.get(k).and_then(|v| v.parse::<u64>().ok());
    let pixels = dim("width").zip(dim("height")).map(|(w, h)| w * h);
    if size > max_bytes || pixels.is_none_or(|p| p > max_pixels) {
        c.warn(format!(
            "{extractor}: skipped (at most {} MiB and {} megapixels, with readable dimensions)",
            max_bytes >> 20,
            max_pixels / 1_000_000
        ));
        return false;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn make_names() {
        assert_eq!(make_tag("NIKON CORPORATION").as_deref(), Some("nikon"));
        assert_eq!(make_tag("Canon").as_deref(), Some("canon"));
        assert_eq!(make_tag("  "), None);
    }

    #[test]
    fn garbage_gives_warnings_not_panics() {
        let f = inspect(&mut std::io::Cursor::new(
            b"\xff\xd8\xff\xe1\x00\x10Exif\0\0garbage".to_vec(),
        ));
        assert!(f.width.is_none());
        assert!(!f.warnings.is_empty());
    }
}
