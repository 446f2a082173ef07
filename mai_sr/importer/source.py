"""What a reader extracts from a published model file: its convs in graph order (TF-free).

Every reader (PyTorch checkpoint, Keras/SavedModel, TFLite) turns its file into a
:class:`SourceNet`: the 2-D convs as (kernel HWIO, bias) pairs in graph order, the anchor it
found (none in the weights, a concat of the input, or a 1x1 nearest-conv), and the
conventions its framework implies (kernel layout, depth-to-space channel order). The
matcher (:mod:`mai_sr.importer.matcher`) then fits those convs to a mai-sr deploy graph.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mai_sr.errors import MaiSrError

# Kernel layouts, as the axes of a 4-D conv kernel, and the transpose that gives Keras' HWIO.
LAYOUTS = {"OIHW": (2, 3, 1, 0), "OHWI": (1, 2, 3, 0), "HWIO": (0, 1, 2, 3)}
# The most weight bytes an import reads from one file, decompressed. A mobile SR model is
# small: ETDS-L, the largest in the ETDS zoo, holds 160 K float32 parameters (0.6 MiB), so
# 64 MiB (16 M float32 values, 100x that) refuses a decompression or stride bomb long before
# it can exhaust memory, and still admits any model a phone NPU runs in real time.
MAX_SOURCE_BYTES = 64 * 2**20
# Depth-to-space channel orders: TF's depth_to_space reads output pixel (i, j) of a block,
# colour c, from channel (i*s + j)*C + c (DCR); PyTorch's PixelShuffle from c*s^2 + i*s + j
# (CRD).
CHANNEL_ORDERS = ("dcr", "crd")


@dataclass
class SourceConv:
    """One conv of the source: kernel (kh, kw, in, out) float32, bias (out,) or None."""

    kernel: np.ndarray
    bias: np.ndarray | None
    label: str  # where it came from, for messages ("backbone.2.0", "CONV_2D op 3")


@dataclass
class SourceNet:
    """The convs and conventions read from one source file."""

    path: str
    format: str            # "pytorch", "savedmodel", "keras-h5", "keras", "tflite"
    layout: str            # the file's kernel layout (a key of LAYOUTS)
    channel_order: str     # the framework's depth-to-space order (a CHANNEL_ORDERS entry)
    convs: list[SourceConv]
    anchor: str = "built in"   # "built in" (code, no weights), "concat", "nearest conv"
    anchor_kernel: np.ndarray | None = None  # the 1x1 anchor conv's HWIO kernel, if any
    anchor_bias: np.ndarray | None = None
    notes: list[str] = field(default_factory=list)  # e.g. "state dict under 'params_ema'"


def to_hwio(kernel: np.ndarray, layout: str, label: str) -> np.ndarray:
    """A 4-D kernel in `layout` as float32 HWIO."""
    if kernel.ndim != 4:
        raise MaiSrError(f"{label}: kernel has {kernel.ndim} dimensions, expected 4")
    return np.ascontiguousarray(np.transpose(kernel, LAYOUTS[layout]), dtype=np.float32)


def is_anchor_conv(kernel_hwio: np.ndarray) -> bool:
    """A 1x1 conv from the 3 input colours to 3*s^2 channels: a nearest-conv anchor."""
    kh, kw, cin, cout = kernel_hwio.shape
    s = round((cout / 3) ** 0.5)
    return (kh, kw, cin) == (1, 1, 3) and s > 1 and 3 * s * s == cout


def split_anchor(convs: list[SourceConv]) -> tuple[list[SourceConv], SourceConv | None]:
    """(body convs, the 1x1 anchor conv or None): body convs are the 3x3 ones."""
    anchors = [c for c in convs if is_anchor_conv(c.kernel)]
    if len(anchors) > 1:
        raise MaiSrError(f"{len(anchors)} 1x1 anchor-like convs ({', '.join(c.label for c in anchors)}); "
                         "expected at most one")
    body = [c for c in convs if not anchors or c is not anchors[0]]
    return body, anchors[0] if anchors else None
