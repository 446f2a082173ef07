"""Image data: HR/LR pairs for evaluation and training, as NumPy arrays (no TensorFlow).

Sources (the ``source`` argument of :func:`iter_pairs` / :func:`load_pairs`):

- ``"builtin"``: the colour photographs that ship inside the scikit-image wheel
  (:data:`BUILTIN_PHOTOS`), loaded through ``skimage.data`` without network access;
- a folder of HR images (``.png``, ``.jpg``, ``.jpeg``, ``.bmp``), searched recursively and
  sorted by relative path so every run sees the same order;
- several folders, as ``"DIR,DIR"`` or a list;
- the DIV2K layout: ``DIV2K_train_HR/`` (or its parent folder), with or without the sibling
  ``DIV2K_train_LR_bicubic/X3/NNNNx3.png``. Provided LR files are used when that folder exists.

Every pair holds the HR image cropped at the bottom/right to a multiple of the scale, and an
LR image exactly ``1/scale`` of that size: Pillow's antialiased bicubic
(``Image.resize(..., Image.BICUBIC, reducing_gap=None)``), unless DIV2K provides it.
Files are decoded by :func:`mai_sr.imageio.read_image_rgb`, the decoder every command
shares: greyscale, palette and RGBA images become RGB, 16-bit ones are rounded to 8 bits
(``round(v / 257)``), and images above :data:`mai_sr.imageio.MAX_PIXELS` are refused in
one line (decompression bombs). Images whose LR side is smaller than
``min_lr_size`` are skipped with one warning that counts them and names a few. A file
that cannot be decoded, a missing folder, or a folder without images raises
:class:`~mai_sr.errors.MaiSrError`.

Usage::

    python -c "import mai_sr.data as d; pairs = d.load_pairs('../shared/data/Set14'); print(len(pairs), pairs[0].hr.shape, pairs[0].lr.shape)"

Training turns the pairs into a ``tf.data`` stream with
:func:`mai_sr.train.dataset.make_train_dataset`; this module never imports TensorFlow.
"""

from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Mapping

import numpy as np
from PIL import Image

from mai_sr.challenge import CHALLENGE_SCALE
from mai_sr.errors import MaiSrError
from mai_sr.imageio import read_image_rgb, stored_size

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")

# Colour photographs bundled in the scikit-image 0.26 wheel (no pooch download needed).
# `cat` is the same picture as `chelsea`; `colorwheel` and `logo` are graphics, not photos.
BUILTIN_PHOTOS = ("astronaut", "chelsea", "coffee", "hubble_deep_field",
                  "immunohistochemistry", "motorcycle_left", "motorcycle_right", "retina",
                  "rocket")

_DIV2K_HR = re.compile(r"^DIV2K_(?P<split>[A-Za-z0-9]+)_HR$")


@dataclass(frozen=True, eq=False)
class ImagePair:
    """One image: ``hr`` (uint8 HxWx3, sides multiples of the scale) and ``lr`` (HR/scale)."""

    name: str
    hr: np.ndarray
    lr: np.ndarray


# ---------------------------------------------------------------- single images



