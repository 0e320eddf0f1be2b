# OCR (the tagger's `ocr` extractor, crates/tagger/src/ocr.rs): Tesseract with its English and
# Simplified Chinese data, run as an isolated child. Its tests draw text into images with
# ImageMagick and a DejaVu font. Without Tesseract OCR is simply off (`disgrafs serve` says so).
need_debs tesseract-ocr tesseract-ocr-eng tesseract-ocr-chi-sim imagemagick fonts-dejavu-core
# Installed, so the tests must run: with this set, an OCR test that finds no Tesseract fails
# instead of skipping.
export DISGRAFS_REQUIRE_OCR="${DISGRAFS_REQUIRE_OCR:-1}"
