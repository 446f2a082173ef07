"""Target-aware rewrites of a converted INT8 flatbuffer: ``mai-sr export --target ethos-u85``.

Arm's Vela compiler (the production compiler of the Ethos-U55, U65 and U85 NPUs) has no
DEPTH_TO_SPACE for any Ethos-U (``vela --supported-ops-report``), so the last op of every
challenge model - depth-to-space over the whole 1920x1080x3 output - falls back to the CPU.
The rewrite replaces it with ops Vela places on the NPU and that compute the same integers:

    27-channel tail (conv, anchor conv, ADD, clip)  -> DEPTH_TO_SPACE(3) -> QUANTIZE
becomes ("split" form)
    the same tail split into 3 tails of 9 channels  -> CONCATENATION(axis=width)
                                                     -> RESHAPE(1, 3H, 3W, 3) -> QUANTIZE
or ("slice" form)
    the tail unchanged -> 3 x SLICE(9 channels)     -> CONCATENATION(axis=width) -> RESHAPE ...

:func:`choose_form` picks the form that Vela estimated faster on the shipped models.

Why it is exact: for block size b and C output channels, depth-to-space writes LR channel
``(i*b + j)*C + c`` of pixel (h, w) to HR pixel (b*h + i, b*w + j). Tail ``i`` computes LR
channels ``[i*b*C, (i+1)*b*C)`` (the convolutions' output channels sliced: weights, bias and
per-channel scales alike); concatenating the b tails along the width gives (1, H, b*W, b*C),
whose row-major order is exactly that of (1, b*H, b*W, C): element (h, i*W + w, j*C + c)
sits at offset h*b^2*W*C + i*b*W*C + w*b*C + j*C + c, which is HR (b*h + i, b*w + j, c). The
concatenation and reshape copy int8 values without requantizing because every tensor they
touch keeps the quantization of the depth-to-space input (scale 1, zero point -128 here);
that is why the rewrite works on the converted flatbuffer, where those parameters are
final, and not on the Keras graph, whose converter could pick new ones. Elementwise ops of
the tail (ADD, MINIMUM, RELU...) act per channel, so splitting them is exact; the clip stays
in each tail, before the concatenation.

Two clip ops are no-ops on int8 and are deleted exactly (``drop_noop_clips``):
MINIMUM(x, c) whose constant is the int8 maximum (127) and RELU whose zero point is -128,
when input and output share one quantization (the int8 range already is the clip range
[0, 255] at scale 1, zero point -128). See :data:`DROP_NOOP_CLIPS` and
``benchmarks/vela.py``; the targets are the Vela-judged rows of :mod:`mai_sr.tflite.targets`.

Rejected forms (measured with Vela 5.2 on the shipped models and a probe model):
TRANSPOSE_CONV (stride 3, 0/1 kernel) is exact but U55/U65 reject stride 3 and U85 prices
it at ~30x the graph; RESHAPE -> TRANSPOSE -> RESHAPE is exact but U55/U65 refuse an axis
product above 65,536 (H*W = 230,400 at 640x360) and U85 prices it at ~35x.

The flatbuffer is edited through TensorFlow's object API (``schema_py_generated`` and
``flatbuffer_utils``), the export side's dependency; nothing here needs Vela.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np

from mai_sr.errors import MaiSrError
from mai_sr.tflite.targets import check_target, export_targets

# Whether the exact no-op clips are deleted, for every Ethos-U target: deleting MINIMUM(x, 127)
# and RELU (zero point -128) was faster in Vela 5.2's estimate on every configuration for the
# shipped models (on U85-2048 ABPN: 23.3 ms deleted, 34.6 ms kept; a tiny probe model had
# shown the opposite on U85, where the conv work is small); benchmarks/vela.py measures both
# forms per configuration. The targets themselves are rows of mai_sr.tflite.targets.
DROP_NOOP_CLIPS = True
FORM = "auto"  # "split", "slice" or "auto" (:func:`choose_form`)

# Ops whose output channel k depends only on input channel k (and scalar/per-channel
# constants): a tail made of them can be split by output channel.
_CHANNELWISE = frozenset({"ADD", "SUB", "MUL", "MINIMUM", "MAXIMUM", "RELU", "RELU6",
                          "RELU_N1_TO_1", "RELU_0_TO_1", "QUANTIZE"})
_SPLITTABLE_PRODUCERS = frozenset({"CONV_2D"})


@dataclass(frozen=True)
class Rewrite:
    """What `rewrite_for_target` changed, for the sidecar and metadata."""

    target: str
    form: str                  # "split" (tails split by channel) or "slice" (SLICE copies)
    depth_to_space: int        # DEPTH_TO_SPACE ops replaced
    split_ops: int             # tail ops split into b parts
    dropped_clips: int         # no-op MINIMUM/RELU deleted

    def to_dict(self) -> dict:
        how = {"split": "tails split by channel", "slice": "SLICE by channel group",
               "mixed": "split or sliced per depth-to-space"}.get(self.form, self.form)
        return {"target": self.target, "form": f"{how} -> CONCATENATION(width) -> RESHAPE",
                "depth_to_space_replaced": self.depth_to_space,
                "tail_ops_split": self.split_ops, "noop_clips_dropped": self.dropped_clips}


def _schema():
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    return schema, flatbuffer_utils


class _Graph:
    """Mutable view of subgraph 0 of a ModelT: op types, producers, consumers."""

    def __init__(self, model, schema):
        self.model, self.schema = model, schema
        self.sg = model.subgraphs[0]
        names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
        self._names = names

    def op_type(self, op) -> str:
        code = self.model.operatorCodes[op.opcodeIndex]
        return self._names.get(max(code.builtinCode, code.deprecatedBuiltinCode), "CUSTOM")

    def producer(self, tensor: int):
        for op in self.sg.operators:
            if tensor in list(op.outputs):
                return op
        return None

    def consumers(self, tensor: int) -> list:
        return [op for op in self.sg.operators if tensor in list(op.inputs)]

    def tensor(self, index: int):
        return self.sg.tensors[index]

    def is_constant(self, index: int) -> bool:
        t = self.sg.tensors[index]
        buf = self.model.buffers[t.buffer] if t.buffer is not None else None
        return buf is not None and buf.data is not None and len(buf.data) > 0

    def const_array(self, index: int) -> np.ndarray:
        t = self.sg.tensors[index]
        dtype = {self.schema.TensorType.INT8: np.int8, self.schema.TensorType.INT32: np.int32,
                 self.schema.TensorType.UINT8: np.uint8}[t.type]
        data = np.asarray(self.model.buffers[t.buffer].data, dtype=np.uint8).tobytes()
        return np.frombuffer(data, dtype=dtype).reshape(list(t.shape) if t.shape is not None
                                                        else [])

    def add_buffer(self, array: np.ndarray) -> int:
        buf = self.schema.BufferT()
        buf.data = np.frombuffer(np.ascontiguousarray(array).tobytes(), dtype=np.uint8)
        self.model.buffers.append(buf)
        return len(self.model.buffers) - 1

    def add_tensor(self, like, name: str, shape, buffer: int = 0, quant=None,
                   ttype=None) -> int:
        t = self.schema.TensorT()
        t.name = name
        t.shape = np.array(shape, dtype=np.int32)
        t.type = like.type if ttype is None else ttype
        t.buffer = buffer
        t.quantization = copy.deepcopy(like.quantization) if quant is None else quant
        self.sg.tensors.append(t)
        return len(self.sg.tensors) - 1

    def opcode(self, name: str, version: int) -> int:
        code = getattr(self.schema.BuiltinOperator, name)
        for i, c in enumerate(self.model.operatorCodes):
            if max(c.builtinCode, c.deprecatedBuiltinCode) == code:
                return i
        oc = self.schema.OperatorCodeT()
        oc.builtinCode = code
        oc.deprecatedBuiltinCode = min(code, 127)
        oc.version = version
        self.model.operatorCodes.append(oc)
        return len(self.model.operatorCodes) - 1


def _same_quant(a, b) -> bool:
    qa, qb = a.quantization, b.quantization
    if qa is None or qb is None:
        return qa is qb
    return (np.array_equal(np.asarray(qa.scale), np.asarray(qb.scale))
            and np.array_equal(np.asarray(qa.zeroPoint), np.asarray(qb.zeroPoint)))


def _tail(g: _Graph, d2s, channels: int) -> list:
    """Ops between the splittable producers (CONV_2D) and `d2s`, in graph order; raise
    MaiSrError if the tail holds an op that cannot be split exactly by channel."""
    tail, stack, seen = [], [int(d2s.inputs[0])], set()
    while stack:
        tensor = stack.pop()
        if tensor in seen:
            continue
        seen.add(tensor)
        op = g.producer(tensor)
        name = _name(g.tensor(tensor))
        if op is None:
            raise MaiSrError(f"depth-to-space input '{name}' is a graph input; nothing to split")
        kind = g.op_type(op)
        tail.append(op)
        if kind in _SPLITTABLE_PRODUCERS:
            continue
        if kind not in _CHANNELWISE:
            raise MaiSrError(f"{kind} before depth-to-space (tensor '{name}') cannot be "
                             "split by channel")
        for i in op.inputs:
            if i < 0 or g.is_constant(i):
                continue
            shape = list(g.tensor(i).shape)
            if shape[-1] != channels:
                raise MaiSrError(f"{kind} before depth-to-space reads '{_name(g.tensor(i))}' "
                                 f"with {shape[-1]} channels, not {channels}")
            stack.append(int(i))
    members = {id(op) for op in tail} | {id(d2s)}
    outputs = {int(i) for i in g.sg.outputs}
    for op in tail:
        out = int(op.outputs[0])
        if out in outputs or any(id(r) not in members for r in g.consumers(out)):
            raise MaiSrError(f"tensor '{_name(g.tensor(out))}' before depth-to-space has "
                             "readers outside the depth-to-space tail")
    order = {id(op): k for k, op in enumerate(g.sg.operators)}
    return sorted(tail, key=lambda op: order[id(op)])


def _slice_const(g: _Graph, index: int, lo: int, hi: int, channels: int, name: str) -> int:
    """Constant input `index` restricted to channels [lo, hi) (scalars are shared)."""
    t = g.tensor(index)
    shape = list(t.shape) if t.shape is not None else []
    if int(np.prod(shape or [1])) == 1:
        return index
    if shape[-1] != channels:
        raise MaiSrError(f"constant '{t.name}' of shape {shape} cannot be split by channel")
    data = g.const_array(index)[..., lo:hi]
    q = copy.deepcopy(t.quantization)
    if q is not None and q.scale is not None and len(q.scale) > 1:
        q.scale = np.asarray(q.scale)[lo:hi]
        q.zeroPoint = np.asarray(q.zeroPoint)[lo:hi]
    return g.add_tensor(t, name, data.shape, g.add_buffer(data), quant=q)


def _slice_conv(g: _Graph, op, lo: int, hi: int, part: int):
    """A copy of CONV_2D `op` computing output channels [lo, hi) only."""
    new = copy.deepcopy(op)
    w_index, b_index = op.inputs[1], op.inputs[2] if len(op.inputs) > 2 else -1
    w = g.tensor(w_index)
    weights = g.const_array(w_index)[lo:hi]
    wq = copy.deepcopy(w.quantization)
    if wq.scale is not None and len(wq.scale) > 1:  # per-channel along the output axis
        wq.scale = np.asarray(wq.scale)[lo:hi]
        wq.zeroPoint = np.asarray(wq.zeroPoint)[lo:hi]
    new.inputs = np.array(op.inputs, dtype=np.int32).copy()
    new.inputs[1] = g.add_tensor(w, f"{_name(w)}_part{part}", weights.shape,
                                 g.add_buffer(weights), quant=wq)
    if b_index >= 0:
        b = g.tensor(b_index)
        bias = g.const_array(b_index)[lo:hi]
        bq = copy.deepcopy(b.quantization)
        if bq is not None and bq.scale is not None and len(bq.scale) > 1:
            bq.scale = np.asarray(bq.scale)[lo:hi]
            bq.zeroPoint = np.asarray(bq.zeroPoint)[lo:hi]
        new.inputs[2] = g.add_tensor(b, f"{_name(b)}_part{part}", bias.shape,
                                     g.add_buffer(bias), quant=bq)
    return new


def _name(t) -> str:
    return t.name.decode() if isinstance(t.name, bytes) else str(t.name)


def _const_int32(g: _Graph, values, name: str) -> int:
    array = np.array(values, dtype=np.int32)
    like = g.schema.TensorT()
    return g.add_tensor(like, name, [len(array)], g.add_buffer(array),
                        quant=g.schema.QuantizationParametersT(),
                        ttype=g.schema.TensorType.INT32)


def _slice_parts(g: _Graph, d2s) -> list[int]:
    """SLICE ops cutting the depth-to-space input into b channel groups (pure copies: the
    graph before them is untouched); returns the slices' output tensors."""
    src = g.tensor(d2s.inputs[0])
    b = int(d2s.builtinOptions.blockSize)
    n, h, w, cc = (int(v) for v in src.shape)
    group = cc // b
    outs = []
    for part in range(b):
        out = g.add_tensor(src, f"{_name(src)}_part{part}", [n, h, w, group])
        op = g.schema.OperatorT()
        op.opcodeIndex = g.opcode("SLICE", 2)
        op.inputs = np.array([d2s.inputs[0],
                              _const_int32(g, [0, 0, 0, part * group], f"{_name(src)}_begin{part}"),
                              _const_int32(g, [n, h, w, group], f"{_name(src)}_size{part}")],
                             dtype=np.int32)
        op.outputs = np.array([out], dtype=np.int32)
        op.builtinOptionsType = g.schema.BuiltinOptions.SliceOptions
        op.builtinOptions = g.schema.SliceOptionsT()
        outs.append((op, out))
    return outs