def data_root() -> Path:
    """``$MAI_SR_DATA``, else ``../shared/data`` beside the checkout."""
    env = os.environ.get("MAI_SR_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data"


def artifacts_root() -> Path:
    """``$MAI_SR_ARTIFACTS`` (published model files), else ``../shared/artifacts``."""
    env = os.environ.get("MAI_SR_ARTIFACTS")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "artifacts"

def crop_to_scale(img: np.ndarray, scale: int = CHALLENGE_SCALE) -> np.ndarray:
    """Crop the bottom/right so both sides are multiples of `scale`."""
    h, w = img.shape[0] - img.shape[0] % scale, img.shape[1] - img.shape[1] % scale
    return img[:h, :w]


def bicubic_resize(img: np.ndarray, size_wh: tuple[int, int]) -> np.ndarray:
    """`img` (uint8) resized to (width, height) by Pillow's antialiased bicubic, the filter
    every LR image here is made with."""
    # reducing_gap=None: the exact antialiased filter, no two-step JPEG-style shortcut.
    out = Image.fromarray(img).resize(size_wh, Image.BICUBIC, reducing_gap=None)
    return np.asarray(out, dtype=np.uint8)


def bicubic_downscale(hr: np.ndarray, scale: int = CHALLENGE_SCALE) -> np.ndarray:
    """LR image from an HR one: crop to a multiple of `scale`, then antialiased bicubic 1/scale."""
    hr = crop_to_scale(hr, scale)
    return bicubic_resize(hr, (hr.shape[1] // scale, hr.shape[0] // scale))


def bicubic_upscale(lr: np.ndarray, scale: int = CHALLENGE_SCALE) -> np.ndarray:
    """Bicubic ×`scale` upscaling (the challenge's baseline)."""
    return bicubic_resize(lr, (lr.shape[1] * scale, lr.shape[0] * scale))


# ---------------------------------------------------------------- sources
# A source resolves to a list of entries: (name, load_hr, lr_path or None). Loading is lazy so
# iter_pairs holds one image at a time, but every path/folder error is raised up front.


@dataclass(frozen=True)
class _Entry:
    name: str
    load_hr: Callable[[], np.ndarray]
    lr_path: Path | None = None
    hr_path: Path | None = None  # the HR file (its header gives the size of a cached copy)


def _builtin_photo(name: str) -> np.ndarray:
    import skimage.data

    if name.startswith("motorcycle_"):
        left, right, _disparity = skimage.data.stereo_motorcycle()
        img = left if name.endswith("left") else right
    else:
        img = getattr(skimage.data, name)()
    img = np.asarray(img)
    # A greyscale picture in this list would silently weaken colour training: refuse it.
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3 or \
            np.array_equal(img[..., 0], img[..., 1]) and np.array_equal(img[..., 1], img[..., 2]):
        raise MaiSrError(f"builtin:{name}: not a colour uint8 photo in this scikit-image")
    return np.ascontiguousarray(img)


def _builtin_entries() -> list[_Entry]:
    return [_Entry(name, lambda n=name: _builtin_photo(n)) for name in BUILTIN_PHOTOS]


def image_files(folder: Path) -> list[Path]:
    """The image files below `folder` (hidden parts skipped), in relative-path order."""
    files = [p for p in folder.rglob("*")
             if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
             and not any(part.startswith(".") for part in p.relative_to(folder).parts)]
    return sorted(files, key=lambda p: p.relative_to(folder).as_posix())


def _folder_entries(folder: Path, scale: int) -> list[_Entry]:
    """Plain folder, DIV2K HR folder, or a DIV2K root holding DIV2K_*_HR folders."""
    if _DIV2K_HR.match(folder.name):
        return _div2k_entries(folder, scale)
    div2k_dirs = sorted(p for p in folder.iterdir() if p.is_dir() and _DIV2K_HR.match(p.name))
    if div2k_dirs:
        return [e for d in div2k_dirs for e in _div2k_entries(d, scale)]
    files = image_files(folder)
    if not files:
        raise MaiSrError(f"{folder}: no images ({', '.join(IMAGE_SUFFIXES)}) in this folder")
    return [_Entry(p.relative_to(folder).with_suffix("").as_posix(), lambda p=p: read_image_rgb(p),
                   hr_path=p) for p in files]


def _div2k_entries(hr_dir: Path, scale: int) -> list[_Entry]:
    """DIV2K_<split>_HR/NNNN.png, with LR from DIV2K_<split>_LR_bicubic/X<scale>/NNNNx<scale>.png."""
    files = image_files(hr_dir)
    if not files:
        raise MaiSrError(f"{hr_dir}: no images in this DIV2K HR folder")
    split = _DIV2K_HR.match(hr_dir.name).group("split")
    lr_dir = hr_dir.parent / f"DIV2K_{split}_LR_bicubic" / f"X{scale}"
    entries = []
    for p in files:
        lr_path = None
        if lr_dir.is_dir():
            lr_path = lr_dir / f"{p.stem}x{scale}{p.suffix}"
            if not lr_path.is_file():
                raise MaiSrError(f"{lr_path}: missing LR file for {p} (the LR folder exists)")
        entries.append(_Entry(p.stem, lambda p=p: read_image_rgb(p), lr_path, p))
    return entries


def split_sources(data, option: str = "--data") -> list[str]:
    """The items of a data argument (``--data``, ``--val``, ``--calib``, ``--gate-data``):
    a comma-separated string (``"Set14,B100"``), a path, or a list of those; blanks dropped.
    Each item is 'builtin', a folder, or a folder name under $MAI_SR_DATA. Nothing left is a
    MaiSrError naming `option`."""
    if isinstance(data, (str, os.PathLike)):
        data = [data]
    items = [item.strip() for entry in data for item in str(entry).split(",")]
    items = [item for item in items if item]
    if not items:
        raise MaiSrError(f"{option}: empty (give 'builtin', a folder of HR images, or DIR,DIR)")
    return items


def data_folder(item: str) -> Path:
    """The folder of one data-source item: a path, else a folder name under $MAI_SR_DATA
    (``Set14`` -> ``$MAI_SR_DATA/Set14``); MaiSrError when it is neither."""
    folder = Path(item).expanduser()
    if folder.is_dir():
        return folder
    shared = os.environ.get("MAI_SR_DATA")
    if shared and not folder.is_absolute() and (Path(shared) / item).is_dir():
        return Path(shared) / item
    what = "is a file, not a folder" if folder.exists() else "no such folder"
    hint = "" if shared else "; $MAI_SR_DATA is not set"
    raise MaiSrError(f"{folder}: {what} (expected 'builtin', a folder of images, or a folder "
                     f"name under $MAI_SR_DATA{hint})")


def _resolve(source, scale: int) -> list[_Entry]:
    entries: list[_Entry] = []
    for item in split_sources(source):
        if item == "builtin":
            entries += _builtin_entries()
            continue
        entries += _folder_entries(data_folder(item), scale)
    return entries


def _known_hr(entry: _Entry, scale: int, made_hr) -> np.ndarray | None:
    """The cached HR image of `entry` (already cropped to the scale), if it has the size the
    file's header gives, either way round (EXIF may turn it; the header is read, nothing is
    decoded)."""
    known = made_hr.get(entry.name) if made_hr is not None and entry.hr_path else None
    if known is None:
        return None
    try:
        h, w = stored_size(entry.hr_path)
    except MaiSrError:
        return None  # decoding says what is wrong with the file
    fits = {(h - h % scale, w - w % scale, 3), (w - w % scale, h - h % scale, 3)}
    return known if known.shape in fits else None


def _make_pair(entry: _Entry, scale: int, made_lr: Mapping | None = None,
               made_hr: Mapping | None = None) -> ImagePair:
    hr = _known_hr(entry, scale, made_hr)
    if hr is None:
        hr = crop_to_scale(entry.load_hr(), scale)
    known = made_lr.get(entry.name) if made_lr is not None and entry.lr_path is None else None
    if known is not None and known.shape == (hr.shape[0] // scale, hr.shape[1] // scale, 3):
        lr = known
    elif entry.lr_path is None:
        lr = bicubic_downscale(hr, scale) if min(hr.shape[:2]) > 0 else hr[:0, :0]
    else:
        lr = read_image_rgb(entry.lr_path)
        if lr.shape[0] * scale != hr.shape[0] or lr.shape[1] * scale != hr.shape[1]:
            raise MaiSrError(f"{entry.lr_path}: LR is {lr.shape[1]}x{lr.shape[0]}, expected "
                             f"{hr.shape[1] // scale}x{hr.shape[0] // scale} (HR/{scale})")
    return ImagePair(entry.name, hr, lr)


def iter_pairs(source, scale: int = CHALLENGE_SCALE, min_lr_size: int | None = None, *,
               made_lr: Mapping | None = None,
               made_hr: Mapping | None = None) -> Iterator[ImagePair]:
    """Yield :class:`ImagePair` for every image of `source`, one image in memory at a time.

    `source`: "builtin", a folder, "DIR,DIR", a list of those, or a DIV2K folder.
    Images whose LR height or width is below `min_lr_size` (default: 1 pixel) are skipped
    with a warning naming them. Bad folders raise MaiSrError here, before iteration starts.
    `made_lr`: LR images made earlier by :func:`bicubic_downscale` from these very images
    (a cache, by image name, read with ``.get``); one whose shape is not HR/scale is made
    again.
    `made_hr`: HR images decoded earlier from these very files and cropped to `scale` (a
    cache, by image name, read with ``.get``); one whose size is not the file header's is
    decoded again. A cached image skips its decoder's warnings (first frame only), which
    the run that cached it showed.
    """
    if scale < 1:
        raise MaiSrError(f"scale: must be >= 1, got {scale}")
    entries = _resolve(source, scale)
    return _iter_entries(entries, scale, max(1, min_lr_size or 1), made_lr, made_hr)


def _iter_entries(entries: list[_Entry], scale: int, min_lr: int,
                  made_lr: Mapping | None = None,
                  made_hr: Mapping | None = None) -> Iterator[ImagePair]:
    skipped = []
    for entry in entries:
        pair = _make_pair(entry, scale, made_lr, made_hr)
        if min(pair.lr.shape[:2]) < min_lr:
            skipped.append(entry.name)
            continue
        yield pair
    warn_skipped(skipped, len(entries), f"their LR side is below {min_lr} pixels at x{scale}")


SKIPPED_NAMES_SHOWN = 5  # a folder like T91 can skip a hundred: name a few, count the rest


def warn_skipped(names: list[str], total: int, why: str) -> None:
    """One warning for all the images skipped for one reason (not one per image)."""
    if not names:
        return
    shown = ", ".join(names[:SKIPPED_NAMES_SHOWN])
    hidden = len(names) - SKIPPED_NAMES_SHOWN
    more = f" and {hidden} more" if hidden > 0 else ""
    warnings.warn(f"skipped {len(names)} of {total} images ({shown}{more}): {why}",
                  stacklevel=3)


def load_pairs(source, scale: int = CHALLENGE_SCALE, min_lr_size: int | None = None) -> list[ImagePair]:
    """All pairs of `source` as a list (see :func:`iter_pairs`); error if none is usable."""
    pairs = list(iter_pairs(source, scale=scale, min_lr_size=min_lr_size))
    if not pairs:
        raise MaiSrError(f"{source}: no image has an LR side of at least {min_lr_size} pixels")
    return pairs
