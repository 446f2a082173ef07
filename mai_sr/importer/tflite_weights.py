"""TFLite file -> :class:`~mai_sr.importer.source.SourceNet`, weights dequantized (TF-free).

Walks the operators of :func:`mai_sr.tflite.graph.read_graph` in execution order. Each
CONV_2D gives a kernel (OHWI; int8 per-channel weights become ``scale * (q - zero_point)``,
float16 weights behind a DEQUANTIZE op become float32) and its bias (int32 ``scale * q``).
A 1x1 conv 3 -> 3s^2 reading the graph input is the nearest-conv anchor; a CONCATENATION
of copies of the input is the concat anchor.
"""

from __future__ import annotations

import numpy as np

from mai_sr.errors import MaiSrError, first_line
from mai_sr.importer.source import SourceConv, SourceNet, split_anchor, to_hwio
from mai_sr.tflite.graph import read_graph


def _dequantized(graph, index: int) -> np.ndarray | None:
    """The float value of constant tensor `index` (following a DEQUANTIZE), or None."""
    tensor = graph.tensors[index]
    data = graph.constant_data(index)
    if data is None:
        producer = graph.producers.get(index)
        if producer is not None and producer.type == "DEQUANTIZE":
            return _dequantized(graph, producer.inputs[0])
        return None
    data = data.astype(np.float64)
    q = tensor.quantization
    if q.is_quantized and tensor.dtype in ("int8", "uint8", "int32", "int16"):
        scales = np.asarray(q.scales, np.float64)
        zero = np.asarray(q.zero_points, np.float64)
        shape = [1] * data.ndim
        if q.per_channel:
            shape[q.quantized_dimension] = -1
        data = (data - zero.reshape(shape)) * scales.reshape(shape)
    return data.astype(np.float32)


def _checked(graph, index: int, path, label: str, what: str) -> np.ndarray | None:
    """:func:`_dequantized`, with a crafted file's inconsistency (a buffer whose length does
    not fit its tensor's shape, quantization scales that fit no axis, a tensor index out of
    range) as one line naming the op."""
    try:
        return _dequantized(graph, index)
    except (ValueError, IndexError, TypeError, KeyError) as exc:
        first = first_line(exc)
        raise MaiSrError(f"{path}: {label}: its {what} tensor is malformed ({first})") from None


def _graph_input_ids(graph) -> set[int]:
    """The graph input and the tensors a QUANTIZE/DEQUANTIZE makes of it."""
    ids = set(graph.inputs)
    for op in graph.ops:
        if op.type in ("QUANTIZE", "DEQUANTIZE") and op.inputs and op.inputs[0] in ids:
            ids.update(op.outputs)
    return ids


def read_tflite(path) -> SourceNet:
    """The convs of a TFLite SR model in execution order, dequantized to float32."""
    graph = read_graph(path)
    inputs = _graph_input_ids(graph)
    convs, anchor_kind, anchor_conv = [], "built in", None
    for op in graph.ops:
        if op.type == "CONCATENATION" and op.inputs and all(i in inputs for i in op.inputs):
            anchor_kind = "concat"
        if op.type == "DEPTHWISE_CONV_2D" or op.type == "TRANSPOSE_CONV":
            raise MaiSrError(f"{path}: op {op.index} is {op.type}; mai-sr deploy graphs "
                             "hold plain CONV_2D only")
        if op.type != "CONV_2D":
            continue
        label = f"CONV_2D op {op.index}"
        kernel = _checked(graph, op.inputs[1], path, label, "weights")
        if kernel is None:
            raise MaiSrError(f"{path}: {label} has no constant weights")
        bias = _checked(graph, op.inputs[2], path, label, "bias") \
            if len(op.inputs) > 2 and op.inputs[2] >= 0 else None
        conv = SourceConv(to_hwio(kernel, "OHWI", label), bias, label)
        if op.inputs[0] in inputs and conv.kernel.shape[:2] == (1, 1):
            anchor_conv = conv
        convs.append(conv)
    body, anchor = split_anchor(convs)
    if anchor is not None and anchor is not anchor_conv:
        raise MaiSrError(f"{path}: {anchor.label} looks like an anchor but does not read the "
                         "input")
    if anchor is not None:
        anchor_kind = "nearest conv"
    in_scale = graph.input_tensors[0].quantization.scales if graph.inputs else ()
    notes = [f"input quantization scale {in_scale[0]:.4g}"] if in_scale else []
    return SourceNet(path=str(path), format="tflite", layout="OHWI", channel_order="dcr",
                     convs=body, anchor=anchor_kind,
                     anchor_kernel=None if anchor is None else anchor.kernel,
                     anchor_bias=None if anchor is None else anchor.bias, notes=notes)
