"""What each NPU target accepts: op tables and execution units (no TensorFlow).

Op lists and their sources:
- :data:`VS680_UNITS` - Synaptics SyNAP manual, "NPU Operators" (npu_operators.md in
  github.com/synaptics-synap/doc): the execution engine of each operator for asym-u8 and
  asym-i8/pc-sym-i8 tensors. NN = neural-network engine, TP = tensor processor, PPU =
  parallel processing unit. TFLite builtins are mapped to the SyNAP operator names there
  (e.g. DEPTH_TO_SPACE -> DEPTH2SPACE on TP, MINIMUM -> PPU, RESIZE_* -> RESIZE on PPU).
- :data:`NNAPI_OPS` - the TFLite builtins the TFLite NNAPI delegate maps to NNAPI operations
  for 8-bit quantized tensors (``NNAPIDelegateKernel::Validate`` in
  tensorflow/lite/delegates/nnapi/nnapi_delegate.cc, with the Android NNAPI operation list;
  signed int8 needs Android 11 / NNAPI 1.3).
"""

from __future__ import annotations

from mai_sr.tflite.graph import TFLiteGraph

# TFLite builtin -> SyNAP execution unit for 8-bit tensors (SyNAP manual, "NPU Operators").
# Convolutions with stride != 1 or kernels above 15x15 leave the NN engine for the TP
# (same page); see `vs680_unit`.
VS680_UNITS: dict[str, str] = {
    # basic operations
    "CONV_2D": "NN", "DEPTHWISE_CONV_2D": "NN", "TRANSPOSE_CONV": "NN",
    "FULLY_CONNECTED": "TP",
    # elementwise
    "ADD": "NN", "SUB": "NN",
    "MUL": "PPU", "DIV": "PPU", "MAXIMUM": "PPU", "MINIMUM": "PPU", "POW": "PPU",
    "FLOOR_DIV": "PPU", "BATCH_MATMUL": "PPU", "SELECT": "PPU", "SELECT_V2": "PPU",
    "ADD_N": "PPU", "LESS": "PPU", "LESS_EQUAL": "PPU", "GREATER": "PPU",
    "GREATER_EQUAL": "PPU", "EQUAL": "PPU", "NOT_EQUAL": "PPU", "LOGICAL_AND": "PPU",
    "LOGICAL_OR": "PPU", "LOGICAL_NOT": "PPU",
    # activations
    "RELU": "TP", "RELU6": "TP", "RELU_N1_TO_1": "TP", "RELU_0_TO_1": "TP",
    "LEAKY_RELU": "TP", "PRELU": "TP", "LOGISTIC": "TP", "TANH": "TP", "ABS": "TP",
    "HARD_SWISH": "TP", "NEG": "TP", "LOG": "TP", "GELU": "TP", "ELU": "TP",
    "EXP": "PPU", "SQRT": "PPU", "RSQRT": "PPU", "SQUARE": "PPU", "SIN": "PPU",
    "SOFTMAX": "PPU", "LOG_SOFTMAX": "PPU",
    # normalization
    "L2_NORMALIZATION": "PPU", "LOCAL_RESPONSE_NORMALIZATION": "TP",
    # reshape / data movement
    "CONCATENATION": "TP", "SPLIT": "TP", "SPLIT_V": "TP", "SLICE": "TP",
    "STRIDED_SLICE": "TP", "PACK": "TP", "UNPACK": "TP", "RESHAPE": "TP", "SQUEEZE": "TP",
    "EXPAND_DIMS": "TP", "TRANSPOSE": "TP", "DEPTH_TO_SPACE": "TP", "SPACE_TO_DEPTH": "TP",
    "BATCH_TO_SPACE_ND": "TP", "SPACE_TO_BATCH_ND": "TP", "PAD": "TP", "PADV2": "TP",
    "REVERSE_V2": "TP", "QUANTIZE": "TP", "DEQUANTIZE": "TP",
    "MEAN": "PPU", "SUM": "PPU", "REDUCE_MAX": "PPU", "REDUCE_MIN": "PPU",
    "REDUCE_PROD": "PPU", "ARG_MAX": "PPU", "ARG_MIN": "PPU",
    # pooling and misc
    "AVERAGE_POOL_2D": "NN", "MAX_POOL_2D": "NN",
    "RESIZE_BILINEAR": "PPU", "RESIZE_NEAREST_NEIGHBOR": "PPU",
    "GATHER": "PPU", "GATHER_ND": "PPU", "SCATTER_ND": "PPU", "TILE": "PPU", "CAST": "PPU",
    "FLOOR": "PPU", "CEIL": "PPU", "ROUND": "PPU", "EMBEDDING_LOOKUP": "PPU",
}