def choose_form(g: _Graph, d2s) -> str:
    """"split" when the depth-to-space tail has an elementwise op after its convolutions
    (the anchor ADD of ABPN, NCNet, XCAT), else "slice" (SCSRN: the conv is the last op).

    Measured with Vela 5.2 on the shipped models (benchmarks/vela.py): splitting the conv
    reads its input once per part, which costs nothing extra where the conv output must be
    written out for an elementwise op anyway (ABPN on U85-2048: split 23.3 ms, slice 27.3);
    where the conv is the last op, copying slices of its output is cheaper (SCSRN on
    U85-2048: slice 44.4 ms, split 61.2; on U65-512: 47.7 and 55.3).
    """
    try:
        tail = _tail(g, d2s, int(g.tensor(d2s.inputs[0]).shape[-1]))
    except MaiSrError:
        return "slice"  # the tail cannot be split: slicing works on any producer
    return "split" if any(g.op_type(op) not in _SPLITTABLE_PRODUCERS for op in tail) \
        else "slice"


def _replace_depth_to_space(g: _Graph, d2s, form: str = "split") -> int:
    """Rewrite one DEPTH_TO_SPACE (and, in the "split" form, its tail) in place; returns
    the number of tail ops split. `form` is "split" or "slice" (the caller resolves
    "auto" with :func:`choose_form`)."""
    src, dst = g.tensor(d2s.inputs[0]), g.tensor(d2s.outputs[0])
    b = int(d2s.builtinOptions.blockSize)
    n, h, w, cc = (int(v) for v in src.shape)
    if min(n, h, w) <= 0:
        raise MaiSrError("--target needs a fixed input shape (NPU compilers take fixed "
                         "shapes); export without --dynamic")
    c = cc // (b * b)
    if not _same_quant(src, dst):
        raise MaiSrError("depth-to-space requantizes; the rewrite could not be exact")
    if form == "slice":
        tail, sliced = [], _slice_parts(g, d2s)
        return _finish(g, d2s, tail, [op for op, _ in sliced], [t for _, t in sliced])
    tail = _tail(g, d2s, cc)
    parts_out = []
    new_ops = []
    for part in range(b):
        lo, hi = part * b * c, (part + 1) * b * c
        rename: dict[int, int] = {}
        for op in tail:
            kind = g.op_type(op)
            if kind in _SPLITTABLE_PRODUCERS:
                new = _slice_conv(g, op, lo, hi, part)
            else:
                new = copy.deepcopy(op)
                new.inputs = np.array(op.inputs, dtype=np.int32).copy()
                for k, i in enumerate(op.inputs):
                    if i >= 0 and int(i) in rename:
                        new.inputs[k] = rename[int(i)]
                    elif i >= 0 and g.is_constant(i):
                        new.inputs[k] = _slice_const(g, i, lo, hi, cc,
                                                     f"{_name(g.tensor(i))}_part{part}")
            out = g.tensor(op.outputs[0])
            shape = list(out.shape)
            shape[-1] = hi - lo
            rename[int(op.outputs[0])] = g.add_tensor(out, f"{_name(out)}_part{part}", shape)
            new.outputs = np.array([rename[int(op.outputs[0])]], dtype=np.int32)
            new_ops.append(new)
        parts_out.append(rename[int(d2s.inputs[0])])
    return _finish(g, d2s, tail, new_ops, parts_out)


