//! Image labels: what a photo shows (`dog`, `bird`, `keyboard`), from a local ImageNet
//! classifier (EfficientNet-Lite0 as ONNX, run by tract-onnx, pure Rust).
//!
//! The files live in the models directory the user points at ([`configure`]: `disgrafs serve
//! --models DIR`, `disgrafs worker --models DIR` or `DISGRAFS_MODELS`), as
//! `scripts/deps.d/77-labels.sh` installs them:
//!
//! - [`MODEL_FILE`]: the classifier, input `1x3x224x224` RGB scaled as `(x - 127) / 128`,
//!   output 1000 logits;
//! - [`LABELS_FILE`]: one class a line, in the model's order: `WORDNET_ID<TAB>short name`;
//! - [`TREE_FILE`] and [`NAMES_FILE`]: the WordNet hierarchy (darknet's `9k.tree`: `ID PARENT`
//!   a line, PARENT the line number of the parent or -1; `9k.names`: a name a line).
//!
//! A class above [`MIN_CONFIDENCE`] becomes a tag (at most [`MAX_CLASS_TAGS`]) with its
//! probability, named by its short name in lower case with hyphens (`golden-retriever`). Its
//! coarse WordNet ancestors become tags too, with the summed probability of every class under
//! them (so a photo the model thinks is a malamute or a husky is surely a `dog`). Only useful
//! levels are kept: an ancestor at most [`MAX_LEVELS`] above some class, covering at most
//! [`MAX_GROUP_CLASSES`] of the classes (above that, `mammal`, `artifact`, `object` say
//! little), at least [`MIN_CONFIDENCE`] summed, at most [`MAX_ANCESTOR_TAGS`] of them, the most
//! probable first.
//!
//! Nothing is read unless configured, and nothing is downloaded. Without the files the
//! extractor is off: left out of [`crate::extractor_versions`] (so `disgrafs retag` labels what
//! was stored before once the files are there), and [`status`] says why. Bounded: files of at
//! most [`MAX_LABEL_BYTES`] and [`MAX_LABEL_PIXELS`] (as the header says, and the decoder is held
//! to it), decoded by the `image` crate (pure Rust) through the deadline-checked reader; one
//! inference is a fixed amount of work (about 0.4 GFLOP), run in the tagging thread.

use crate::Collector;
use image::ImageDecoder;
use std::collections::HashMap;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use tract_onnx::prelude::*;

pub const VERSION: u32 = 1;

pub const MODEL_FILE: &str = "efficientnet_lite0.onnx";
pub const LABELS_FILE: &str = "labels.txt";
pub const TREE_FILE: &str = "9k.tree";
pub const NAMES_FILE: &str = "9k.names";

/// Larger image files are not labelled.
pub const MAX_LABEL_BYTES: u64 = 32 << 20;
/// Larger images (width × height) are not labelled: decoding costs memory and time in
/// proportion (3 bytes a pixel at least).
pub const MAX_LABEL_PIXELS: u64 = 40_000_000;
/// Classes and ancestors below this probability make no tag.
pub const MIN_CONFIDENCE: f32 = 0.15;
/// Tags from classes, the most probable first.
pub const MAX_CLASS_TAGS: usize = 3;
/// Tags from WordNet ancestors.
pub const MAX_ANCESTOR_TAGS: usize = 3;
/// An ancestor more levels than this above every class is too abstract to be a tag.
pub const MAX_LEVELS: usize = 3;
/// An ancestor over more classes than this (of 1000) is too general to be a tag: `dog` (118)
/// and `bird` (59) are kept, `carnivore` (158) and `mammal` (218) are not.
pub const MAX_GROUP_CLASSES: usize = 130;
/// The model file may not be larger (the one installed is 18 MB).
const MAX_MODEL_BYTES: u64 = 256 << 20;
/// The classifier's input side, in pixels.
const SIZE: u32 = 224;
/// The shorter side is resized to this before the centre crop of [`SIZE`] (the crop keeps
/// 87.5 % of it, as EfficientNet's evaluation does).
const RESIZE: u32 = 256;
const MEAN: f32 = 127.0;
const STD: f32 = 128.0;

