"""Scoring a super-resolution predictor against HR images: the one loop behind ``eval``,
``report``'s Keras FP32 column, ``train``'s validation and ``import``'s sanity gate.

A predictor turns an LR image (uint8 HxWx3) into its SR image. :func:`predictor` makes one
of whatever a command holds: a ``.tflite`` path or a loaded :class:`~mai_sr.tflite.runtime.
TFLiteSR` (exact tiles), a Keras model (one float32 batch of one image per call, output
rounded and clipped to [0, 255]), or a plain callable LR -> SR. :func:`score_pairs` runs it
over (LR, HR) pairs and scores SR and a baseline (bicubic, as the challenge reports, or
nearest neighbour) against HR with :mod:`mai_sr.metrics` (RGB or BT.601 luma, border crop =
the scale unless given). The model runs on the calling thread (neither a LiteRT interpreter
nor a Keras model is shared between threads); decoding runs ahead of it and the metrics
behind it on worker threads (:mod:`mai_sr.pipeline`), so the scores equal a sequential
run's. The model runs the images of one LR size together, within a bounded look-ahead
(:func:`by_size`); the rows come back in the input's order. No TensorFlow is imported here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, Iterable

import numpy as np

from mai_sr.data import bicubic_upscale
from mai_sr.errors import MaiSrError
from mai_sr.results import ImageScore

Predictor = Callable[[np.ndarray], np.ndarray]
BASELINES = ("bicubic", "nearest")


@dataclass(frozen=True)
class Scoring:
    """How images are scored: `crop` pixels off each border (None: the scale), RGB or
    luma (`y_channel`), SSIM beside PSNR or not, and which `baseline` (None: none)."""

    scale: int
    crop: int | None = None
    y_channel: bool = False
    ssim: bool = True
    baseline: str | None = "bicubic"

    def __post_init__(self):
        if self.crop is not None and self.crop < 0:
            raise MaiSrError(f"--crop: must be >= 0, got {self.crop}")
        if self.baseline not in (None, *BASELINES):
            raise MaiSrError(f"baseline: {self.baseline!r} is not one of {', '.join(BASELINES)}")

    @property
    def border(self) -> int:
        return self.scale if self.crop is None else self.crop


@dataclass(frozen=True)
class Scored:
    """One image's scores: the predictor's and the baseline's (None where not computed)."""

    name: str
    height: int
    width: int
    psnr: float
    ssim: float | None = None
    baseline_psnr: float | None = None
    baseline_ssim: float | None = None

    def image_score(self) -> ImageScore:
        """As a row of ``mai-sr eval`` (the baseline being bicubic)."""
        return ImageScore(name=self.name, psnr=self.psnr, ssim=self.ssim,
                          bicubic_psnr=self.baseline_psnr, bicubic_ssim=self.baseline_ssim,
                          height=self.height, width=self.width)


def to_uint8(out) -> np.ndarray:
    """A model's float output as pixels: rounded to the nearest integer, clipped to [0, 255]."""
    out = np.asarray(out)
    if out.dtype == np.uint8:
        return out
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def float_batch_predictor(call: Callable) -> Predictor:
    """A predictor of a call taking a float32 batch (1, h, w, 3) in [0, 255] and returning
    (1, H, W, 3) floats: a Keras model, a compiled ``tf.function``."""
    return lambda lr: to_uint8(np.asarray(call(lr[None].astype(np.float32)))[0])


def _is_keras_model(model) -> bool:
    # Duck-typed, so that scoring a TFLite file never imports TensorFlow.
    return hasattr(model, "trainable_variables") and hasattr(model, "layers")


def predictor(model, *, tile: int | None = None) -> Predictor:
    """A predictor (uint8 LR HxWx3 -> uint8 SR) of `model`: a ``.tflite`` path, a
    :class:`~mai_sr.tflite.runtime.TFLiteSR` (run in exact `tile`-sized tiles when given), a
    Keras model (called with ``training=False``), or a callable LR -> SR (a float output is
    rounded and clipped)."""
    if isinstance(model, (str, os.PathLike)):
        from mai_sr.tflite.runtime import TFLiteSR

        model = TFLiteSR(model)
    if hasattr(model, "upscale"):
        return lambda lr: model.upscale(lr, tile=tile)
    if _is_keras_model(model):
        return float_batch_predictor(lambda x: model(x, training=False))
    if not callable(model):
        raise MaiSrError(f"cannot score {type(model).__name__}: not a model or a callable")
    return lambda lr: to_uint8(model(lr))


def nearest_upscale(lr: np.ndarray, scale: int) -> np.ndarray:
    """Nearest-neighbour x`scale` upscaling (each LR pixel repeated scale x scale)."""
    return np.repeat(np.repeat(lr, scale, axis=0), scale, axis=1)


def baseline_image(lr: np.ndarray, scale: int, kind: str) -> np.ndarray:
    """The baseline's SR image: "bicubic" (the challenge's) or "nearest"."""
    return bicubic_upscale(lr, scale) if kind == "bicubic" else nearest_upscale(lr, scale)