def _finish(g: _Graph, d2s, tail: list, new_ops: list, parts_out: list[int]) -> int:
    """Concatenate the b parts along the width, reshape to the HR image, and put the new
    ops where `d2s` was (everything they read is computed before it)."""
    src, dst = g.tensor(d2s.inputs[0]), g.tensor(d2s.outputs[0])
    b = int(d2s.builtinOptions.blockSize)
    n, h, w, cc = (int(v) for v in src.shape)
    c = cc // (b * b)
    for t in parts_out:
        if not _same_quant(g.tensor(t), dst):
            raise MaiSrError("depth-to-space input and output quantization differ")

    concat_out = g.add_tensor(dst, f"{_name(dst)}_rows", [n, h, b * w, b * c])
    concat = g.schema.OperatorT()
    concat.opcodeIndex = g.opcode("CONCATENATION", 2)
    concat.inputs = np.array(parts_out, dtype=np.int32)
    concat.outputs = np.array([concat_out], dtype=np.int32)
    concat.builtinOptionsType = g.schema.BuiltinOptions.ConcatenationOptions
    concat.builtinOptions = g.schema.ConcatenationOptionsT()
    concat.builtinOptions.axis = 2
    concat.builtinOptions.fusedActivationFunction = g.schema.ActivationFunctionType.NONE

    new_shape = np.array([n, h * b, w * b, c], dtype=np.int32)
    shape_t = g.add_tensor(dst, f"{_name(dst)}_shape", [4], g.add_buffer(new_shape),
                           quant=g.schema.QuantizationParametersT(),
                           ttype=g.schema.TensorType.INT32)
    reshape = g.schema.OperatorT()
    reshape.opcodeIndex = g.opcode("RESHAPE", 1)
    reshape.inputs = np.array([concat_out, shape_t], dtype=np.int32)
    reshape.outputs = np.array([d2s.outputs[0]], dtype=np.int32)
    reshape.builtinOptionsType = g.schema.BuiltinOptions.ReshapeOptions
    reshape.builtinOptions = g.schema.ReshapeOptionsT()
    reshape.builtinOptions.newShape = new_shape.copy()

    ops = list(g.sg.operators)
    at = next(k for k, op in enumerate(ops) if op is d2s)
    removed = {id(op) for op in tail} | {id(d2s)}
    before = [op for op in ops[:at] if id(op) not in removed]
    after = [op for op in ops[at + 1:]]
    g.sg.operators = before + new_ops + [concat, reshape] + after
    return len(tail)


