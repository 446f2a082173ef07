"""Read a TFLite flatbuffer into plain Python objects, without TensorFlow.

`read_graph(path)` parses the file with the `tflite` package (the generated flatbuffer
bindings of the TFLite schema) and returns a :class:`TFLiteGraph`: its operators (builtin
type name such as ``CONV_2D``, input/output tensor indices, kernel size, stride, groups,
fused activation, all builtin options), its tensors (name, shape and shape signature, dtype,
quantization) and the graph inputs/outputs of the main subgraph. A truncated, empty or
non-TFLite file (the identifier at bytes 4..8 must be ``TFL3``) raises
:class:`~mai_sr.errors.MaiSrError` naming the file.

`TFLiteGraph.shapes(input_hw)` re-derives every tensor's shape for another input size (or
gives dynamic-shape models a concrete one), and `op_cost(op, shapes)` turns an op into MACs,
element counts and bytes moved: what the lint report, the SyNAP simulator and reports need.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import flatbuffers
import tflite
from tflite.ActivationFunctionType import ActivationFunctionType
from tflite.BuiltinOptions import BuiltinOptions
from tflite.TensorType import TensorType
from tflite.utils import BUILTIN_OPCODE2NAME

from mai_sr.errors import MaiSrError

FILE_IDENTIFIER = b"TFL3"

DTYPE_NAMES = {v: k.lower() for k, v in vars(TensorType).items() if not k.startswith("_")}
DTYPE_BYTES = {"float32": 4, "float16": 2, "int32": 4, "uint8": 1, "int64": 8, "string": 1,
               "bool": 1, "int16": 2, "complex64": 8, "int8": 1, "float64": 8,
               "complex128": 16, "uint64": 8, "uint32": 4, "uint16": 2, "int4": 1,
               "bfloat16": 2}
FLOAT_DTYPES = frozenset({"float32", "float16", "float64", "bfloat16"})
ACTIVATION_NAMES = {v: k for k, v in vars(ActivationFunctionType).items()
                    if not k.startswith("_")}
_OPTIONS_NAMES = {v: k for k, v in vars(BuiltinOptions).items() if not k.startswith("_")}

# Ops with weights laid out [out, kh, kw, in] (grouped when in < input channels).
CONV_OPS = frozenset({"CONV_2D", "TRANSPOSE_CONV"})
POOL_OPS = frozenset({"AVERAGE_POOL_2D", "MAX_POOL_2D", "L2_POOL_2D"})
# Output has the shape of the (broadcast) inputs.
ELEMENTWISE_OPS = frozenset({
    "ADD", "SUB", "MUL", "DIV", "MAXIMUM", "MINIMUM", "RELU", "RELU6", "RELU_N1_TO_1",
    "RELU_0_TO_1", "LEAKY_RELU", "PRELU", "LOGISTIC", "TANH", "HARD_SWISH", "ABS", "NEG",
    "QUANTIZE", "DEQUANTIZE", "SQUARED_DIFFERENCE", "EXP", "SQRT", "RSQRT", "SQUARE", "ELU",
    "GELU", "FLOOR", "CEIL", "ROUND", "CAST", "POW", "LOG", "SIN", "COS", "SELECT_V2",
    "SELECT", "FAKE_QUANT"})

_PARSE_ERRORS = (struct.error, IndexError, ValueError, TypeError, KeyError, OverflowError,
                 UnicodeDecodeError, AttributeError)


@dataclass(frozen=True)
class Quantization:
    """Affine quantization of a tensor: real = scale * (q - zero_point).

    More than one scale means per-channel (per-axis) quantization along `quantized_dimension`.
    """

    scales: tuple[float, ...] = ()
    zero_points: tuple[int, ...] = ()
    quantized_dimension: int = 0

    @property
    def is_quantized(self) -> bool:
        return bool(self.scales)

    @property
    def per_channel(self) -> bool:
        return len(self.scales) > 1

    @property
    def symmetric(self) -> bool:
        return all(z == 0 for z in self.zero_points)

    def describe(self) -> str:
        """'per-tensor', 'per-channel(axis 0, 28)' or 'none'."""
        if not self.is_quantized:
            return "none"
        if self.per_channel:
            return f"per-channel(axis {self.quantized_dimension}, {len(self.scales)})"
        return "per-tensor"

    def to_dict(self) -> dict[str, Any]:
        return {"scales": list(self.scales), "zero_points": list(self.zero_points),
                "quantized_dimension": self.quantized_dimension, "per_channel": self.per_channel}


@dataclass(frozen=True)
class Tensor:
    """One tensor of the main subgraph. `shape_signature` has -1 for dynamic dimensions."""

    index: int
    name: str
    shape: tuple[int, ...]
    shape_signature: tuple[int, ...]
    dtype: str
    quantization: Quantization
    data_bytes: int = 0  # size of its constant buffer; 0 for activations

    @property
    def is_constant(self) -> bool:
        return self.data_bytes > 0

    @property
    def is_dynamic(self) -> bool:
        return any(d < 0 for d in self.shape_signature)

    @property
    def is_float(self) -> bool:
        return self.dtype in FLOAT_DTYPES

    @property
    def channels(self) -> int | None:
        """Last dimension (NHWC) of a rank-4 tensor, else None."""
        return self.shape[-1] if len(self.shape) == 4 else None

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "name": self.name, "shape": list(self.shape),
                "shape_signature": list(self.shape_signature), "dtype": self.dtype,
                "quantization": self.quantization.to_dict(), "data_bytes": self.data_bytes}


@dataclass(frozen=True)
class Op:
    """One operator. `kernel`, `stride` are (h, w) for convolutions and pools, else None;
    `groups` is set for CONV_2D (1 = ordinary conv), `activation` is the fused activation name
    ("NONE" when the op has the field but no activation, None when it has no such field)."""

    index: int
    type: str
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    options: dict = field(default_factory=dict)
    kernel: tuple[int, int] | None = None
    stride: tuple[int, int] | None = None
    groups: int | None = None
    activation: str | None = None
    custom_code: str | None = None
    version: int = 1

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "type": self.type, "inputs": list(self.inputs),
                "outputs": list(self.outputs), "options": self.options,
                "kernel": list(self.kernel) if self.kernel else None,
                "stride": list(self.stride) if self.stride else None, "groups": self.groups,
                "activation": self.activation, "custom_code": self.custom_code,
                "version": self.version}


@dataclass(frozen=True)
class OpCost:
    """Work of one op at a given input size: multiply-accumulates, elements, bytes."""

    macs: int
    output_elements: int
    input_bytes: int   # activation bytes read (constants excluded)
    output_bytes: int
    weight_bytes: int  # constant bytes read (weights, biases, anchors)


@dataclass
class TFLiteGraph:
    """The main subgraph of a TFLite model (see module docstring)."""

    path: Path
    ops: list[Op]
    tensors: list[Tensor]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    file_bytes: int
    version: int = 3
    description: str = ""
    subgraph_count: int = 1
    _constants: dict[int, bytes] = field(default_factory=dict, repr=False)

    # -------------------------------------------------------------- lookups
    @property
    def weight_bytes(self) -> int:
        """Bytes of all constant buffers (weights, biases, constant tensors)."""
        return sum(t.data_bytes for t in self.tensors)

    @property
    def input_tensors(self) -> list[Tensor]:
        return [self.tensors[i] for i in self.inputs]

    @property
    def output_tensors(self) -> list[Tensor]:
        return [self.tensors[i] for i in self.outputs]

    @property
    def is_dynamic(self) -> bool:
        """True when an input's height or width is dynamic (a dynamic batch alone is not)."""
        return any(d < 0 for t in self.input_tensors for d in t.shape_signature[1:3])

    def op_inputs(self, op: Op) -> list[Tensor]:
        return [self.tensors[i] for i in op.inputs if i >= 0]

    def op_outputs(self, op: Op) -> list[Tensor]:
        return [self.tensors[i] for i in op.outputs if i >= 0]

    @cached_property
    def producers(self) -> dict[int, Op]:
        """Tensor index -> the op that writes it."""
        return {t: op for op in self.ops for t in op.outputs}

    @cached_property
    def consumers(self) -> dict[int, list[Op]]:
        """Tensor index -> the ops that read it."""
        out: dict[int, list[Op]] = {}
        for op in self.ops:
            for t in op.inputs:
                if t >= 0:
                    out.setdefault(t, []).append(op)
        return out

    def constant_data(self, index: int, dtype: str | None = None):
        """The constant buffer of tensor `index` as a NumPy array (None for activations)."""
        import numpy as np

        raw = self._constants.get(index)
        if raw is None:
            return None
        tensor = self.tensors[index]
        np_dtype = np.dtype(dtype or tensor.dtype)
        return np.frombuffer(raw, dtype=np_dtype).reshape(tensor.shape)

    # -------------------------------------------------------------- shapes and costs
    def shapes(self, input_hw: tuple[int, int] | None = None) -> dict[int, tuple[int, ...]]:
        """Every tensor's shape with the (first) input resized to `input_hw` = (h, w).

        None keeps the stored shapes. Dynamic dimensions get a concrete size: the batch is 1
        and a dynamic spatial input needs `input_hw`. Shapes are propagated op by op for the
        ops SR graphs use; for other ops the stored output shape is scaled by the input's
        spatial ratio, which is exact for shape-preserving and resampling ops.
        """
        shapes = {t.index: t.shape for t in self.tensors}
        if not self.inputs:
            return shapes
        first = self.tensors[self.inputs[0]]
        if input_hw is None:
            if self.is_dynamic:
                raise MaiSrError(f"{self.path}: dynamic input shape "
                                 f"{list(first.shape_signature)}; give an input size")
            return shapes
        if len(first.shape) != 4:
            raise MaiSrError(f"{self.path}: input is not NHWC (shape {list(first.shape)})")
        h, w = input_hw
        shapes[first.index] = (1, h, w, first.shape[3])
        ratio = (h / first.shape[1], w / first.shape[2]) if not self.is_dynamic else None
        for op in self.ops:
            for out_index in op.outputs:
                shapes[out_index] = self._infer_shape(op, out_index, shapes, ratio)
        return shapes

    def _infer_shape(self, op: Op, out_index: int, shapes, ratio) -> tuple[int, ...]:
        ins = [shapes[i] if i >= 0 else () for i in op.inputs]
        stored = self.tensors[out_index].shape
        if op.type in ("CONV_2D", "DEPTHWISE_CONV_2D") or op.type in POOL_OPS:
            n, h, w, _ = ins[0]
            out_c = stored[3]
            kh, kw = op.kernel
            sh, sw = op.stride
            dh, dw = op.options.get("dilation_h_factor", 1), op.options.get("dilation_w_factor", 1)
            if op.options.get("padding") == "VALID":
                oh = (h - (kh - 1) * dh - 1) // sh + 1
                ow = (w - (kw - 1) * dw - 1) // sw + 1
            else:
                oh, ow = math.ceil(h / sh), math.ceil(w / sw)
            if op.type in POOL_OPS:
                out_c = ins[0][3]
            return (n, oh, ow, out_c)
        if op.type == "DEPTH_TO_SPACE":
            b = op.options.get("block_size", 1)
            n, h, w, c = ins[0]
            return (n, h * b, w * b, c // (b * b))
        if op.type == "SPACE_TO_DEPTH":
            b = op.options.get("block_size", 1)
            n, h, w, c = ins[0]
            return (n, h // b, w // b, c * b * b)
        if op.type == "CONCATENATION":
            axis = op.options.get("axis", -1) % len(ins[0])
            out = list(ins[0])
            out[axis] = sum(s[axis] for s in ins)
            return tuple(out)
        if op.type in ELEMENTWISE_OPS:
            rank = max(len(s) for s in ins)
            padded = [(1,) * (rank - len(s)) + tuple(s) for s in ins]
            return tuple(max(d) for d in zip(*padded))
        if op.type in ("RESIZE_NEAREST_NEIGHBOR", "RESIZE_BILINEAR"):
            size = self.constant_data(op.inputs[1])
            if size is not None:
                return (ins[0][0], int(size[0]), int(size[1]), ins[0][3])
        if ratio is not None and len(stored) == 4:
            return (stored[0], round(stored[1] * ratio[0]), round(stored[2] * ratio[1]),
                    stored[3])
        return stored

    def op_cost(self, op: Op, shapes: dict[int, tuple[int, ...]] | None = None) -> OpCost:
        """MACs, output elements and bytes moved by `op` (shapes from :meth:`shapes`)."""
        shapes = shapes if shapes is not None else self.shapes()
        outs = [self.tensors[i] for i in op.outputs if i >= 0]
        out_elems = sum(math.prod(shapes[t.index]) for t in outs)
        out_bytes = sum(math.prod(shapes[t.index]) * DTYPE_BYTES.get(t.dtype, 1) for t in outs)
        in_bytes = weight_bytes = 0
        for t in self.op_inputs(op):
            if t.is_constant:
                weight_bytes += t.data_bytes
            else:
                in_bytes += math.prod(shapes[t.index]) * DTYPE_BYTES.get(t.dtype, 1)
        macs = 0
        if op.type == "CONV_2D":
            _, kh, kw, cin_per_group = self.tensors[op.inputs[1]].shape
            macs = out_elems * kh * kw * cin_per_group
        elif op.type == "DEPTHWISE_CONV_2D":
            kh, kw = op.kernel
            macs = out_elems * kh * kw
        elif op.type == "TRANSPOSE_CONV":
            # inputs: output_shape, weights [out, kh, kw, in], activations
            _, kh, kw, cin = self.tensors[op.inputs[1]].shape
            macs = math.prod(shapes[op.inputs[2]][:3]) * kh * kw * cin * shapes[outs[0].index][3]
        elif op.type == "FULLY_CONNECTED":
            macs = out_elems * self.tensors[op.inputs[1]].shape[-1]
        return OpCost(macs=macs, output_elements=out_elems, input_bytes=in_bytes,
                      output_bytes=out_bytes, weight_bytes=weight_bytes)

    def total_macs(self, input_hw: tuple[int, int] | None = None) -> int:
        shapes = self.shapes(input_hw)
        return sum(self.op_cost(op, shapes).macs for op in self.ops)

    def to_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "file_bytes": self.file_bytes,
                "weight_bytes": self.weight_bytes, "version": self.version,
                "description": self.description, "subgraph_count": self.subgraph_count,
                "inputs": list(self.inputs), "outputs": list(self.outputs),
                "ops": [o.to_dict() for o in self.ops],
                "tensors": [t.to_dict() for t in self.tensors]}


# ------------------------------------------------------------------ parsing


def read_graph(path) -> TFLiteGraph:
    """Parse the TFLite file at `path` (see module docstring). No TensorFlow import."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise MaiSrError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise MaiSrError(f"{path}: is a directory, expected a .tflite file") from None
    except OSError as exc:
        raise MaiSrError(f"{path}: cannot read ({exc.strerror})") from None
    if not data:
        raise MaiSrError(f"{path}: empty file, not a TFLite model")
    if len(data) < 8:
        raise MaiSrError(f"{path}: too short to be a TFLite model ({len(data)} bytes)")
    if data[4:8] != FILE_IDENTIFIER:
        raise MaiSrError(f"{path}: not a TFLite model (file identifier {data[4:8]!r}, "
                         f"expected {FILE_IDENTIFIER!r})")
    try:
        return _parse(path, data)
    except _PARSE_ERRORS as exc:
        reason = ("a table or vector runs past the end of the data"
                  if isinstance(exc, (struct.error, IndexError)) else str(exc).replace("\n", " "))
        raise MaiSrError(f"{path}: truncated or corrupt TFLite file ({len(data)} bytes; "
                         f"{reason})") from None


def check_builtin_only(graph: TFLiteGraph) -> None:
    """Refuse a graph with custom ops before any interpreter sees it.

    A custom op runs code that is not in the file: a ``Flex*`` op runs a TensorFlow kernel
    (``FlexWriteFile`` writes any path the process can), any other one a registered native
    kernel. SR networks need none, so mai-sr runs only TFLite's builtin ops, whatever delegate
    or resolver the local LiteRT build would offer.
    """
    custom = sorted({op.custom_code or "CUSTOM" for op in graph.ops if op.type == "CUSTOM"})
    if custom:
        flex = any(name.startswith("Flex") for name in custom)
        raise MaiSrError(f"{graph.path}: holds custom op(s) {', '.join(custom)[:80]}"
                         f"{' (TensorFlow ops run through the Flex delegate)' if flex else ''}; "
                         "mai-sr runs only TFLite builtin ops")


def _check_root(data: bytes) -> None:
    (root,) = struct.unpack_from("<I", data, 0)
    if root + 4 > len(data):
        raise ValueError(f"root table offset {root} beyond end of file ({len(data)} bytes)")


def _parse(path: Path, data: bytes) -> TFLiteGraph:
    _check_root(data)
    model = tflite.Model.GetRootAs(data, 0)
    if model.SubgraphsLength() < 1:
        raise ValueError("model has no subgraph")
    sub = model.Subgraphs(0)
    buffers = [_buffer_bytes(model.Buffers(i), data) for i in range(model.BuffersLength())]

    tensors, constants = [], {}
    for i in range(sub.TensorsLength()):
        t = sub.Tensors(i)
        raw = buffers[t.Buffer()] if 0 < t.Buffer() < len(buffers) else b""
        if raw:
            constants[i] = raw
        shape = tuple(int(d) for d in t.ShapeAsNumpy()) if t.ShapeLength() else ()
        sig = (tuple(int(d) for d in t.ShapeSignatureAsNumpy())
               if t.ShapeSignatureLength() else shape)
        tensors.append(Tensor(index=i, name=(t.Name() or b"").decode(), shape=shape,
                              shape_signature=sig,
                              dtype=DTYPE_NAMES.get(t.Type(), f"type{t.Type()}"),
                              quantization=_quantization(t.Quantization()),
                              data_bytes=len(raw)))

    opcodes = [model.OperatorCodes(i) for i in range(model.OperatorCodesLength())]
    ops = [_op(i, sub.Operators(i), opcodes, tensors) for i in range(sub.OperatorsLength())]
    return TFLiteGraph(
        path=path, ops=ops, tensors=tensors,
        inputs=tuple(int(i) for i in sub.InputsAsNumpy()) if sub.InputsLength() else (),
        outputs=tuple(int(i) for i in sub.OutputsAsNumpy()) if sub.OutputsLength() else (),
        file_bytes=len(data), version=model.Version(),
        description=(model.Description() or b"").decode(errors="replace"),
        subgraph_count=model.SubgraphsLength(), _constants=constants)


def _buffer_bytes(buf, data: bytes) -> bytes:
    """A buffer's bytes, checked against the file size (a truncated file fails here)."""
    if buf.Size() > 0:  # external data (models > 2 GB): offset/size relative to file start
        end = buf.Offset() + buf.Size()
        if end > len(data):
            raise ValueError(f"buffer data ends at byte {end}, beyond end of file")
        return data[buf.Offset():end]
    n = buf.DataLength()
    if n == 0:
        return b""
    arr = buf.DataAsNumpy()  # numpy raises ValueError if the vector runs past the end
    if len(arr) != n:
        raise ValueError("buffer shorter than declared")
    return arr.tobytes()


def _quantization(q) -> Quantization:
    if q is None or q.ScaleLength() == 0:
        return Quantization()
    return Quantization(scales=tuple(float(s) for s in q.ScaleAsNumpy()),
                        zero_points=tuple(int(z) for z in q.ZeroPointAsNumpy())
                        if q.ZeroPointLength() else (0,) * q.ScaleLength(),
                        quantized_dimension=q.QuantizedDimension())


def _snake(name: str) -> str:
    out = []
    for i, ch in enumerate(name):
        if ch.isupper() and i and (not name[i - 1].isupper() or
                                   (i + 1 < len(name) and name[i + 1].islower())):
            out.append("_")
        out.append(ch.lower())
    return "".join(out)


def _options(op) -> dict[str, Any]:
    """All builtin options of `op` as a {snake_case: value} dict (enums as names)."""
    kind = _OPTIONS_NAMES.get(op.BuiltinOptionsType(), "NONE")
    table = op.BuiltinOptions()
    cls = getattr(tflite, kind, None)
    if table is None or cls is None or kind == "NONE":
        return {}
    opts = cls()
    opts.Init(table.Bytes, table.Pos)
    names = {a for a in dir(opts) if a[:1].isupper() and not a.startswith(("GetRoot", "Init"))
             and not a.endswith(("IsNone", "Length", "BufferHasIdentifier"))}
    out: dict[str, Any] = {}
    for attr in sorted(names):
        if attr.endswith("AsNumpy"):  # a vector field; 0 when absent
            value = getattr(opts, attr)()
            key = _snake(attr[: -len("AsNumpy")])
            out[key] = value.tolist() if hasattr(value, "tolist") else []
        elif f"{attr}AsNumpy" not in names:  # scalars (vector getters need an index)
            value = getattr(opts, attr)()
            if isinstance(value, (int, float, bool)):
                out[_snake(attr)] = value
    if "fused_activation_function" in out:
        out["fused_activation_function"] = ACTIVATION_NAMES.get(
            out["fused_activation_function"], str(out["fused_activation_function"]))
    if "padding" in out:
        out["padding"] = {0: "SAME", 1: "VALID"}.get(out["padding"], str(out["padding"]))
    return out


def builtin_code(code) -> int:
    """An OperatorCode's builtin operator, as the TFLite schema defines it (``GetBuiltinCode``
    in TFLite's schema utilities): the larger of `builtin_code` (int32, written since the
    schema outgrew 127 ops) and `deprecated_builtin_code` (int8), each read raw.

    The `tflite` package's ``BuiltinCode()`` returns the deprecated field whenever the new one
    is below 127, so a file that leaves the deprecated field 0 (as Google's AI Edge Quantizer
    writes them) would read as ADD (code 0) for every op below 127."""
    table = code._tab
    at = table.Offset(10)  # OperatorCode.builtin_code, the schema's fourth field
    raw = table.Get(flatbuffers.number_types.Int32Flags, at + table.Pos) if at else 0
    return max(raw, code.DeprecatedBuiltinCode())


def _op(index: int, op, opcodes, tensors: list[Tensor]) -> Op:
    code = opcodes[op.OpcodeIndex()]
    builtin = builtin_code(code)
    op_type = BUILTIN_OPCODE2NAME.get(builtin, f"BUILTIN_{builtin}")
    custom = code.CustomCode().decode() if op_type == "CUSTOM" and code.CustomCode() else None
    inputs = tuple(int(i) for i in op.InputsAsNumpy()) if op.InputsLength() else ()
    outputs = tuple(int(i) for i in op.OutputsAsNumpy()) if op.OutputsLength() else ()
    for i in inputs + outputs:
        if i >= len(tensors):
            raise ValueError(f"op {index} refers to tensor {i} of {len(tensors)}")
    options = _options(op)
    kernel = stride = groups = None
    if op_type in CONV_OPS | {"DEPTHWISE_CONV_2D"} and len(inputs) >= 2:
        weights = tensors[inputs[1]].shape
        if len(weights) == 4:
            kernel = (weights[1], weights[2])
        if op_type == "CONV_2D" and len(weights) == 4 and len(tensors[inputs[0]].shape) == 4:
            groups = max(1, tensors[inputs[0]].shape[3] // max(1, weights[3]))
    elif op_type in POOL_OPS:
        kernel = (options.get("filter_height", 1), options.get("filter_width", 1))
    if "stride_h" in options:
        stride = (options["stride_h"], options["stride_w"])
    return Op(index=index, type=op_type, inputs=inputs, outputs=outputs, options=options,
              kernel=kernel, stride=stride, groups=groups,
              activation=options.get("fused_activation_function"), custom_code=custom,
              version=code.Version())
