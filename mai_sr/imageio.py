"""Reading image files as uint8 arrays: the one decoder every command reads images through
(``eval``, ``upscale``, ``train``'s data, ``import``'s gate data, ``report``).

Decoding applies the EXIF orientation (the result is upright) and brings any mode to L, LA,
RGB or RGBA; :func:`read_image_rgb` then gives the RGB the models see. Errors are one line
naming the file, and every read has the same pixel guard (:data:`MAX_PIXELS`) against
decompression bombs. Images are written, like every file of the toolkit, through
:mod:`mai_sr.fileio` (:func:`~mai_sr.fileio.write_image`).

16-bit images (greyscale, grey+alpha, RGB and RGBA PNGs) become 8-bit by rounding:
``v8 = round(v16 / 257)``, which maps 0 to 0 and 65535 to 255 and every 16-bit value to the
nearest 8-bit one (257 = 65535 / 255). Pillow alone would clip 16-bit greyscale at 255 (a
white image) and keep the high byte of 16-bit colour (``v16 >> 8``, up to one level darker),
so the full 16-bit samples of colour PNGs are read with OpenCV. A 16-bit transparency key
(PNG tRNS) is compared at full precision and becomes an alpha channel, as for 8-bit files.
"""

from __future__ import annotations

import contextlib
import warnings
from pathlib import Path

import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from mai_sr.errors import MaiSrError

# EXIF orientations 5-8 rotate by 90 degrees, swapping width and height.
_TRANSPOSING_ORIENTATIONS = (5, 6, 7, 8)
# What each EXIF orientation needs to be upright (the table of ImageOps.exif_transpose).
_UPRIGHT = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
            4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
            6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
            8: Image.Transpose.ROTATE_90}

# The largest image read by default: Pillow's decompression-bomb threshold (about 179 MP, a
# 1 GB RGB array in memory and 1.6 G output pixels at x3). A crafted header can claim far
# more than the file holds. `upscale --max-pixels` lifts it (0: no limit).
MAX_PIXELS = 178_956_970

# Pillow modes of 16-bit (or wider integer) greyscale; "I" is how older Pillows open 16-bit
# greyscale PNGs.
_WIDE_GREY_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_GREY_ALPHA, _PNG_RGB, _PNG_RGBA = 4, 2, 6  # IHDR colour types with 16-bit colour planes


@contextlib.contextmanager
def _opened(path: Path, max_pixels: int | None, limit_option: str | None = None):
    """Image.open with our pixel limit in place of Pillow's (which would raise its own
    DecompressionBombError, a traceback, above twice its threshold), and one-line errors
    for a missing, unreadable or oversized file. `limit_option` names the command's option
    that lifts the limit, when it has one."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
        try:
            with Image.open(path) as im:
                w, h = im.size
                if max_pixels and w * h > max_pixels:
                    lift = f"; pass {limit_option} 0 to lift it" if limit_option else ""
                    raise MaiSrError(f"{path}: {w}x{h} is {w * h:,} pixels, above the "
                                     f"{max_pixels:,}-pixel limit that guards against "
                                     f"decompression bombs{lift}")
                yield im  # errors while decoding come back here, and get the same words
        except FileNotFoundError:
            raise MaiSrError(f"{path}: no such file") from None
        except MemoryError:
            raise MaiSrError(f"{path}: too large to decode in this machine's memory") from None
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
            reason = " ".join(str(exc).split()) or type(exc).__name__
            raise MaiSrError(f"{path}: not a readable image ({reason})") from None
        finally:
            Image.MAX_IMAGE_PIXELS = saved


def to_8bit(samples: np.ndarray) -> np.ndarray:
    """16-bit samples to uint8 by rounding ``v / 257`` (integers above 65535 are clipped)."""
    wide = np.clip(samples, 0, 65535).astype(np.uint32)
    return ((wide + 128) // 257).astype(np.uint8)  # v/257 is never exactly k + 1/2


def _png_16bit_colour(path: Path, im: Image.Image) -> int | None:
    """The IHDR colour type of a PNG with 16-bit colour planes (RGB, RGBA, grey+alpha), else
    None. Read from the file's header: Pillow opens these as 8-bit modes."""
    if im.format != "PNG":
        return None
    with open(path, "rb") as f:
        head = f.read(26)
    if head[:8] != _PNG_SIGNATURE or head[12:16] != b"IHDR" or head[24] != 16:
        return None
    return head[25] if head[25] in (_PNG_GREY_ALPHA, _PNG_RGB, _PNG_RGBA) else None


def _with_key_alpha(samples: np.ndarray, key) -> np.ndarray:
    """`samples` (HxW or HxWx3) with an alpha plane: 0 where a pixel equals the
    transparency `key` (PNG tRNS), else full."""
    planes = samples if samples.ndim == 3 else samples[..., None]
    hit = np.all(planes == np.asarray(key).reshape(1, 1, -1), axis=2)
    return np.concatenate([planes, np.where(hit, 0, 65535)[..., None]], axis=2)


