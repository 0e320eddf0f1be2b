//! Generators of real files for the tests: every fixture is made by a library (or, where no Rust
//! writer exists, by a documented byte layout) at test time; nothing binary is committed.
#![allow(dead_code)] // each test binary uses a different subset

use std::io::{Cursor, Write};
use std::path::{Path, PathBuf};

pub const ENGLISH: &str = "Honey bees live in large colonies. A honey bee colony has one queen, thousands of \
worker bees and a few hundred drones. The worker bees build the hive from wax, collect nectar and pollen \
from flowers, and turn the nectar into honey. Beekeepers keep honey bee colonies in wooden hives and \
harvest the honey in late summer.\n\nThe health of honey bee colonies worries beekeepers. Mites, \
pesticides and the loss of flowering meadows weaken the colonies. A weak colony produces little honey, \
and many colonies die in winter. Researchers study how honey bees find flowers, how the queen controls \
the hive, and how beekeepers can protect their colonies.\n\nPollination by honey bees matters for \
farming: apples, almonds and many other crops need bees. Without healthy honey bee colonies, farmers \
would harvest far less fruit.";

pub const CHINESE: &str = "大熊猫是中国特有的珍稀动物，主要生活在四川、陕西和甘肃的山区竹林中。大熊猫的食物几乎全部是竹子，\
一只成年大熊猫每天要吃十几公斤竹子。由于栖息地被破坏，野生大熊猫的数量曾经急剧减少。\n\n\
为了保护大熊猫，中国建立了许多自然保护区，卧龙自然保护区就是其中最著名的一个。科学家在保护区内研究大熊猫的繁殖和行为，\
并开展人工繁育。经过多年努力，野生大熊猫的数量逐渐回升，大熊猫的保护等级也从濒危调整为易危。\n\n\
大熊猫性格温顺，深受世界各国人民喜爱。中国把大熊猫作为友好使者送往其他国家的动物园，大熊猫已经成为中国的象征。";

pub fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).expect("write fixture");
    p
}

/// A PDF with one page per string, in a standard Type1 font, written with lopdf.
pub fn pdf(pages: &[&str]) -> Vec<u8> {
    use lopdf::content::{Content, Operation};
    use lopdf::{Document, Object, Stream, dictionary};
    let mut doc = Document::with_version("1.5");
    let pages_id = doc.new_object_id();
    let font_id = doc.add_object(dictionary! {
        "Type" => "Font", "Subtype" => "Type1", "BaseFont" => "Helvetica", "Encoding" => "WinAnsiEncoding",
    });
    let resources_id = doc.add_object(dictionary! { "Font" => dictionary! { "F1" => font_id } });
    let mut kids = Vec::new();
    for text in pages {
        let mut ops = vec![
            Operation::new("BT", vec![]),
            Operation::new("Tf", vec!["F1".into(), 11.into()]),
            Operation::new("TL", vec![14.into()]),
            Operation::new("Td", vec![50.into(), 800.into()]),
        ];
        // One line per sentence, so lines stay on the page.
        for line in text.split_inclusive(". ") {
            ops.push(Operation::new(
                "Tj",
                vec![Object::string_literal(line.trim())],
            ));
            ops.push(Operation::new("T*", vec![]));
        }
        ops.push(Operation::new("ET", vec![]));
        let content = Content { operations: ops };
        let content_id = doc.add_object(Stream::new(
            dictionary! {},
            content.encode().expect("encode content"),
        ));
        let page_id = doc.add_object(
            dictionary! { "Type" => "Page", "Parent" => pages_id, "Contents" => content_id },
        );
        kids.push(page_id.into());
    }
    let count = kids.len() as i64;
    doc.objects.insert(
        pages_id,
        Object::Dictionary(dictionary! {
            "Type" => "Pages", "Kids" => kids, "Count" => count, "Resources" => resources_id,
            "MediaBox" => vec![0.into(), 0.into(), 595.into(), 842.into()],
        }),
    );
    let catalog_id = doc.add_object(dictionary! { "Type" => "Catalog", "Pages" => pages_id });
    doc.trailer.set("Root", catalog_id);
    let mut out = Vec::new();
    doc.save_to(&mut out).expect("save pdf");
    out
}