/// One label of an image.
#[derive(Debug, Clone, PartialEq)]
pub struct Label {
    /// The tag's name (`golden-retriever`, `dog`).
    pub name: String,
    /// The probability (summed over its classes for an ancestor).
    pub confidence: f32,
    /// A WordNet ancestor rather than a class of the model.
    pub ancestor: bool,
}

/// A WordNet group of classes: an ancestor that can be a tag.
#[derive(Debug)]
struct Group {
    name: String,
    classes: Vec<u16>,
}

/// The loaded classifier and its class names.
pub struct Labeler {
    plan: Arc<TypedRunnableModel>,
    /// Tag names, in the model's class order.
    classes: Vec<String>,
    groups: Vec<Group>,
    dir: PathBuf,
}

impl std::fmt::Debug for Labeler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Labeler")
            .field("classes", &self.classes.len())
            .field("groups", &self.groups.len())
            .finish()
    }
}

/// `German shepherd` → `german-shepherd`: one word, so that a query needs no quotes.
fn tag_name(name: &str) -> String {
    name.split(|c: char| c.is_whitespace() || c == '_')
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join("-")
        .to_lowercase()
}

fn read_text(dir: &Path, file: &str) -> Result<String, String> {
    std::fs::read_to_string(dir.join(file))
        .map_err(|e| format!("cannot read {}: {e}", dir.join(file).display()))
}

impl Labeler {
    /// Loads the model and the names from `dir`; the error says what is missing or wrong.
    pub fn load(dir: &Path) -> Result<Labeler, String> {
        let model_path = dir.join(MODEL_FILE);
        let size = std::fs::metadata(&model_path)
            .map_err(|e| format!("no {}: {e}", model_path.display()))?
            .len();
        if size > MAX_MODEL_BYTES {
            return Err(format!("{} is larger than expected", model_path.display()));
        }
        let classes: Vec<(String, String)> = read_text(dir, LABELS_FILE)?
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                let (id, name) = l.split_once('\t').unwrap_or((l, l));
                (id.trim().to_string(), name.trim().to_string())
            })
            .collect();
        if classes.is_empty() || classes.len() > u16::MAX as usize {
            return Err(format!("{LABELS_FILE}: {} classes", classes.len()));
        }
        let groups = groups(dir, &classes)?;
        let plan = tract_onnx::onnx()
            .model_for_path(&model_path)
            .and_then(|m| {
                m.with_input_fact(0, f32::fact([1, 3, SIZE as usize, SIZE as usize]).into())
            })
            .and_then(|m| m.into_optimized())
            .and_then(|m| m.into_runnable())
            .map_err(|e| format!("cannot load {}: {e:#}", model_path.display()))?;
        let labeler = Labeler {
            plan,
            classes: classes.iter().map(|(_, n)| tag_name(n)).collect(),
            groups,
            dir: dir.to_path_buf(),
        };
        // One run on a blank image proves the model's output matches the names.
        let n = labeler
            .logits(&vec![0.0; 3 * (SIZE * SIZE) as usize])?
            .len();
        if n != labeler.classes.len() {
            return Err(format!(
                "{MODEL_FILE} gives {n} classes, {LABELS_FILE} names {}",
                labeler.classes.len()
            ));
        }
        Ok(labeler)
    }

    /// For the start-up line: `EfficientNet-Lite0, 1000 classes, 300 groups, from DIR`.
    pub fn summary(&self) -> String {
        format!(
            "EfficientNet-Lite0, {} classes, {} groups, from {}",
            self.classes.len(),
            self.groups.len(),
            self.dir.display()
        )
    }

    /// The model's logits for one preprocessed image (`3 x SIZE x SIZE`, planar RGB).
    fn logits(&self, input: &[f32]) -> Result<Vec<f32>, String> {
        let s = SIZE as usize;
        let tensor = Tensor::from_shape(&[1, 3, s, s], input).map_err(|e| e.to_string())?;
        let out = self
            .plan
            .run(tvec!(tensor.into()))
            .map_err(|e| format!("inference failed: {e:#}"))?;
        let view = out[0]
            .to_plain_array_view::<f32>()
            .map_err(|e| format!("unexpected output: {e}"))?;
        Ok(view.iter().copied().collect())
    }

    /// The labels of a decoded image, best first: classes, then ancestors.
    pub fn classify(&self, image: &image::RgbImage) -> Result<Vec<Label>, String> {
        let logits = self.logits(&preprocess(image))?;
        Ok(pick(&self.classes, &self.groups, &softmax(&logits)))
    }
}