# Ops the SyNAP runtime can leave to the host CPU: shape bookkeeping on int32 tensors.
CPU_FALLBACK_OPS = frozenset({"SHAPE", "RANK", "FILL", "RANGE", "ZEROS_LIKE", "BROADCAST_ARGS",
                              "BROADCAST_TO"})

# TFLite builtins the NNAPI delegate accepts with 8-bit quantized tensors (see module doc).
NNAPI_OPS = frozenset({
    "ADD", "SUB", "MUL", "DIV", "MAXIMUM", "MINIMUM", "CONV_2D", "DEPTHWISE_CONV_2D",
    "TRANSPOSE_CONV", "FULLY_CONNECTED", "AVERAGE_POOL_2D", "MAX_POOL_2D", "L2_POOL_2D",
    "CONCATENATION", "DEPTH_TO_SPACE", "SPACE_TO_DEPTH", "RESHAPE", "SQUEEZE", "EXPAND_DIMS",
    "TRANSPOSE", "PAD", "PADV2", "MIRROR_PAD", "SPACE_TO_BATCH_ND", "BATCH_TO_SPACE_ND",
    "STRIDED_SLICE", "SLICE", "SPLIT", "SPLIT_V", "PACK", "UNPACK", "GATHER", "TILE",
    "RELU", "RELU6", "RELU_N1_TO_1", "LEAKY_RELU", "PRELU", "LOGISTIC", "TANH", "HARD_SWISH",
    "ELU", "ABS", "NEG", "EXP", "LOG", "SQRT", "RSQRT", "SIN", "POW", "SOFTMAX",
    "LOG_SOFTMAX", "L2_NORMALIZATION", "LOCAL_RESPONSE_NORMALIZATION", "MEAN", "SUM",
    "REDUCE_MAX", "REDUCE_MIN", "REDUCE_PROD", "ARG_MAX", "ARG_MIN", "RESIZE_BILINEAR",
    "RESIZE_NEAREST_NEIGHBOR", "QUANTIZE", "DEQUANTIZE", "CAST", "SELECT", "SELECT_V2",
    "LESS", "LESS_EQUAL", "GREATER", "GREATER_EQUAL", "EQUAL", "NOT_EQUAL", "LOGICAL_AND",
    "LOGICAL_OR", "LOGICAL_NOT", "TOPK_V2", "REVERSE_V2", "FLOOR", "SQUARED_DIFFERENCE",
})

CLIP_OPS = frozenset({"MINIMUM", "MAXIMUM", "RELU", "RELU6", "RELU_N1_TO_1", "RELU_0_TO_1"})
KERNEL_OPS = frozenset({"CONV_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV", "AVERAGE_POOL_2D",
                        "MAX_POOL_2D", "L2_POOL_2D"})
CHANNEL_OPS = frozenset({"CONV_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV"})
QUANT_OPS = frozenset({"QUANTIZE", "DEQUANTIZE"})
INT8_IO = frozenset({"uint8", "int8"})


def vs680_unit(graph: TFLiteGraph, op) -> str | None:
    """Where the VS680 runs `op`: "NN", "TP", "PPU", "CPU" (host fallback) or None (rejected).

    Convolutions leave the NN engine for the slower TP when stride != 1 or the kernel
    exceeds 15x15 (SyNAP manual, note under "Basic Operations"). Ops producing int32 shape
    data run on the host CPU; float variants run on the PPU.
    """
    if op.type in CPU_FALLBACK_OPS:
        return "CPU"
    unit = VS680_UNITS.get(op.type)
    if unit is None:
        return None
    outputs = graph.op_outputs(op)
    if outputs and all(t.dtype in ("int32", "int64") for t in outputs):
        return "CPU"
    if any(t.is_float and not t.is_constant for t in graph.op_inputs(op) + outputs):
        return "PPU"  # the manual lists fp32/fp16 variants of most ops on the PPU only
    if op.type in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        if (op.stride and op.stride != (1, 1)) or (op.kernel and max(op.kernel) > 15):
            return "TP"
    return unit