pub fn pdf_pages() -> [&'static str; 3] {
    [
        "The volcano erupted at dawn. Lava from the volcano flowed down the valley. The volcano observatory measured the volcano tremors. Volcano experts warned the villages near the volcano.",
        "The harbour was quiet in winter. Fishing boats stayed in the harbour while storms passed.",
        "The glacier retreats every year. Meltwater from the glacier feeds the river. The glacier lost forty metres. Glacier scientists measure the glacier with drones. The glacier valley is green now.",
    ]
}

/// A 64x48 JPEG (jpeg-encoder) carrying EXIF written by kamadak-exif: make, model, date taken
/// with its offset, GPS coordinates, and the given orientation.
pub fn jpeg_with_exif(orientation: u16) -> Vec<u8> {
    use exif::{Field, In, Rational, Tag, Value};
    let ascii = |s: &str| Value::Ascii(vec![s.as_bytes().to_vec()]);
    let rational = |v: &[(u32, u32)]| {
        Value::Rational(
            v.iter()
                .map(|&(num, denom)| Rational { num, denom })
                .collect(),
        )
    };
    let fields = [
        Field {
            tag: Tag::Make,
            ifd_num: In::PRIMARY,
            value: ascii("Canon"),
        },
        Field {
            tag: Tag::Model,
            ifd_num: In::PRIMARY,
            value: ascii("Canon EOS 5D Mark IV"),
        },
        Field {
            tag: Tag::Orientation,
            ifd_num: In::PRIMARY,
            value: Value::Short(vec![orientation]),
        },
        Field {
            tag: Tag::DateTimeOriginal,
            ifd_num: In::PRIMARY,
            value: ascii("2021:07:14 09:30:05"),
        },
        Field {
            tag: Tag::OffsetTimeOriginal,
            ifd_num: In::PRIMARY,
            value: ascii("+02:00"),
        },
        Field {
            tag: Tag::GPSLatitudeRef,
            ifd_num: In::PRIMARY,
            value: ascii("N"),
        },
        Field {
            tag: Tag::GPSLatitude,
            ifd_num: In::PRIMARY,
            value: rational(&[(48, 1), (51, 1), (2400, 100)]),
        },
        Field {
            tag: Tag::GPSLongitudeRef,
            ifd_num: In::PRIMARY,
            value: ascii("E"),
        },
        Field {
            tag: Tag::GPSLongitude,
            ifd_num: In::PRIMARY,
            value: rational(&[(2, 1), (21, 1), (0, 1)]),
        },
    ];
    let mut w = exif::experimental::Writer::new();
    for f in &fields {
        w.push_field(f);
    }
    let mut tiff = Cursor::new(Vec::new());
    w.write(&mut tiff, false).expect("write exif");
    let (width, height) = (64u16, 48u16);
    let pixels: Vec<u8> = (0..usize::from(width) * usize::from(height))
        .flat_map(|i| [(i % 256) as u8, 80, 160])
        .collect();
    let mut out = Vec::new();
    let mut enc = jpeg_encoder::Encoder::new(&mut out, 85);
    enc.add_exif_metadata(&tiff.into_inner()).expect("add exif");
    enc.encode(&pixels, width, height, jpeg_encoder::ColorType::Rgb)
        .expect("encode jpeg");
    out
}

/// About one second of silent MPEG-1 Layer III: 38 frames of 128 kbit/s at 44.1 kHz (417 bytes
/// each: 4-byte header, zero side info and data, which decoders accept as silence).
pub fn silent_mp3() -> Vec<u8> {
    let mut frame = vec![0u8; 417];
    frame[..4].copy_from_slice(&[0xFF, 0xFB, 0x90, 0x64]);
    frame.repeat(38)
}

/// A FLAC stream header: `fLaC` and a STREAMINFO block for 2 s of 44.1 kHz 16-bit stereo
/// (no audio frames; tag readers only need the header).
pub fn flac_header() -> Vec<u8> {
    let mut out = b"fLaC".to_vec();
    out.extend_from_slice(&[0x80, 0, 0, 34]); // last block, STREAMINFO, 34 bytes
    out.extend_from_slice(&4096u16.to_be_bytes()); // min block size
    out.extend_from_slice(&4096u16.to_be_bytes()); // max block size
    out.extend_from_slice(&[0, 0, 0, 0, 0, 0]); // min/max frame size unknown
    let (rate, channels, bits, samples) = (44_100u64, 2u64, 16u64, 88_200u64);
    let packed = (rate << 44) | ((channels - 1) << 41) | ((bits - 1) << 36) | samples;
    out.extend_from_slice(&packed.to_be_bytes());
    out.extend_from_slice(&[0u8; 16]); // MD5 of the audio: unknown
    out
}

