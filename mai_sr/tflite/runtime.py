"""Run a super-resolution ``.tflite`` file with LiteRT (no TensorFlow).

:class:`TFLiteSR` wraps ``ai_edge_litert.interpreter.Interpreter`` for image-to-image models
of the challenge's shape: one ``1xHxWx3`` input and one ``1x(sH)x(sW)x3`` output. Callers
always pass and get uint8 pixels; the wrapper applies the model's uint8/int8 quantization
(scale, zero point) or float conversion at the edges.

Two kinds of file (the MAI 2022 challenge's submissions, report section 2):

- **dynamic** (``model_none.tflite``, input shape signature ``1x-1x-1x3``): any image size;
  the input is resized and tensors re-allocated only when the size changes.
- **fixed** (``model.tflite``, ``1x360x640x3``): images are cut into tiles of exactly that
  size; see :meth:`TFLiteSR.tiles`.

Tiling is exact. A model without strides or global ops computes each output pixel from the
LR pixels within its *receptive field radius* ``r`` (``dilation*(k-1)/2`` summed along the
longest path of convolutions). A tile computes wrong values only within ``r`` pixels of a tile edge that is
not an image edge (there the model's SAME zero padding replaces the missing neighbours), so
tiles overlap by ``2r`` and each keeps only the part at least ``r`` pixels from its cut
edges. The last tile in each row/column is shifted back to end at the image border, so every
tile has the same size and lies inside the image: the tiled result equals one whole-image
invoke bit for bit. Only when the image is smaller than a fixed-shape model's input is the
tile padded (edge replication); then the pixels within ``r`` of the padded (bottom/right)
border differ from what a dynamic model would give, because padding is not the model's zero
padding.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from ai_edge_litert.interpreter import Interpreter

from mai_sr._quiet import stderr_silenced
from mai_sr.errors import MaiSrError, first_line
from mai_sr.tflite.artifacts import read_sidecar
from mai_sr.tflite.graph import TFLiteGraph, check_builtin_only, read_graph

# LR size a dynamic model is first allocated at, to read its scale from the output shape.
_PROBE = 16
_delegate_line_hidden = False  # LiteRT announces its XNNPACK delegate once per process


@contextlib.contextmanager
def quiet_delegate_notice():
    """Around `allocate_tensors`: hide LiteRT's "INFO: Created TensorFlow Lite XNNPACK
    delegate for CPU." line, which the C++ runtime writes to file descriptor 2 on the
    process's first allocation (no LiteRT option or environment variable silences it, and
    turning the delegate off would change the timings). Only the first allocation is wrapped,
    so later stderr output (progress bars, warnings) is never swallowed. MAI_SR_TF_LOGS=1
    shows the line.
    """
    global _delegate_line_hidden
    if _delegate_line_hidden:
        yield
        return
    with stderr_silenced():
        yield
    _delegate_line_hidden = True


@dataclass(frozen=True)
class Span:
    """A tile along one axis: it reads [start, stop) and keeps [keep_start, keep_stop)."""

    start: int
    stop: int
    keep_start: int
    keep_stop: int


def tile_spans(length: int, tile: int, margin: int) -> list[Span]:
    """Split an axis of `length` pixels into tiles of `tile` pixels overlapping by 2*`margin`.

    The kept parts partition [0, length); each lies at least `margin` pixels from its tile's
    edges unless that edge is the image edge. The last tile ends at `length`, so all tiles
    have length min(tile, length).
    """
    if tile >= length:
        return [Span(0, length, 0, length)]
    if tile <= 2 * margin:
        raise MaiSrError(f"tile size {tile}: must be larger than twice the model's receptive "
                         f"field radius ({margin}), i.e. at least {2 * margin + 1}")
    spans = []
    start = keep_start = 0
    while start + tile < length:
        keep_stop = start + tile - margin
        spans.append(Span(start, start + tile, keep_start, keep_stop))
        keep_start = keep_stop
        start = keep_stop - margin
    spans.append(Span(length - tile, length, keep_start, length))
    return spans




def receptive_field_radius(graph: TFLiteGraph) -> int:
    """LR pixels on each side that one output pixel depends on (the tile margin).

    The longest path from the input to the output, each convolution or pooling op adding its
    SAME-padding reach k_eff // 2, k_eff = dilation * (k - 1) + 1 (the larger of height and
    width); parallel branches (an un-collapsed rep-block: 3x3, 1x1 and identity added
    together) take the larger reach, not the sum. It assumes stride 1 and no global ops
    (mean, attention), as in every challenge model, and counts reach after depth-to-space in
    LR pixels too (an over-estimate, which is safe for tiling).
    """
    reach: dict[int, int] = {}  # tensor index -> radius of the input region it depends on
    for op in graph.ops:  # TFLite stores ops in execution (topological) order
        radius = max((reach.get(i, 0) for i in op.inputs if i >= 0), default=0)
        if op.kernel is not None:
            dilation = (op.options.get("dilation_h_factor", 1),
                        op.options.get("dilation_w_factor", 1))
            radius += max((d * (k - 1) + 1) // 2 for k, d in zip(op.kernel, dilation))
        for o in op.outputs:
            reach[o] = radius
    return max((reach.get(o, 0) for o in graph.outputs), default=0)


class TFLiteSR:
    """A super-resolution TFLite model: ``TFLiteSR(path).upscale(lr_uint8) -> sr_uint8``.

    Attributes: `path`, `scale` (int), `fixed_shape` ((h, w) LR input, or None when dynamic),
    `input_dtype` / `output_dtype` (numpy types), `input_quant` / `output_quant`
    ((scale, zero_point); (0.0, 0) for float), `is_float` (float compute inside the network),
    `float_io` (float32 IO around an INT8 core), `precision` ("int8", "fp16" or "fp32", as
    ``mai-sr export --precision`` names them), `description` (what the file is, one phrase),
    `receptive_field` (radius in LR pixels, used as the tile margin), `metadata` (the
    provenance sidecar, or {}).

    Raises MaiSrError naming the file for a missing, truncated or non-TFLite file, a model
    whose IO is not 1xHxWx3 -> 1x(sH)x(sW)x3, and, with `require_int8`, a model that computes
    in float (float32 IO around an INT8 core is accepted).
    """

    def __init__(self, path: str | os.PathLike, threads: int = 2, *, require_int8: bool = False):
        self.path = Path(path)
        # The flatbuffer reader names a missing, empty, truncated or foreign file precisely.
        graph = read_graph(self.path)
        check_builtin_only(graph)
        try:
            self._interpreter = Interpreter(model_path=str(self.path), num_threads=threads)
        except ValueError as exc:
            reason = " ".join(str(exc).split(".")[0].split())
            raise MaiSrError(f"{self.path}: not a valid TFLite model ({reason})") from None
        inputs = self._interpreter.get_input_details()
        outputs = self._interpreter.get_output_details()
        if len(inputs) != 1 or len(outputs) != 1:
            raise MaiSrError(f"{self.path}: not an image model (has {len(inputs)} inputs and "
                             f"{len(outputs)} outputs; expected 1 and 1)")
        self._input, self._output = inputs[0], outputs[0]
        in_sig = [int(d) for d in self._input["shape_signature"]]
        out_sig = [int(d) for d in self._output["shape_signature"]]
        if not (_image_like(in_sig) and _image_like(out_sig)):
            raise MaiSrError(f"{self.path}: not an image model (input {_shape_str(in_sig)}, "
                             f"output {_shape_str(out_sig)}; expected 1xHxWx3 -> 1x3Hx3Wx3)")

        self.input_dtype = self._input["dtype"]
        self.output_dtype = self._output["dtype"]
        self.input_quant = tuple(self._input["quantization"])
        self.output_quant = tuple(self._output["quantization"])
        self.precision, self.float_io, float_types = graph_precision(graph)
        self.is_float = bool(float_types)
        if require_int8 and self.is_float:
            raise MaiSrError(f"{self.path}: is a {'/'.join(sorted(float_types))} model (it "
                             "computes in float inside the network); an INT8 score needs a "
                             "full-integer model (for a mai-sr run: export with --precision int8)")
        self.description = describe_precision(self.precision, self.float_io,
                                              np.dtype(self.output_dtype).name)

        self.metadata = read_sidecar(self.path)
        dynamic = in_sig[1] < 0 or in_sig[2] < 0
        self.fixed_shape = None if dynamic else (in_sig[1], in_sig[2])
        self._size = None if dynamic else self.fixed_shape
        with quiet_delegate_notice():
            if dynamic:
                self._allocate((_PROBE, _PROBE))
                # A TRANSPOSE_CONV whose output shape is computed in the graph (any H x W)
                # has a dynamic output tensor: its shape (1x1 until then) is known only after
                # an invoke, which other graphs are spared.
                if self._interpreter.get_output_details()[0]["shape"][1] < _PROBE:
                    self._interpreter.set_tensor(self._input["index"], np.zeros(
                        (1, _PROBE, _PROBE, 3), self.input_dtype))
                    self._interpreter.invoke()
            else:
                try:
                    self._interpreter.allocate_tensors()
                except (RuntimeError, ValueError, MemoryError) as exc:
                    raise self._allocation_error(self.fixed_shape, exc) from None
        in_h, in_w = self._size
        out_h, out_w = (int(d) for d in self._interpreter.get_output_details()[0]["shape"][1:3])
        if out_h % in_h or out_w % in_w or out_h // in_h != out_w // in_w:
            raise MaiSrError(f"{self.path}: not an image model (output {out_h}x{out_w} is not "
                             f"an integer multiple of input {in_h}x{in_w})")
        self.scale = out_h // in_h
        declared = self.metadata.get("scale")
        if declared is not None and declared != self.scale:
            raise MaiSrError(f"{self.path}: graph upscales x{self.scale} but {self.path}.json "
                             f"says scale {declared}")
        self.receptive_field = receptive_field_radius(graph)

    def __repr__(self) -> str:
        shape = "dynamic" if self.fixed_shape is None else "x".join(map(str, self.fixed_shape))
        return (f"TFLiteSR({str(self.path)!r}, x{self.scale}, {shape}, "
                f"{np.dtype(self.input_dtype).name} IO)")

    # ------------------------------------------------------------ one invoke

    def _allocate(self, size: tuple[int, int]) -> None:
        try:
            self._interpreter.resize_tensor_input(self._input["index"],
                                                  [1, size[0], size[1], 3])
            self._interpreter.allocate_tensors()
        except (RuntimeError, ValueError, MemoryError) as exc:
            raise self._allocation_error(size, exc) from None
        self._size = size

    def _allocation_error(self, size, exc: BaseException) -> MaiSrError:
        """LiteRT could not allocate the tensors of a `size` input: say so in one line, and
        how to bound the memory (tiles) where the model allows it."""
        hint = ("; run it in tiles (--tile 512)" if self.fixed_shape is None
                else "; this file's input size itself is too large to run here")
        return MaiSrError(f"{self.path}: LiteRT cannot allocate a {size[0]}x{size[1]} input "
                          f"({first_line(exc)}){hint}")

    def _quantize(self, lr: np.ndarray) -> np.ndarray:
        if np.issubdtype(self.input_dtype, np.floating):
            return lr.astype(self.input_dtype)
        scale, zero = self.input_quant
        if self.input_dtype == np.uint8 and (scale in (0.0, 1.0)) and zero == 0:
            return lr  # raw pixels in, the challenge's convention
        info = np.iinfo(self.input_dtype)
        q = np.round(lr.astype(np.float32) / (scale or 1.0)) + zero
        return np.clip(q, info.min, info.max).astype(self.input_dtype)

    def _dequantize(self, out: np.ndarray) -> np.ndarray:
        if np.issubdtype(self.output_dtype, np.floating):
            real = out
        else:
            scale, zero = self.output_quant
            if self.output_dtype == np.uint8 and (scale in (0.0, 1.0)) and zero == 0:
                return out
            real = (out.astype(np.float32) - zero) * (scale or 1.0)
        return np.clip(np.round(real), 0, 255).astype(np.uint8)

    def run(self, lr: np.ndarray) -> np.ndarray:
        """One invoke on a uint8 HxWx3 image (a fixed-shape model needs exactly its size)."""
        lr = _check_image(lr)
        size = lr.shape[:2]
        if size != self._size:
            if self.fixed_shape is not None:
                raise MaiSrError(f"{self.path}: input is fixed at {self.fixed_shape[0]}x"
                                 f"{self.fixed_shape[1]}, got a {size[0]}x{size[1]} image "
                                 "(use upscale() to tile)")
            self._allocate(size)
        self._interpreter.set_tensor(self._input["index"], self._quantize(lr)[None])
        self._interpreter.invoke()
        return self._dequantize(self._interpreter.get_tensor(self._output["index"])[0])

    def prepare(self, height: int, width: int,
                tile: int | tuple[int, int] | None = None) -> None:
        """Allocate the tensors :meth:`upscale` needs first for a `height` x `width` image.

        Allocation at a new size costs about as much as an invoke; a caller that knows the
        size before the pixels (from the file header) pays it while the image decodes.
        """
        if self.fixed_shape is not None:
            return
        rows, cols = self.tiles(height, width, tile)[0]
        size = (rows.stop - rows.start, cols.stop - cols.start)
        if size != self._size:
            self._allocate(size)

    # ------------------------------------------------------------ tiling

    def tile_size(self, tile: int | tuple[int, int] | None = None) -> tuple[int, int] | None:
        """The (h, w) LR tile used for `tile`: the fixed shape, `tile`, or None (whole image)."""
        if self.fixed_shape is not None:
            if tile is not None and _pair(tile) != self.fixed_shape:
                raise MaiSrError(f"--tile: {self.path} has a fixed {self.fixed_shape[0]}x"
                                 f"{self.fixed_shape[1]} input, so tiles are that size")
            return self.fixed_shape
        return None if tile is None else _pair(tile)

    def tiles(self, height: int, width: int,
              tile: int | tuple[int, int] | None = None) -> list[tuple[Span, Span]]:
        """The (row span, column span) of every tile of a `height` x `width` LR image."""
        size = self.tile_size(tile)
        if size is None:
            return [(Span(0, height, 0, height), Span(0, width, 0, width))]
        rows = tile_spans(height, size[0], self.receptive_field)
        cols = tile_spans(width, size[1], self.receptive_field)
        return [(r, c) for r in rows for c in cols]

    def upscale(self, lr: np.ndarray, tile: int | tuple[int, int] | None = None,
                on_tile: Callable[[], object] | None = None) -> np.ndarray:
        """Upscale a uint8 HxWx3 image of any size; returns uint8 (sH)x(sW)x3.

        Dynamic models run the whole image in one invoke unless `tile` (LR pixels, int or
        (h, w)) is given; fixed-shape models always tile at their input size. `on_tile` is
        called after each tile (progress bars).
        """
        lr = _check_image(lr)
        h, w = lr.shape[:2]
        s = self.scale
        size = self.tile_size(tile)
        try:
            out = np.empty((h * s, w * s, 3), np.uint8)
        except MemoryError:
            raise MaiSrError(f"a {h * s}x{w * s} output does not fit in this machine's "
                             "memory") from None
        for rows, cols in self.tiles(h, w, tile):
            patch = lr[rows.start:rows.stop, cols.start:cols.stop]
            ph, pw = patch.shape[:2]
            if size is not None and (ph < size[0] or pw < size[1]):
                # Only when the image is smaller than a fixed input: pad, run, crop.
                patch = np.pad(patch, ((0, size[0] - ph), (0, size[1] - pw), (0, 0)), mode="edge")
            sr = self.run(patch)
            y0, y1 = rows.keep_start - rows.start, rows.keep_stop - rows.start
            x0, x1 = cols.keep_start - cols.start, cols.keep_stop - cols.start
            out[rows.keep_start * s:rows.keep_stop * s, cols.keep_start * s:cols.keep_stop * s] = \
                sr[y0 * s:y1 * s, x0 * s:x1 * s]
            if on_tile is not None:
                on_tile()
        return out


# What a float file is, by its precision: eval's and upscale's output say it, so a float
# file's PSNR (the FP32 reference of an INT8 export) is never read as an INT8 score.
FLOAT_MODELS = {"fp32": "float32 model", "fp16": "float32 model with float16 weights"}


def describe_precision(precision: str, float_io: bool = False, io_dtype: str = "uint8") -> str:
    """What a file computes in, as one phrase ("a float32 model (float compute: ...)")."""
    if precision in FLOAT_MODELS:
        return f"a {FLOAT_MODELS[precision]} (float compute: a float reference, not INT8)"
    if float_io:
        return ("an INT8 network with float32 input and output (QUANTIZE/DEQUANTIZE at the "
                "edges only): evaluated as INT8; on a device the edge conversions are CPU work")
    return f"a full-integer model ({io_dtype} IO)"


def graph_precision(graph: TFLiteGraph) -> tuple[str, bool, set[str]]:
    """(precision, float_io, float types inside the network) of a TFLite graph.

    precision is "int8", "fp16" or "fp32" as ``mai-sr export --precision`` names them (an
    fp16 file keeps float16 weights and computes in float32); float_io is True for float32
    IO around an INT8 core (QUANTIZE/DEQUANTIZE at the edges only), as some published files
    ship: that network computes in INT8, so it is scored as INT8.
    """
    edges = set(graph.inputs) | set(graph.outputs)
    float_types = {t.dtype for t in graph.tensors if t.is_float and t.index not in edges}
    if float_types:
        return ("fp16" if "float16" in float_types else "fp32"), False, float_types
    return "int8", any(t.is_float for t in graph.tensors), float_types


def model_precision(path: str | os.PathLike) -> str:
    """"int8", "fp16" or "fp32" of a .tflite file, from its graph alone (no interpreter)."""
    return graph_precision(read_graph(Path(path)))[0]


def _image_like(sig: list[int]) -> bool:
    return len(sig) == 4 and sig[0] in (1, -1) and sig[3] == 3


def _shape_str(sig: list[int]) -> str:
    return "x".join("?" if d < 0 else str(d) for d in sig)


# The largest LR tile side: a 2048x2048 tile is 4.2 M LR pixels, a 6144x6144 output at x3,
# about 0.5 GB of activations for a 28-channel model in float; a bigger tile bounds no
# memory (the point of tiling), and a huge one only fails later in the allocator.
MAX_TILE = 2048


def _pair(tile: int | tuple[int, int]) -> tuple[int, int]:
    h, w = (tile, tile) if isinstance(tile, (int, np.integer)) else tile
    if h < 1 or w < 1:
        raise MaiSrError(f"--tile: must be > 0, got {tile}")
    if h > MAX_TILE or w > MAX_TILE:
        raise MaiSrError(f"--tile: {tile} is larger than the largest tile, {MAX_TILE} LR pixels "
                         "a side (omit --tile to run the whole image at once)")
    return int(h), int(w)


def _check_image(img: np.ndarray) -> np.ndarray:
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3 or min(img.shape[:2]) < 1:
        raise MaiSrError(f"expected a uint8 HxWx3 image, got {img.dtype} {img.shape}")
    return img