def _is_noop_clip(g: _Graph, op) -> bool:
    """MINIMUM(x, 127) or RELU with zero point -128, on int8 with unchanged quantization."""
    kind = g.op_type(op)
    x, out = g.tensor(op.inputs[0]), g.tensor(op.outputs[0])
    if x.type != g.schema.TensorType.INT8 or not _same_quant(x, out):
        return False
    if kind == "RELU":
        zp = np.asarray(out.quantization.zeroPoint) if out.quantization else np.array([])
        return zp.size == 1 and int(zp[0]) == -128
    if kind == "MINIMUM" and len(op.inputs) == 2:
        const = [i for i in op.inputs if g.is_constant(i)]
        var = [i for i in op.inputs if not g.is_constant(i)]
        if len(const) != 1 or len(var) != 1:
            return False
        x = g.tensor(var[0])
        if not _same_quant(g.tensor(const[0]), x) or not _same_quant(x, out):
            return False
        return bool(np.all(g.const_array(const[0]) == 127))
    return False


def _drop_noop_clips(g: _Graph) -> int:
    """Delete exact no-op clips (see module docstring); returns how many."""
    dropped = 0
    outputs = set(int(i) for i in g.sg.outputs)
    for op in list(g.sg.operators):
        if g.op_type(op) not in ("MINIMUM", "RELU") or not _is_noop_clip(g, op):
            continue
        out = int(op.outputs[0])
        if out in outputs:
            continue
        src = next(int(i) for i in op.inputs if not g.is_constant(i))
        for reader in g.consumers(out):
            reader.inputs = np.array([src if int(i) == out else i for i in reader.inputs],
                                     dtype=np.int32)
        g.sg.operators = [o for o in g.sg.operators if o is not op]
        dropped += 1
    return dropped