/// Labels from class probabilities `p` (see the module's documentation for the rule).
fn pick(names: &[String], groups: &[Group], p: &[f32]) -> Vec<Label> {
    // Classes sharing a short name (`crane` the bird and the machine) add up.
    let mut by_name: HashMap<&str, f32> = HashMap::new();
    for (name, &q) in names.iter().zip(p) {
        *by_name.entry(name).or_default() += q;
    }
    let mut classes: Vec<Label> = by_name
        .into_iter()
        .filter(|&(_, q)| q >= MIN_CONFIDENCE)
        .map(|(name, q)| Label {
            name: name.to_string(),
            confidence: q.min(1.0),
            ancestor: false,
        })
        .collect();
    classes.sort_by(|a, b| {
        b.confidence
            .total_cmp(&a.confidence)
            .then(a.name.cmp(&b.name))
    });
    classes.truncate(MAX_CLASS_TAGS);
    let mut ancestors: Vec<Label> = groups
        .iter()
        .map(|g| Label {
            name: g.name.clone(),
            confidence: g
                .classes
                .iter()
                .map(|&c| p.get(c as usize).copied().unwrap_or(0.0))
                .sum::<f32>()
                .min(1.0),
            ancestor: true,
        })
        .filter(|l| l.confidence >= MIN_CONFIDENCE && !classes.iter().any(|c| c.name == l.name))
        .collect();
    ancestors.sort_by(|a, b| {
        b.confidence
            .total_cmp(&a.confidence)
            .then(a.name.cmp(&b.name))
    });
    ancestors.dedup_by(|a, b| a.name == b.name);
    ancestors.truncate(MAX_ANCESTOR_TAGS);
    classes.extend(ancestors);
    classes
}

/// The WordNet ancestors that may become tags (see [`MAX_LEVELS`], [`MAX_GROUP_CLASSES`]), each
/// with every class under it.
fn groups(dir: &Path, classes: &[(String, String)]) -> Result<Vec<Group>, String> {
    let tree = read_text(dir, TREE_FILE)?;
    let names = read_text(dir, NAMES_FILE)?;
    let names: Vec<&str> = names.lines().collect();
    let mut ids = Vec::new();
    let mut parents = Vec::new();
    for (i, line) in tree.lines().enumerate() {
        let mut parts = line.split_whitespace();
        let (Some(id), Some(parent)) = (parts.next(), parts.next()) else {
            return Err(format!("{TREE_FILE}:{}: not `ID PARENT`", i + 1));
        };
        let parent: i64 = parent
            .parse()
            .map_err(|_| format!("{TREE_FILE}:{}: bad parent {parent:?}", i + 1))?;
        // A parent comes before its children, so walking up always ends.
        if parent >= i as i64 {
            return Err(format!("{TREE_FILE}:{}: parent after child", i + 1));
        }
        ids.push(id);
        parents.push(usize::try_from(parent).ok());
    }
    if names.len() < ids.len() {
        return Err(format!("{NAMES_FILE} has fewer lines than {TREE_FILE}"));
    }
    let index: HashMap<&str, usize> = ids.iter().enumerate().map(|(i, id)| (*id, i)).collect();
    // Node → (classes under it, fewest levels above one of them).
    let mut under: HashMap<usize, (Vec<u16>, usize)> = HashMap::new();
    for (c, (id, _)) in classes.iter().enumerate() {
        let Some(&leaf) = index.get(id.as_str()) else {
            continue;
        };
        let mut node = parents[leaf];
        let mut level = 1;
        while let Some(n) = node {
            let e = under.entry(n).or_insert((Vec::new(), usize::MAX));
            e.0.push(c as u16);
            e.1 = e.1.min(level);
            node = parents[n];
            level += 1;
        }
    }
    let mut groups: Vec<Group> = under
        .into_iter()
        .filter(|(_, (cs, level))| *level <= MAX_LEVELS && cs.len() <= MAX_GROUP_CLASSES)
        .map(|(n, (classes, _))| Group {
            name: tag_name(names[n]),
            classes,
        })
        .collect();
    groups.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(groups)
}

fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exp: Vec<f32> = logits.iter().map(|&x| (x - max).exp()).collect();
    let sum: f32 = exp.iter().sum();
    exp.into_iter().map(|e| e / sum).collect()
}

/// Shorter side to [`RESIZE`] (bilinear), centre crop of [`SIZE`], planar RGB scaled as the
/// model was trained.
fn preprocess(img: &image::RgbImage) -> Vec<f32> {
    let (w, h) = img.dimensions();
    let short = w.min(h).max(1);
    let scale = |x: u32| ((x as u64 * RESIZE as u64 + short as u64 / 2) / short as u64) as u32;
    let (rw, rh) = (scale(w).max(SIZE), scale(h).max(SIZE));
    let resized = image::imageops::resize(img, rw, rh, image::imageops::FilterType::Triangle);
    let (x0, y0) = ((rw - SIZE) / 2, (rh - SIZE) / 2);
    let plane = (SIZE * SIZE) as usize;
    let mut out = vec![0.0f32; 3 * plane];
    for y in 0..SIZE {
        for x in 0..SIZE {
            let px = resized.get_pixel(x0 + x, y0 + y).0;
            let i = (y * SIZE + x) as usize;
            for (ch, v) in px.iter().enumerate() {
                out[ch * plane + i] = (*v as f32 - MEAN) / STD;
            }
        }
    }
    out
}

/// Decodes an image within the bounds, from a reader (the file through the tagging deadline).
pub fn decode<R: std::io::BufRead + std::io::Seek>(r: R) -> Result<image::RgbImage, String> {
    let mut reader = image::ImageReader::new(r)
        .with_guessed_format()
        .map_err(|e| format!("cannot read: {e}"))?;
    let mut limits = image::Limits::default();
    let side = u32::try_from(MAX_LABEL_PIXELS).unwrap_or(u32::MAX);
    limits.max_image_width = Some(side);
    limits.max_image_height = Some(side);
    // The decoded pixels (up to 4 bytes each, RGBA) and the decoder's own buffers.
    limits.max_alloc = Some(MAX_LABEL_PIXELS * 4 + (64 << 20));
    reader.limits(limits);
    let mut decoder = reader
        .into_decoder()
        .map_err(|e| format!("cannot decode: {e}"))?;
    let (w, h) = decoder.dimensions();
    if w as u64 * h as u64 > MAX_LABEL_PIXELS {
        return Err(format!("{w}x{h} is over {MAX_LABEL_PIXELS} pixels"));
    }
    let orientation = decoder.orientation().ok();
    let mut img =
        image::DynamicImage::from_decoder(decoder).map_err(|e| format!("cannot decode: {e}"))?;
    if let Some(o) = orientation {
        img.apply_orientation(o);
    }
    Ok(img.into_rgb8())
}

static MODELS: OnceLock<PathBuf> = OnceLock::new();
static LABELER: OnceLock<Result<Labeler, String>> = OnceLock::new();

/// Sets the models directory of this process (`--models`); the first call counts. Until it is
/// called the extractor is off.
pub fn configure(dir: &Path) {
    MODELS.get_or_init(|| dir.to_path_buf());
}

/// The loaded classifier, or why it is off. Loads it on the first call after [`configure`]
/// (about a second), once: a model that did not load stays off until the process restarts.
pub fn status() -> Result<&'static Labeler, &'static str> {
    let Some(dir) = MODELS.get() else {
        return Err("image labels off: no models directory (--models DIR or DISGRAFS_MODELS)");
    };
    LABELER
        .get_or_init(|| {
            Labeler::load(dir).map_err(|e| {
                format!("image labels off: {e} (scripts/deps.d/77-labels.sh installs the files)")
            })
        })
        .as_ref()
        .map_err(String::as_str)
}

/// Whether the image type is decoded here.
fn supports(mime: &str) -> bool {
    matches!(
        mime,
        "image/png" | "image/jpeg" | "image/gif" | "image/webp" | "image/bmp"
    )
}

