"""The TF.js graph → ONNX converter on small graphs made here: ops it converts match numpy; others are named."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sharpeye.ingest.camera.tfjs import ConversionError, convert


def _graph(tmp_path: Path, nodes: list[dict[str, Any]], weights: dict[str, np.ndarray], side: int = 8) -> Path:
    manifest = []
    blob = b""
    for name, value in weights.items():
        if value.dtype == np.float32:
            manifest.append({"name": name, "shape": list(value.shape), "dtype": "float32",
                             "quantization": {"dtype": "float16", "original_dtype": "float32"}})  # fmt: skip
            blob += value.astype(np.float16).tobytes()
        else:
            manifest.append({"name": name, "shape": list(value.shape), "dtype": "int32"})
            blob += value.astype(np.int32).tobytes()
    placeholder = {"name": "input_1", "op": "Placeholder", "attr": {"dtype": {"type": "DT_FLOAT"}, "shape": {
        "shape": {"dim": [{"size": "1"}, {"size": "3"}, {"size": str(side)}, {"size": str(side)}]}}}}  # fmt: skip
    consts = [{"name": n, "op": "Const"} for n in weights]
    outputs = [n["name"] for n in nodes if n["op"] == "Identity"]
    free = {"tensorShape": {"dim": [{"size": "-1"}] * 4}}
    spec = {
        "format": "graph-model",
        "signature": {"outputs": {f"{o}:0": free for o in outputs}},
        "modelTopology": {"node": [placeholder, *consts, *nodes]},
        "weightsManifest": [{"paths": ["w.bin"], "weights": manifest}],
    }
    (tmp_path / "w.bin").write_bytes(blob)
    path = tmp_path / "model.json"
    path.write_text(json.dumps(spec))
    return path


def _run(model: Path, x: np.ndarray) -> list[np.ndarray]:
    import onnxruntime as ort

    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    out: list[np.ndarray] = session.run(None, {"input_1": x})
    return out


def test_transpose_conv_bias_leaky_relu_and_split_match_numpy(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    kernel = rng.normal(size=(1, 1, 3, 4)).astype(np.float32)  # HWIO: a 1x1 convolution, 3 → 4 channels
    bias = rng.normal(size=(4,)).astype(np.float32)
    nodes = [
        {"name": "t", "op": "Transpose", "input": ["input_1", "perm"]},
        {"name": "conv", "op": "Conv2D", "input": ["t", "kernel"], "attr": {
            "padding": {"s": "VkFMSUQ="}, "data_format": {"s": "TkhXQw=="},
            "strides": {"list": {"i": ["1", "1", "1", "1"]}}, "dilations": {"list": {"i": ["1", "1", "1", "1"]}}}},
        {"name": "add", "op": "Add", "input": ["conv", "bias"]},
        {"name": "relu", "op": "LeakyRelu", "input": ["add"], "attr": {"alpha": {"f": 0.1}}},
        {"name": "split", "op": "SplitV", "input": ["relu", "sizes", "axis"], "attr": {"num_split": {"i": "2"}}},
        {"name": "Identity", "op": "Identity", "input": ["split"]},
        {"name": "Identity_1", "op": "Identity", "input": ["split:1"]},
    ]  # fmt: skip
    weights = {"perm": np.array([0, 2, 3, 1]), "kernel": kernel, "bias": bias, "sizes": np.array([1, 3]),
               "axis": np.array(-1)}  # fmt: skip
    out = tmp_path / "m.onnx"
    described = convert(_graph(tmp_path, nodes, weights), out)
    assert described["inputs"]["input_1"] == [1, 3, "height", "width"]  # the image size is left free
    x = rng.normal(size=(1, 3, 8, 8)).astype(np.float32)
    first, rest = _run(out, x)
    k = kernel.astype(np.float16).astype(np.float32)[0, 0]
    y = x.transpose(0, 2, 3, 1) @ k + bias.astype(np.float16).astype(np.float32)
    y = np.where(y > 0, y, 0.1 * y)
    assert np.allclose(first, y[..., :1], atol=1e-4) and np.allclose(rest, y[..., 1:], atol=1e-4)
    # Another input size runs too.
    assert _run(out, rng.normal(size=(1, 3, 16, 16)).astype(np.float32))[0].shape == (1, 16, 16, 1)


def test_an_unsupported_op_is_named(tmp_path: Path) -> None:
    nodes = [{"name": "soft", "op": "Softplus", "input": ["input_1"]}, {"name": "Identity", "op": "Identity",
             "input": ["soft"]}]  # fmt: skip
    with pytest.raises(ConversionError, match="Softplus"):
        convert(_graph(tmp_path, nodes, {}), tmp_path / "m.onnx")
