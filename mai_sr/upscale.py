"""`mai-sr upscale`: upscale image files or folders with a TFLite model (LiteRT, no TensorFlow).

Any image size works: dynamic models run the whole image (or `tile`-sized tiles), fixed-shape
models run tiles of their input size; tiles overlap by the model's receptive field so the
result equals one whole-image invoke (see :mod:`mai_sr.tflite.runtime`). Images keep their look:

- EXIF orientation is applied on read, so the output is upright (and carries no rotation tag);
- greyscale (L) goes through the model as RGB and is converted back to L;
- alpha (LA, RGBA, palette with transparency) is upscaled by bicubic, colour by the model;
- other modes (CMYK, 1-bit...) are converted to RGB (or L) first, and 16-bit images are
  rounded to 8 bits (:mod:`mai_sr.imageio`, the decoder every command shares).

Usage::

    mai-sr upscale photo.jpg photo_x3.png --model model_none.tflite
    mai-sr upscale photos/ upscaled/ --model model.tflite   # folders, tiled at 360x640
"""

from __future__ import annotations

import os
from math import ceil
from pathlib import Path

import numpy as np
from PIL import Image

from mai_sr.data import IMAGE_SUFFIXES, bicubic_upscale
from mai_sr.errors import MaiSrError
from mai_sr.fileio import FORMATS, PNG_LEVEL, QUALITY, check_encoding, write_image
from mai_sr.imageio import MAX_PIXELS, read_image, upright_size
from mai_sr.tflite.runtime import TFLiteSR
from mai_sr.weights import model_file

# A dynamic model runs a large image in even tiles no larger than the challenge's LR frame,
# 360x640 (Mobile AI 2022 quantized-SR challenge: 640x360 -> 1920x1080). LiteRT's XNNPACK
# delegate spends about as much CPU allocating for a new input size as invoking at it, and
# its memory grows with that size: a whole 1080p input costs 0.8 s of CPU and 1.5 GB before
# its first pixel, 281x491 tiles 0.1 s and 0.3 GB. Tiles of one size are allocated once,
# even tiles overlap by only twice the receptive field (6.5% more pixels for 1080p), and the
# pixels are the whole-image invoke's (tiling is exact, see mai_sr.tflite.runtime).
AUTO_TILE = (360, 640)


def even_tile(height: int, width: int, margin: int,
              limit: tuple[int, int] = AUTO_TILE) -> tuple[int, int] | None:
    """The LR tile (h, w), at most `limit`, that splits a `height` x `width` image into the
    fewest equal tiles overlapping by 2*`margin`; None when the image fits in one tile (or
    `limit` is too small for that margin: the image then runs whole).

    n tiles cover L pixels with tiles of ceil((L + 2*margin*(n-1)) / n) pixels, which fits
    in M when n >= (L - 2*margin) / (M - 2*margin).
    """
    if height <= limit[0] and width <= limit[1]:
        return None
    tile = []
    for length, most in zip((height, width), limit):
        if length <= most:
            tile.append(length)
            continue
        if most <= 2 * margin:
            return None
        count = ceil((length - 2 * margin) / (most - 2 * margin))
        tile.append(ceil((length + 2 * margin * (count - 1)) / count))
    return tile[0], tile[1]


def upscale_image(model: TFLiteSR, img: np.ndarray, tile: int | None = None,
                  on_tile=None) -> np.ndarray:
    """Upscale a uint8 image (HxW grey, HxWx2 grey+alpha, HxWx3 RGB or HxWx4 RGBA).

    Colour goes through `model` (grey as RGB, then back to luma with Pillow's "L"
    conversion); alpha is upscaled by bicubic. Returns the same layout, `model.scale` times
    larger. `tile` and `on_tile` are passed to :meth:`TFLiteSR.upscale`.
    """
    img = np.asarray(img)
    if img.dtype != np.uint8 or img.ndim not in (2, 3) or img.ndim == 3 and img.shape[2] > 4:
        raise MaiSrError(f"expected a uint8 HxW or HxWxC (C <= 4) image, got {img.dtype} "
                         f"{img.shape}")
    channels = 1 if img.ndim == 2 else img.shape[2]
    planes = img if img.ndim == 3 else img[..., None]
    grey = channels in (1, 2)
    alpha = planes[..., -1] if channels in (2, 4) else None
    rgb = np.repeat(planes[..., :1], 3, axis=2) if grey else planes[..., :3]
    sr = model.upscale(np.ascontiguousarray(rgb), tile=tile, on_tile=on_tile)
    if grey:
        sr = np.asarray(Image.fromarray(sr).convert("L"))[..., None]
    if alpha is not None:
        sr = np.concatenate([sr, bicubic_upscale(alpha, model.scale)[..., None]], axis=2)
    return sr[..., 0] if img.ndim == 2 else sr