def _compact(g: _Graph) -> None:
    """Drop tensors (and their buffers) no op, input or output refers to any more."""
    sg = g.sg
    used = sorted({int(i) for op in sg.operators for i in list(op.inputs) + list(op.outputs)
                   if i >= 0} | {int(i) for i in sg.inputs} | {int(i) for i in sg.outputs})
    remap = {old: new for new, old in enumerate(used)}
    sg.tensors = [sg.tensors[i] for i in used]
    for op in sg.operators:
        op.inputs = np.array([remap[int(i)] if i >= 0 else -1 for i in op.inputs],
                             dtype=np.int32)
        op.outputs = np.array([remap[int(i)] for i in op.outputs], dtype=np.int32)
    sg.inputs = np.array([remap[int(i)] for i in sg.inputs], dtype=np.int32)
    sg.outputs = np.array([remap[int(i)] for i in sg.outputs], dtype=np.int32)
    for sig in g.model.signatureDefs or []:
        for entry in list(sig.inputs or []) + list(sig.outputs or []):
            entry.tensorIndex = remap[int(entry.tensorIndex)]
    live = {t.buffer for t in sg.tensors} | {0}
    live |= {m.buffer for m in (g.model.metadata or [])}
    for k, buf in enumerate(g.model.buffers):
        if k not in live:
            buf.data = None  # an empty buffer keeps every other buffer index valid