pub(crate) fn tag_labels(c: &mut Collector, path: &Path, mime: &str) {
    let Ok(labeler) = status() else {
        return;
    };
    if !supports(mime) {
        return;
    }
    if !crate::image::within_bounds(c, "labels", path, MAX_LABEL_BYTES, MAX_LABEL_PIXELS) {
        return;
    }
    let Some(mut file) = c.open("labels", path) else {
        return;
    };
    let decoded = decode(BufReader::new(&mut file));
    c.count_read(&file);
    let img = match decoded {
        Ok(img) => img,
        Err(e) => {
            c.warn(format!("labels: {e}"));
            return;
        }
    };
    if c.deadline.passed() {
        return;
    }
    match labeler.classify(&img) {
        Ok(labels) => {
            for l in labels {
                c.tag("labels", VERSION, &l.name, l.confidence as f64);
            }
        }
        Err(e) => c.warn(format!("labels: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_names_are_one_lower_case_word() {
        assert_eq!(tag_name("German shepherd"), "german-shepherd");
        assert_eq!(tag_name("  bird of  prey "), "bird-of-prey");
        assert_eq!(tag_name("dog"), "dog");
    }

    /// A small hierarchy: classes' probabilities add up in their ancestors; ancestors too high
    /// above every class, or over too many classes, make no tag.
    #[test]
    fn ancestors_sum_their_classes_within_the_levels() {
        let dir = tempfile::tempdir().unwrap();
        let tree = "n0 -1\nn1 0\nn2 1\nn3 2\nn4 3\nn5 3\nn6 2\nn7 6\n";
        let names = "entity\nanimal\nmammal\ndog\nmalamute\nhusky\nfeline\ntabby cat\n";
        std::fs::write(dir.path().join(TREE_FILE), tree).unwrap();
        std::fs::write(dir.path().join(NAMES_FILE), names).unwrap();
        let classes: Vec<(String, String)> =
            [("n4", "malamute"), ("n5", "husky"), ("n7", "tabby cat")]
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect();
        let groups = groups(dir.path(), &classes).unwrap();
        let mut names: Vec<&str> = groups.iter().map(|g| g.name.as_str()).collect();
        names.sort();
        // entity is 4 levels above every class.
        assert_eq!(names, ["animal", "dog", "feline", "mammal"]);
        let tags: Vec<String> = classes.iter().map(|(_, n)| tag_name(n)).collect();
        let l = pick(&tags, &groups, &[0.3, 0.3, 0.4]);
        let got: Vec<(&str, bool)> = l.iter().map(|l| (l.name.as_str(), l.ancestor)).collect();
        assert_eq!(
            got,
            [
                ("tabby-cat", false),
                ("husky", false),
                ("malamute", false),
                ("animal", true),
                ("mammal", true),
                ("dog", true),
            ]
        );
        assert!((l[5].confidence - 0.6).abs() < 1e-6);
        // Below the threshold: no tag at all.
        assert!(pick(&tags, &groups, &[0.04, 0.04, 0.04]).is_empty());
    }

    #[test]
    fn a_tree_with_a_parent_after_its_child_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(TREE_FILE), "n0 1\nn1 -1\n").unwrap();
        std::fs::write(dir.path().join(NAMES_FILE), "a\nb\n").unwrap();
        assert!(groups(dir.path(), &[]).is_err());
    }

    /// Nothing in this test binary configures a models directory: the extractor is off, says
    /// so, is not among the versions, and tags no image.
    #[test]
    fn without_a_models_directory_the_extractor_is_off() {
        let why = status().unwrap_err();
        assert!(why.starts_with("image labels off"), "{why}");
        assert!(
            !crate::extractor_versions()
                .iter()
                .any(|(n, _)| *n == "labels")
        );
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.png");
        let mut png = Vec::new();
        image::RgbImage::new(64, 48)
            .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        std::fs::write(&p, png).unwrap();
        let t = crate::tag_file(&p, "a.png").unwrap();
        assert_eq!(t.fields.get("width").map(String::as_str), Some("64"));
        assert!(!t.tags.iter().any(|t| t.extractor == "labels"));
        assert!(!t.versions.contains_key("labels"));
    }
}