def _decode_16bit(path: Path, im: Image.Image, colour: int | None) -> np.ndarray | None:
    """The image as 16-bit samples (HxW, HxWx2 grey+alpha, HxWx3 or HxWx4), for 16-bit
    files; None for the rest."""
    key = im.info.get("transparency")
    if im.mode in _WIDE_GREY_MODES:
        im.load()
        samples = np.asarray(im).astype(np.int64)
        return samples if key is None else _with_key_alpha(samples, key)
    if colour is None:
        return None
    import cv2

    decoded = cv2.imdecode(np.fromfile(path, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if decoded is None or decoded.dtype != np.uint16 or decoded.ndim != 3:
        raise MaiSrError(f"{path}: not a readable image (a damaged 16-bit PNG)")
    if colour == _PNG_GREY_ALPHA:  # OpenCV spreads the grey plane over B, G and R
        return decoded[..., [0, 3]]
    rgb = decoded[..., [2, 1, 0, 3][:decoded.shape[2]]]
    if colour == _PNG_RGB and isinstance(key, tuple) and rgb.shape[2] == 3:
        return _with_key_alpha(rgb, key)
    return rgb


def read_image(path: Path, max_pixels: int | None = MAX_PIXELS, *,
               limit_option: str | None = None) -> np.ndarray:
    """Decode upright (EXIF applied) to L, LA, RGB or RGBA, as a uint8 array.

    16-bit files are rounded to 8 bits (``round(v / 257)``, see the module docstring).
    Images above `max_pixels` (0 or None: no limit) are refused with one line, which names
    `limit_option` (e.g. ``--max-pixels``) when the command has one.
    """
    path = Path(path)
    with _opened(path, max_pixels, limit_option) as im:
        _note_frames(path, im)
        samples = _decode_16bit(path, im, _png_16bit_colour(path, im))
        if samples is not None:
            orientation = im.getexif().get(ExifTags.Base.Orientation, 1)
            eight = to_8bit(samples)
            if orientation in _UPRIGHT:
                eight = np.asarray(Image.fromarray(eight).transpose(_UPRIGHT[orientation]))
            return np.ascontiguousarray(eight)
        im.load()
        im = ImageOps.exif_transpose(im)
        if im.mode not in ("L", "LA", "RGB", "RGBA"):
            has_alpha = "transparency" in im.info or im.mode in ("PA", "La")
            grey = im.mode in ("1", "F", "La")
            im = im.convert(("LA" if grey else "RGBA") if has_alpha else
                            ("L" if grey else "RGB"))
        return np.asarray(im, dtype=np.uint8)


class FirstFrameOnly(UserWarning):
    """An animated (GIF, APNG, WebP) or multi-page (TIFF) file, of which only the first
    frame is read: the commands say so in one line rather than drop the rest silently."""


def _note_frames(path: Path, im: Image.Image) -> None:
    if getattr(im, "is_animated", False):
        frames = getattr(im, "n_frames", 2)
        warnings.warn(FirstFrameOnly(f"{path}: has {frames} frames; only the first is used"),
                      stacklevel=3)


def as_rgb(img: np.ndarray) -> np.ndarray:
    """A decoded image (L, LA, RGB or RGBA) as contiguous HxWx3 RGB: grey repeated in the
    three planes, alpha dropped (what Pillow's ``convert("RGB")`` gives for these modes)."""
    if img.ndim == 2:
        img = img[..., None]
    if img.shape[2] in (1, 2):
        return np.ascontiguousarray(np.repeat(img[..., :1], 3, axis=2))
    return np.ascontiguousarray(img[..., :3])


def read_image_rgb(path: Path, max_pixels: int | None = MAX_PIXELS) -> np.ndarray:
    """:func:`read_image`, as uint8 HxWx3 RGB (:func:`as_rgb`): what the models are given."""
    return as_rgb(read_image(path, max_pixels))


def stored_size(path: Path) -> tuple[int, int]:
    """(height, width) as the file stores it, from the header alone: before any EXIF
    rotation (reading a PNG's EXIF makes Pillow decode the whole image)."""
    with _opened(Path(path), None) as im:
        w, h = im.size
        return h, w


def upright_size(path: Path, max_pixels: int | None = MAX_PIXELS, *,
                 limit_option: str | None = None) -> tuple[int, int]:
    """(height, width) after EXIF orientation, from the header only (no decoding)."""
    with _opened(Path(path), max_pixels, limit_option) as im:
        w, h = im.size
        if im.getexif().get(ExifTags.Base.Orientation, 1) in _TRANSPOSING_ORIENTATIONS:
            w, h = h, w
        return h, w