def score_image(name: str, sr: np.ndarray, hr: np.ndarray, lr: np.ndarray, scoring: Scoring,
                baseline: tuple[float, float | None] | None = None) -> Scored:
    """Scores of one image; the baseline's from `baseline` ((PSNR, SSIM), e.g. cached) when
    given, else computed from `lr`. A metric's error names the image."""
    crop, y = scoring.border, scoring.y_channel

    # Imported at the first image, not with this module: OpenCV's import (about 17 ms) then
    # runs while score_pairs' thread decodes the first images, instead of before it starts.
    from mai_sr.metrics import psnr, ssim

    def scores(img) -> tuple[float, float | None]:
        return (psnr(img, hr, crop=crop, y_channel=y),
                ssim(img, hr, crop=crop, y_channel=y) if scoring.ssim else None)

    try:
        if baseline is None and scoring.baseline is not None:
            baseline = scores(baseline_image(lr, scoring.scale, scoring.baseline))
        model_psnr, model_ssim = scores(sr)
    except MaiSrError as exc:
        raise MaiSrError(f"{name}: {exc}") from None
    base_psnr, base_ssim = baseline if baseline is not None else (None, None)
    return Scored(name, hr.shape[0], hr.shape[1], model_psnr, model_ssim, base_psnr, base_ssim)


def _named(pairs: Iterable) -> Iterable:
    """ImagePairs as they are; (lr, hr) tuples named by their position."""
    for i, pair in enumerate(pairs):
        if isinstance(pair, tuple):
            from mai_sr.data import ImagePair

            lr, hr = pair
            pair = ImagePair(str(i), hr, lr)
        yield pair


# How far the model's order may run ahead of the input's to keep to one LR size: LiteRT
# re-allocates its tensors (and XNNPACK re-plans) at every new input size, about as much CPU
# as an invoke. B100 alternates 35 times between portrait and landscape in file order; a
# look-ahead of 16 images leaves 4 size changes (all images: 2). Measured on a warm B100
# `eval` (CPU seconds of the inference): 0.97-1.02 in file order, 0.83-0.84 grouped. The
# byte bound keeps the held images small on data sets of large photos, whose sizes rarely
# repeat anyway.
LOOKAHEAD_IMAGES = 16
LOOKAHEAD_BYTES = 64 << 20


def _pair_bytes(pair) -> int:
    return pair.lr.nbytes + pair.hr.nbytes


def by_size(pairs: Iterable, images: int = LOOKAHEAD_IMAGES,
            nbytes: int | None = LOOKAHEAD_BYTES) -> Iterable[tuple[int, object]]:
    """(input position, pair) for every pair, the pairs of the LR size the model last ran
    first: while the next one has another size, pairs are read ahead (at most `images` of
    them and `nbytes` of pixels held) until one of that size turns up; when none does, the
    oldest held pair runs (and its size becomes the current one). `nbytes` None: no bound
    (pairs already in memory). The order depends only on the sizes, so a run is
    repeatable."""
    source = enumerate(pairs)
    held: list[tuple[int, object]] = []
    held_bytes = 0
    size = None
    exhausted = False
    while True:
        pick = next((i for i, (_, p) in enumerate(held) if p.lr.shape == size), None)
        # Before the first pair has run there is no size to look for: reading ahead would
        # only delay the model's start (by 16 decodes on B100, a tenth of a warm `eval`).
        while pick is None and not exhausted and (not held or (
                size is not None and len(held) < images
                and (nbytes is None or held_bytes < nbytes))):
            item = next(source, None)
            if item is None:
                exhausted = True
                break
            held.append(item)
            held_bytes += _pair_bytes(item[1])
            if item[1].lr.shape == size:
                pick = len(held) - 1
        if not held:
            return
        position, pair = held.pop(pick or 0)
        held_bytes -= _pair_bytes(pair)
        size = pair.lr.shape
        yield position, pair


def score_pairs(model, pairs: Iterable, scoring: Scoring, *, tile: int | None = None,
                baselines: Callable | None = None, on_sr: Callable | None = None,
                progress: Callable[[Iterable], Iterable] | None = None,
                jobs: int | None = None) -> list[Scored]:
    """Run `model` (anything :func:`predictor` takes) on every pair and score it.

    `pairs`: :class:`~mai_sr.data.ImagePair` objects (an iterator is decoded ahead on a
    thread) or (LR uint8 HxWx3, HR uint8) tuples. `baselines(pair)` may return the
    baseline's (PSNR, SSIM) of a pair (a cache) or None to compute it. `on_sr(pair, sr)`
    receives each SR image on a worker thread (saving). `progress` wraps the pairs (a
    progress bar). `jobs`: metric threads (:func:`mai_sr.pipeline.default_jobs`).
    The model runs the pairs of one LR size together (:func:`by_size`; a list all at once),
    so `on_sr` and `progress` see them in that order. Returns one :class:`Scored` per pair,
    in the input's order.
    """
    from mai_sr.pipeline import OrderedWork, prefetch

    predict = predictor(model, tile=tile)
    rows: list[tuple[int, Scored]] = []

    def score(position, pair, sr, baseline):
        row = score_image(pair.name, sr, pair.hr, pair.lr, scoring, baseline)
        if on_sr is not None:
            on_sr(pair, sr)
        return position, row

    in_memory = isinstance(pairs, (list, tuple))
    loaded = _named(pairs) if in_memory else prefetch(_named(pairs))
    # Pairs given as a list are in memory already: grouped all at once.
    ordered = by_size(loaded, len(pairs), None) if in_memory else by_size(loaded)
    try:
        with OrderedWork(jobs, on_result=rows.append) as work:
            for position, pair in (progress(ordered) if progress else ordered):
                work.submit(score, position, pair, predict(pair.lr),
                            baselines(pair) if baselines else None)
    finally:
        loaded.close()  # stops the decoding thread when leaving early
    return [row for _, row in sorted(rows, key=lambda item: item[0])]


def mean_psnr(rows: list[Scored], baseline: bool = False) -> float:
    """Mean PSNR of the predictor (or, with `baseline`, of the baseline) over `rows`."""
    return float(np.mean([r.baseline_psnr if baseline else r.psnr for r in rows]))
