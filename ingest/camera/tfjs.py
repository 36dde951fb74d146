"""A converter of TensorFlow.js graph models (``model.json`` + weight shards) to ONNX, for the ops NanoDet uses.

The model the hub detects objects with arrives from the npm registry as a TF.js graph (see ``model.py``); neither
onnxruntime nor OpenCV reads that format, so ``convert`` rewrites it once, at install time, with the ``onnx``
package. Sub-graphs whose inputs are all constants (the shape arithmetic the TF.js converter left behind) are
evaluated here with numpy; every other node becomes ONNX nodes. TF's NHWC convolutions and pools are wrapped in
transposes to ONNX's NCHW (onnxruntime folds most of them away). An unknown op is an error naming it.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import numpy as np

OPSET = 17
NCHW = [0, 3, 1, 2]
NHWC = [0, 2, 3, 1]

_DTYPES = {"float32": np.float32, "int32": np.int32, "int64": np.int64, "bool": np.bool_}


class ConversionError(ValueError):
    """The model uses something this converter does not handle."""


def load_weights(manifest: list[dict[str, Any]], root: Path) -> dict[str, np.ndarray]:
    """Decode the weight shards: float16-quantized floats are widened back to float32."""
    out: dict[str, np.ndarray] = {}
    for group in manifest:
        data = b"".join((root / p).read_bytes() for p in group["paths"])
        offset = 0
        for spec in group["weights"]:
            shape = [int(d) for d in spec["shape"]]
            count = int(np.prod(shape)) if shape else 1
            quant = spec.get("quantization")
            if quant is not None:
                if quant.get("dtype") != "float16":
                    raise ConversionError(f"weight {spec['name']}: quantization {quant.get('dtype')} not supported")
                raw = np.frombuffer(data, np.float16, count, offset)
                offset += count * 2
                array = raw.astype(np.float32)
            else:
                dtype = _DTYPES.get(spec["dtype"])
                if dtype is None:
                    raise ConversionError(f"weight {spec['name']}: dtype {spec['dtype']} not supported")
                size = np.dtype(dtype).itemsize
                array = np.frombuffer(data, dtype, count, offset).copy()
                offset += count * size
            out[spec["name"]] = array.reshape(shape)
        if offset != len(data):
            raise ConversionError(f"weights: {len(data) - offset} bytes left over in {group['paths']}")
    return out


def _ints(attr: dict[str, Any], key: str) -> list[int]:
    return [int(i) for i in attr.get(key, {}).get("list", {}).get("i", [])]


def _text(attr: dict[str, Any], key: str) -> str:
    raw = attr.get(key, {}).get("s")
    return base64.b64decode(raw).decode() if raw else ""


def _ref(name: str) -> tuple[str, int]:
    """A TF input reference: ``node`` or ``node:k`` → (node, k)."""
    if ":" in name:
        node, k = name.rsplit(":", 1)
        return node, int(k)
    return name, 0


def _fold(op: str, inputs: list[np.ndarray], attr: dict[str, Any]) -> np.ndarray | None:
    """Evaluate an op over constants; None when it is not a shape-arithmetic op we fold."""
    if op in ("Add", "AddV2"):
        return np.asarray(inputs[0] + inputs[1])
    if op == "Identity":
        return inputs[0]
    if op == "SparseToDense":
        indices, shape, values, default = inputs
        dense = np.full([int(d) for d in np.atleast_1d(shape)], default, dtype=np.asarray(values).dtype)
        idx = np.asarray(indices).reshape(-1, max(1, dense.ndim))
        vals = np.broadcast_to(np.asarray(values), (idx.shape[0],))
        for row, v in zip(idx, vals, strict=True):
            dense[tuple(int(i) for i in row)] = v
        return dense
    if op == "Cast":
        return inputs[0].astype(np.int64)
    if op == "Reshape":
        return inputs[0].reshape([int(d) for d in inputs[1]])
    return None


class _Builder:
    def __init__(self) -> None:
        from onnx import helper, numpy_helper

        self.helper = helper
        self.numpy_helper = numpy_helper
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self._n = 0

    def const(self, value: np.ndarray, hint: str) -> str:
        self._n += 1
        name = f"{hint}__c{self._n}"
        self.initializers.append(self.numpy_helper.from_array(np.asarray(value), name))
        return name

    def node(self, op: str, inputs: list[str], outputs: list[str] | None = None, hint: str = "t", **kw: Any) -> str:
        self._n += 1
        outs = outputs or [f"{hint}__{op}{self._n}"]
        self.nodes.append(self.helper.make_node(op, inputs, outs, name=f"{hint}__n{self._n}", **kw))
        return outs[0]


def convert(model_json: Path, output: Path) -> dict[str, Any]:
    """Convert a TF.js graph model to an ONNX file at ``output``; returns its input and output description."""
    import onnx
    from onnx import TensorProto, helper

    spec = json.loads(model_json.read_text())
    if spec.get("format") != "graph-model":
        raise ConversionError(f"{model_json}: format {spec.get('format')!r}, not a TF.js graph model")
    consts = load_weights(spec["weightsManifest"], model_json.parent)
    nodes = {n["name"]: n for n in spec["modelTopology"]["node"]}
    b = _Builder()
    tensors: dict[tuple[str, int], str] = {}  # TF output → ONNX value name
    values: dict[tuple[str, int], np.ndarray] = {(k, 0): v for k, v in consts.items()}
    graph_inputs: list[Any] = []
    image_input: tuple[str, int] | None = None  # the image placeholder and its side in the TF.js model

    def const_of(ref: str) -> np.ndarray:
        key = _ref(ref)
        if key not in values:
            raise ConversionError(f"{ref} must be a constant")
        return values[key]

    def tensor(ref: str) -> str:
        key = _ref(ref)
        if key in tensors:
            return tensors[key]
        if key in values:
            tensors[key] = b.const(values[key], key[0].replace("/", "_"))
            return tensors[key]
        raise ConversionError(f"no value for {ref}")

    def nhwc(name: str, op: str, extra: list[str], hint: str, **attrs: Any) -> str:
        """``op`` (an NCHW ONNX op) applied to the NHWC tensor ``name``, the result back in NHWC."""
        x = b.node("Transpose", [name], hint=hint, perm=NCHW)
        y = b.node(op, [x, *extra], hint=hint, **attrs)
        return b.node("Transpose", [y], hint=hint, perm=NHWC)

    def pad_pairs(paddings: np.ndarray) -> list[int]:
        p = np.asarray(paddings).reshape(-1, 2)
        return [int(v) for v in p[:, 0]] + [int(v) for v in p[:, 1]]

    order: list[str] = []
    state: dict[str, int] = {}

    def visit(name: str) -> None:
        stack = [(name, False)]
        while stack:
            n, done = stack.pop()
            if done:
                state[n] = 2
                order.append(n)
                continue
            if state.get(n):
                continue
            state[n] = 1
            stack.append((n, True))
            for i in nodes[n].get("input", []):
                dep = _ref(i.lstrip("^"))[0]
                if dep in nodes and not state.get(dep):
                    stack.append((dep, False))

    for name in nodes:
        visit(name)

    outputs: list[str] = []
    for name in order:
        node = nodes[name]
        op = node["op"]
        attr = node.get("attr", {})
        ins = [i for i in node.get("input", []) if not i.startswith("^")]
        if op == "Const":
            if (name, 0) not in values:
                raise ConversionError(f"constant {name} has no weight")
            continue
        if op == "Placeholder":
            dims = [int(d.get("size", -1)) for d in attr["shape"]["shape"]["dim"]]
            if len(dims) == 4 and dims[1] == 3 and dims[2] > 0 and dims[2] == dims[3]:
                # An NCHW image: its height and width become free (multiples of the largest stride) and every
                # fixed resize size becomes a fraction of them, so one model serves any input size.
                image_input = (name, dims[2])
                free: list[int | str] = [dims[0], 3, "height", "width"]
                graph_inputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, free))
            else:
                graph_inputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, dims))
            tensors[(name, 0)] = name
            continue
        if all(_ref(i) in values for i in ins):
            folded = _fold(op, [values[_ref(i)] for i in ins], attr)
            if folded is None:
                raise ConversionError(f"cannot fold constant op {op} ({name})")
            values[(name, 0)] = folded
            continue
        hint = name.replace("/", "_")
        if op in ("Add", "AddV2"):
            out = b.node("Add", [tensor(ins[0]), tensor(ins[1])], hint=hint)
        elif op == "Identity":
            out = b.node("Identity", [tensor(ins[0])], [name], hint=hint)
            outputs.append(name)
        elif op == "Sigmoid":
            out = b.node("Sigmoid", [tensor(ins[0])], hint=hint)
        elif op == "LeakyRelu":
            out = b.node("LeakyRelu", [tensor(ins[0])], hint=hint, alpha=float(attr.get("alpha", {}).get("f", 0.2)))
        elif op == "Transpose":
            out = b.node("Transpose", [tensor(ins[0])], hint=hint, perm=[int(v) for v in const_of(ins[1])])
        elif op in ("Pad", "PadV2"):
            pads = b.const(np.asarray(pad_pairs(const_of(ins[1])), np.int64), hint)
            fill = [b.const(np.asarray(const_of(ins[2]), np.float32).reshape(()), hint)] if op == "PadV2" else []
            out = b.node("Pad", [tensor(ins[0]), pads, *fill], hint=hint, mode="constant")
        elif op == "Reshape":
            shape = b.const(np.asarray(const_of(ins[1]), np.int64).reshape(-1), hint)
            out = b.node("Reshape", [tensor(ins[0]), shape], hint=hint)
        elif op == "ConcatV2":
            axis = int(const_of(ins[-1]))
            out = b.node("Concat", [tensor(i) for i in ins[:-1]], hint=hint, axis=axis)
        elif op == "SplitV":
            sizes = b.const(np.asarray(const_of(ins[1]), np.int64).reshape(-1), hint)
            axis = int(const_of(ins[2]))
            n = int(attr["num_split"]["i"])
            outs = [f"{hint}__split{k}" for k in range(n)]
            b.node("Split", [tensor(ins[0]), sizes], outs, hint=hint, axis=axis)
            for k, o in enumerate(outs):
                tensors[(name, k)] = o
            continue
        elif op == "Conv2D":
            if _text(attr, "data_format") not in ("", "NHWC"):
                raise ConversionError(f"{name}: data_format {_text(attr, 'data_format')}")
            kernel = const_of(ins[1])  # HWIO
            weight = b.const(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1)).astype(np.float32), hint)
            strides = _ints(attr, "strides")[1:3]
            dilations = _ints(attr, "dilations")[1:3] or [1, 1]
            padding = _text(attr, "padding")
            if padding not in ("VALID", "SAME"):
                raise ConversionError(f"{name}: padding {padding}")
            auto = "SAME_UPPER" if padding == "SAME" else "VALID"
            out = nhwc(
                tensor(ins[0]), "Conv", [weight], hint, strides=strides, dilations=dilations, auto_pad=auto,
                kernel_shape=[int(kernel.shape[0]), int(kernel.shape[1])],
            )  # fmt: skip
        elif op == "MaxPool":
            ksize = _ints(attr, "ksize")[1:3]
            strides = _ints(attr, "strides")[1:3]
            auto = "SAME_UPPER" if _text(attr, "padding") == "SAME" else "VALID"
            out = nhwc(tensor(ins[0]), "MaxPool", [], hint, kernel_shape=ksize, strides=strides, auto_pad=auto)
        elif op == "ResizeBilinear":
            if attr.get("align_corners", {}).get("b"):
                raise ConversionError(f"{name}: align_corners not supported")
            mode = "half_pixel" if attr.get("half_pixel_centers", {}).get("b") else "asymmetric"
            size = np.asarray(const_of(ins[1]), np.int64).reshape(-1)
            x = tensor(ins[0])
            # Output sizes [N, C, h, w]: N and C from the input's shape (NHWC: dims 0 and 3); h and w the fixed
            # size, or, for a free image input, the same fraction of the image's height and width.
            shape = b.node("Shape", [x], hint=hint)
            nc = b.node("Gather", [shape, b.const(np.array([0, 3], np.int64), hint)], hint=hint, axis=0)
            hw = b.const(size, hint)
            if image_input is not None and all(image_input[1] % int(v) == 0 for v in size):
                image_shape = b.node("Shape", [image_input[0]], hint=hint)
                image_hw = b.node("Gather", [image_shape, b.const(np.array([2, 3], np.int64), hint)], hint=hint, axis=0)
                ratio = np.array([image_input[1] // int(v) for v in size], np.int64)
                hw = b.node("Div", [image_hw, b.const(ratio, hint)], hint=hint)
            sizes = b.node("Concat", [nc, hw], hint=hint, axis=0)
            out = nhwc(x, "Resize", ["", "", sizes], hint, mode="linear", coordinate_transformation_mode=mode)
        else:
            raise ConversionError(f"op {op} ({name}) is not supported by this converter")
        tensors[(name, 0)] = out

    signature = spec.get("signature", {})
    sig_outputs = signature.get("outputs", {})
    out_infos = []
    for name in outputs:
        sig = sig_outputs.get(f"{name}:0")
        if sig is None:
            raise ConversionError(f"output {name} has no shape in the model's signature")
        declared = [int(d.get("size", -1)) for d in sig["tensorShape"]["dim"]]
        out_dims: list[int | str] = [f"{name}_d{i}" if d < 0 else d for i, d in enumerate(declared)]
        if image_input is not None and len(out_dims) == 3:
            out_dims[1] = f"{name}_cells"  # the cell count follows the input size
        out_infos.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, out_dims))
    graph = helper.make_graph(b.nodes, model_json.stem, graph_inputs, out_infos, b.initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="sharpeye-tfjs")
    model.ir_version = 8
    onnx.checker.check_model(model)
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(output.name + ".part")
    onnx.save(model, str(tmp))
    tmp.replace(output)
    return {
        "inputs": {i.name: [d.dim_value or d.dim_param for d in i.type.tensor_type.shape.dim] for i in graph_inputs},
        "outputs": {o.name: [d.dim_value or d.dim_param for d in o.type.tensor_type.shape.dim] for o in out_infos},
        "trained_size": image_input[1] if image_input is not None else None,
        "nodes": len(b.nodes),
    }