/// Writes artist, album, genre, title and year into a media file with lofty.
pub fn tag_media(path: &Path, tag_type: lofty::tag::TagType) {
    use lofty::config::WriteOptions;
    use lofty::tag::{Accessor, Tag, TagExt};
    let mut tag = Tag::new(tag_type);
    tag.set_artist("Miles Davis".into());
    tag.set_album("Kind of Blue".into());
    tag.set_genre("Jazz".into());
    tag.set_title("So What".into());
    tag.set_date(lofty::tag::items::Timestamp {
        year: 1959,
        ..Default::default()
    });
    tag.save_to_path(path, WriteOptions::default())
        .expect("lofty writes the tag");
}

/// A zip (zip crate) with the given entries, deflated.
pub fn zip(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (name, data) in entries {
        w.start_file(*name, opts).expect("start zip entry");
        w.write_all(data).expect("write zip entry");
    }
    w.finish().expect("finish zip").into_inner()
}

/// A tar.gz (tar + flate2) with the given entries; `big` adds a first entry of that many zero
/// bytes, streamed (a gzip bomb in miniature when large).
pub fn targz(entries: &[(&str, &[u8])], big: u64) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut b = tar::Builder::new(gz);
    if big > 0 {
        let mut h = tar::Header::new_gnu();
        h.set_size(big);
        h.set_mode(0o644);
        b.append_data(
            &mut h,
            "bomb/zeros.bin",
            std::io::Read::take(std::io::repeat(0), big),
        )
        .expect("append big");
    }
    for (name, data) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, name, *data).expect("append");
    }
    b.into_inner()
        .expect("finish tar")
        .finish()
        .expect("finish gzip")
}

/// Deterministic pseudo-random bytes (xorshift), so failures reproduce.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// One Ogg page holding one packet (RFC 3533 layout, CRC from ogg_pager).
fn ogg_page(seq: u32, granule: u64, flags: u8, packet: &[u8]) -> Vec<u8> {
    let mut lacing = vec![255u8; packet.len() / 255];
    lacing.push((packet.len() % 255) as u8);
    let mut page = b"OggS\x00".to_vec();
    page.push(flags);
    page.extend_from_slice(&granule.to_le_bytes());
    page.extend_from_slice(&0x4449_5347u32.to_le_bytes()); // stream serial
    page.extend_from_slice(&seq.to_le_bytes());
    page.extend_from_slice(&[0; 4]); // CRC, filled below
    page.push(lacing.len() as u8);
    page.extend_from_slice(&lacing);
    page.extend_from_slice(packet);
    let crc = ogg_pager::crc32(&page);
    page[22..26].copy_from_slice(&crc.to_le_bytes());
    page
}

/// An Ogg Opus stream of 2 s: OpusHead, empty OpusTags, and one silent packet on a last page
/// whose granule position gives the duration (RFC 7845).
pub fn opus_ogg() -> Vec<u8> {
    let pre_skip = 312u16;
    let mut head = b"OpusHead\x01\x02".to_vec();
    head.extend_from_slice(&pre_skip.to_le_bytes());
    head.extend_from_slice(&48_000u32.to_le_bytes());
    head.extend_from_slice(&[0, 0, 0]); // output gain, mapping family 0
    let mut tags = b"OpusTags".to_vec();
    tags.extend_from_slice(&6u32.to_le_bytes());
    tags.extend_from_slice(b"tester");
    tags.extend_from_slice(&0u32.to_le_bytes());
    let mut out = ogg_page(0, 0, 0x02, &head);
    out.extend(ogg_page(1, 0, 0x00, &tags));
    out.extend(ogg_page(
        2,
        2 * 48_000 + u64::from(pre_skip),
        0x04,
        &[0xF8, 0xFF, 0xFE],
    ));
    out
}