def _jobs(input: Path, output_arg: str, fmt: str | None = None) -> list[tuple[Path, Path]]:
    """(source, destination) pairs: a file to a file (or into a folder), a folder to a folder.

    `fmt` ("png", "jpg", "webp"): the extension every destination gets.
    """
    output = Path(output_arg)
    ext = None
    if fmt is not None:
        if fmt.lower() not in FORMATS:
            raise MaiSrError(f"--format {fmt}: unknown (choose from {', '.join(FORMATS)})")
        ext = FORMATS[fmt.lower()]
    if input.is_file():
        if output.is_dir() or output_arg.endswith(("/", os.sep)):
            output = output / (input.name if ext is None else input.with_suffix(ext).name)
        elif ext is not None and FORMATS.get(output.suffix.lower().lstrip(".")) != ext:
            raise MaiSrError(f"--format {fmt}: the output file {output} has another extension "
                             "(name it *" + ext + ", or leave out --format)")
        jobs = [(input, output)]
    elif input.is_dir():
        if output.is_file():
            raise MaiSrError(f"{output}: is a file; the input {input} is a folder, so the "
                             "output must be a folder")
        files = sorted(p for p in input.rglob("*")
                       if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                       and not any(part.startswith(".") for part in p.relative_to(input).parts))
        if not files:
            raise MaiSrError(f"{input}: no images ({', '.join(IMAGE_SUFFIXES)}) in this folder")
        jobs = [(p, output / p.relative_to(input)) for p in files]
        if ext is not None:
            jobs = [(src, dst.with_suffix(ext)) for src, dst in jobs]
    else:
        raise MaiSrError(f"{input}: no such file or folder")
    seen: dict[Path, Path] = {}
    for src, dst in jobs:
        if dst.resolve() == src.resolve():
            raise MaiSrError(f"{dst}: would overwrite the input image; choose another output")
        if dst in seen:
            raise MaiSrError(f"{seen[dst]} and {src} would both be written to {dst}; choose "
                             "another --format or move one of them")
        seen[dst] = src
    return jobs


def upscale_paths(input: str | os.PathLike, output: str | os.PathLike, *,
                  model: str | os.PathLike | None = None, pretrained: str | None = None,
                  tile: int | None = None, quiet: bool = False, png_level: int = PNG_LEVEL,
                  quality: int = QUALITY, fmt: str | None = None,
                  jobs: int | None = None, max_pixels: int | None = MAX_PIXELS) -> list[Path]:
    """Upscale an image file, or every image of a folder (recursively), into `output`.

    `model`: a .tflite file, or `pretrained`: a shipped model name (its dynamic-shape file).
    `tile`: LR tile size for dynamic models (default: :func:`even_tile`, whole images up to
    360x640 and even tiles of at most that above, which allocate faster and use less
    memory than one invoke; same pixels); fixed-shape models always tile at their input
    size.
    Output files keep the input's relative path and name; the extension picks the format,
    or `fmt` ("png", "jpg", "webp") replaces every extension. `png_level` (zlib 0-9, all
    lossless, default 1) and `quality` (JPEG/WebP, default 95) set the encoding.
    Every input is checked before anything is written; each output is written atomically.
    The next image is decoded and the previous ones encoded (on `jobs` threads, default:
    one per core, at most 2) while the model runs; the files equal a sequential run's.
    Inputs above `max_pixels` (0: no limit) are refused before anything is written.
    Returns the written paths.
    """
    from mai_sr._memory import reuse_freed_memory
    from mai_sr.pipeline import OrderedWork, prefetch, progress

    check_encoding(png_level, quality)
    reuse_freed_memory()
    sr_model = TFLiteSR(model_file(model, pretrained))
    pairs = _jobs(Path(input), os.fspath(output), fmt)
    sizes = [upright_size(src, max_pixels, limit_option="--max-pixels")
             for src, _ in pairs]

    def tile_for(height: int, width: int):
        if tile is not None or sr_model.fixed_shape is not None:
            return tile
        return even_tile(height, width, sr_model.receptive_field)

    total = sum(len(sr_model.tiles(h, w, tile_for(h, w))) for h, w in sizes)
    written: list[Path] = []

    def save(dst: Path, sr: np.ndarray) -> Path:
        write_image(dst, sr, png_level=png_level, quality=quality)
        return dst

    loaded = prefetch(((src, dst, read_image(src, max_pixels, limit_option="--max-pixels"))
                       for src, dst in pairs), depth=1)
    try:
        sr_model.prepare(*sizes[0], tile_for(*sizes[0]))  # while the first image decodes
        with progress(total=total, unit="tile", disable=quiet, desc="upscale") as bar, \
                OrderedWork(jobs, on_result=written.append) as work:
            for src, dst, img in loaded:
                bar.set_postfix_str(src.name)
                work.submit(save, dst, upscale_image(sr_model, img,
                                                     tile=tile_for(*img.shape[:2]),
                                                     on_tile=bar.update))
    finally:
        loaded.close()  # stops the decoding thread when leaving early
    return written