def rewrite_for_target(tflite_bytes: bytes, target: str,
                       drop_noop_clips: bool | None = None, form: str | None = None
                       ) -> tuple[bytes, Rewrite]:
    """`tflite_bytes` rewritten so every op runs on the Ethos-U NPU `target`; same outputs.

    `target` is one of :func:`mai_sr.tflite.targets.export_targets`. `drop_noop_clips`
    overrides :data:`DROP_NOOP_CLIPS` and `form` overrides :data:`FORM` (None: use them).
    Raises MaiSrError, naming the op, when a part of the graph cannot be rewritten exactly.
    """
    check_target(target, export_targets())
    schema, flatbuffer_utils = _schema()
    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(tflite_bytes))
    if len(model.subgraphs) != 1:
        raise MaiSrError("--target rewrites single-subgraph models only")
    g = _Graph(model, schema)
    tensors = g.sg.tensors
    if any(t.type == schema.TensorType.FLOAT32 for t in tensors):
        raise MaiSrError("--target needs an INT8 model (Ethos-U NPUs run integer ops only); "
                         "export with --precision int8")
    drop = DROP_NOOP_CLIPS if drop_noop_clips is None else drop_noop_clips
    dropped = _drop_noop_clips(g) if drop else 0
    d2s_ops = [op for op in g.sg.operators if g.op_type(op) == "DEPTH_TO_SPACE"]
    split = 0
    forms = []
    for d2s in d2s_ops:
        chosen = form or FORM
        forms.append(choose_form(g, d2s) if chosen == "auto" else chosen)
        split += _replace_depth_to_space(g, d2s, forms[-1])
    _compact(g)
    data = bytes(flatbuffer_utils.convert_object_to_bytearray(model))
    return data, Rewrite(target=target, form=(forms[0] if len(set(forms)) == 1
                                                 else "mixed" if forms else "none"),
                         depth_to_space=len(d2s_ops), split_ops=split, dropped_clips=dropped)
