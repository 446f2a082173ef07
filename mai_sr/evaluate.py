"""`mai-sr eval`: PSNR/SSIM of a TFLite model on image folders (LiteRT, no TensorFlow).

Each HR image is cropped to a multiple of the scale and bicubic-downscaled to the LR input
(:mod:`mai_sr.data`); the model's output and the bicubic upscale of the same LR image are
both scored against the HR image (:mod:`mai_sr.metrics`: RGB by default, BT.601 luma with
`y_channel`, a border crop equal to the scale unless `crop` is given). A dynamic-shape model
runs every image whole; a fixed-shape one runs tiles of its input size (exact, see
:mod:`mai_sr.tflite.runtime`).

Usage::

    mai-sr eval model_none.tflite --data ../shared/data/Set14,../shared/data/B100 --csv rows.csv
"""

from __future__ import annotations

import csv
import io
import os
import sys
import textwrap
from pathlib import Path

from mai_sr.data import iter_pairs, split_sources
from mai_sr.errors import MaiSrError
from mai_sr.tflite.runtime import FLOAT_MODELS, TFLiteSR
from mai_sr.results import EvalResult
from mai_sr.scoring import Scoring, score_pairs
from mai_sr.fileio import write_image
from mai_sr.training_data import data_notes, model_training

NOTE_WIDTH = 100  # the table's notes wrap here (its rows are 70 columns)
CSV_COLUMNS = ("dataset", "image", "height", "width", "psnr", "ssim", "bicubic_psnr",
               "bicubic_ssim")


def dataset_name(source: str) -> str:
    """'builtin', or a folder's own name (`../shared/data/Set14` -> `Set14`)."""
    return source if source == "builtin" else Path(source).resolve().name


def _cached_baseline(cached: dict, pair) -> tuple[float, float] | None:
    """The cached bicubic (PSNR, SSIM) of `pair`, if its row is for an image of this size."""
    row = cached.get(pair.name)
    if row is not None and (row["height"], row["width"]) == pair.hr.shape[:2]:
        return row["bicubic_psnr"], row["bicubic_ssim"]
    return None


def _keeping_images(pairs, kept: dict):
    """`pairs` as they are, their LR and HR images kept in ``kept["lr"]`` and ``kept["hr"]``
    (by name) for the cache while each set fits in
    :data:`mai_sr.cache.IMAGE_CACHE_MAX_BYTES`."""
    from mai_sr.cache import IMAGE_CACHE_MAX_BYTES

    held = dict.fromkeys(kept, 0)
    for pair in pairs:
        for kind, img in (("lr", pair.lr), ("hr", pair.hr)):
            held[kind] += img.nbytes
            if held[kind] <= IMAGE_CACHE_MAX_BYTES:
                kept[kind][pair.name] = img
        yield pair


def _progress_bar(items, name: str, quiet: bool):
    # tqdm (with importlib.metadata, about 20 ms) is imported when score_pairs asks for the
    # bar, by which time its thread is decoding the first images.
    from tqdm import tqdm

    return tqdm(items, desc=name, unit="img", disable=quiet)


def evaluate_tflite(model_path: str | os.PathLike, data, *, y_channel: bool = False,
                    crop: int | None = None, save_dir: str | os.PathLike | None = None,
                    quiet: bool = False, require_int8: bool = False,
                    threads: int = 2, cache_dir: str | os.PathLike | None = None,
                    use_cache: bool = True, jobs: int | None = None,
                    tile: int | None = None) -> list[EvalResult]:
    """Score a TFLite SR model on each dataset of `data`; one :class:`EvalResult` per dataset.

    `data`: a list of sources (or a comma-separated string), each 'builtin' or a folder of
    HR images as :func:`mai_sr.data.iter_pairs` accepts. `crop` defaults to the model's
    scale. `save_dir` receives the SR images as ``<save_dir>/<dataset>/<image>.png``.
    A float model (``export --precision fp32``/``fp16``) is scored as it is, its result's
    `precision` saying so, unless `require_int8` refuses it; an INT8 network with float32
    input and output (QUANTIZE/DEQUANTIZE at the edges) is scored as INT8, and a line on
    stderr says what it is. Each result's `notes` say when its images are the model's
    training images (its provenance records them) or the builtin photos
    (:mod:`mai_sr.training_data`).

    The bicubic rows come from the baseline cache in `cache_dir` (default
    ``$XDG_CACHE_HOME/mai-sr``, see :mod:`mai_sr.cache`) when present, and are stored there
    otherwise; `use_cache` False neither reads nor writes it. Decoding, inference and
    scoring overlap on `jobs` worker threads (:mod:`mai_sr.pipeline`); the scores equal a
    sequential run's. `tile` (LR pixels) runs a dynamic model in exact tiles, bounding its
    memory on large images (the scores are the same: tiling is exact).
    """
    from mai_sr._memory import reuse_freed_memory
    from mai_sr.cache import BaselineCache, CachedImages, dataset_fingerprint

    reuse_freed_memory()
    model = TFLiteSR(model_path, threads, require_int8=require_int8)
    if model.float_io and not quiet:  # say what the file is, beside the progress bars
        from tqdm import tqdm

        tqdm.write(f"{model.path.name}: {model.description}", file=sys.stderr)
    training, run = model_training(model.path, model.metadata)
    scoring = Scoring(model.scale, crop=crop, y_channel=y_channel)
    cache = BaselineCache(cache_dir) if use_cache else None
    results = []
    for source in split_sources(data):
        name = dataset_name(source)
        # Images from the cache, read as the pairs are made (opened below, once the source
        # has been checked).
        made = {"lr": CachedImages(), "hr": CachedImages()}
        pairs = iter_pairs(source, scale=model.scale, made_lr=made["lr"],
                           made_hr=made["hr"])  # raises up front
        # One stat of every image file keys the bicubic rows, the LR and the HR images.
        fingerprint = dataset_fingerprint(source) if cache else None
        key = cache.key(source, scale=model.scale, crop=scoring.border, y_channel=y_channel,
                        fingerprint=fingerprint) if cache else None
        cached = {r["name"]: r for r in (cache.get(key) or [])} if cache else {}
        kept: dict = {kind: {} for kind in made}
        if cache:
            image_keys = {kind: cache.images_key(kind, source, scale=model.scale,
                                                 fingerprint=fingerprint) for kind in made}
            for kind, images in made.items():
                images.open(cache.images_path(kind, image_keys[kind]))
            pairs = _keeping_images(pairs, kept)

        def save(pair, sr, name=name):
            write_image(Path(save_dir) / name / f"{pair.name}.png", sr)

        try:
            rows = [r.image_score() for r in score_pairs(
                model, pairs, scoring, tile=tile, jobs=jobs,
                baselines=lambda pair: _cached_baseline(cached, pair),
                on_sr=save if save_dir is not None else None,
                progress=lambda it, name=name: _progress_bar(it, name, quiet))]
        finally:
            for images in made.values():
                images.close()
        if not rows:
            raise MaiSrError(f"{source}: no image large enough to evaluate")
        if cache and [r.name for r in rows] != list(cached):
            cache.put(key, [{"name": r.name, "height": r.height, "width": r.width,
                             "bicubic_psnr": r.bicubic_psnr, "bicubic_ssim": r.bicubic_ssim}
                            for r in rows])
        for kind, images in made.items():
            if cache and not images.holds(kept[kind]):
                cache.put_images(kind, image_keys[kind], kept[kind])
        notes = data_notes(name, [r.name for r in rows], training, run)
        results.append(EvalResult(model=model.path.name, dataset=name, images=tuple(rows),
                                  y_channel=y_channel, crop=scoring.border,
                                  precision=model.precision, notes=tuple(notes)))
    return results


def results_csv(results: list[EvalResult]) -> str:
    """One CSV row per image of every result (columns :data:`CSV_COLUMNS`)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for result in results:
        for img in result.images:
            writer.writerow([result.dataset, img.name, img.height, img.width,
                             f"{img.psnr:.4f}", f"{img.ssim:.5f}",
                             f"{img.bicubic_psnr:.4f}", f"{img.bicubic_ssim:.5f}"])
    return out.getvalue()


def format_results(results: list[EvalResult]) -> str:
    """A plain-text table: one row per dataset with the mean scores and the bicubic baseline,
    then the results' notes (a float model, training images)."""
    first = results[0]
    channel = "Y (BT.601)" if first.y_channel else "RGB"
    kind = (f" ({FLOAT_MODELS[first.precision]}: a float reference, not an INT8 score)"
            if first.precision in FLOAT_MODELS else "")
    lines = [f"{first.model}{kind}: PSNR/SSIM on {channel}, border crop {first.crop}",
             f"{'dataset':<16} {'images':>6} {'PSNR':>8} {'SSIM':>7} {'bicubic PSNR':>13} "
             f"{'bicubic SSIM':>13}"]
    for r in results:
        mark = "*" if r.notes else ""
        lines.append(f"{r.dataset + mark:<16} {len(r.images):>6} {r.psnr:>8.3f} {r.ssim:>7.4f} "
                     f"{r.bicubic_psnr:>13.3f} {r.bicubic_ssim:>13.4f}")
    lines += [textwrap.fill(note, NOTE_WIDTH, initial_indent="* ", subsequent_indent="  ",
                            break_on_hyphens=False)
              for r in results for note in r.notes]
    return "\n".join(lines)
