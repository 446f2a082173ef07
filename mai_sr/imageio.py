"""Reading and writing image files as uint8 arrays, the way every command sees them.

Decoding applies the EXIF orientation (the result is upright) and brings any mode to L, LA,
RGB or RGBA; writing is atomic and the extension picks the format. Errors are one line
naming the file.
"""

from __future__ import annotations

import contextlib
import warnings
from pathlib import Path

import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from mai_sr.errors import MaiSrError
from mai_sr.fileio import atomic_path

# EXIF orientations 5-8 rotate by 90 degrees, swapping width and height.
_TRANSPOSING_ORIENTATIONS = (5, 6, 7, 8)

# The largest image read by default: Pillow's decompression-bomb threshold (about 179 MP, a
# 1 GB RGB array in memory and 1.6 G output pixels at x3). A crafted header can claim far
# more than the file holds; `--max-pixels` lifts it (0: no limit).
MAX_PIXELS = 178_956_970


@contextlib.contextmanager
def _opened(path: Path, max_pixels: int | None):
    """Image.open with our pixel limit in place of Pillow's (which would raise its own
    DecompressionBombError, a traceback, above twice its threshold), and one-line errors
    for a missing, unreadable or oversized file."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
        try:
            with Image.open(path) as im:
                w, h = im.size
                if max_pixels and w * h > max_pixels:
                    raise MaiSrError(f"{path}: {w}x{h} is {w * h:,} pixels, above the "
                                     f"{max_pixels:,}-pixel limit that guards against "
                                     "decompression bombs; pass --max-pixels 0 to lift it")
                yield im  # errors while decoding come back here, and get the same words
        except FileNotFoundError:
            raise MaiSrError(f"{path}: no such file") from None
        except MemoryError:
            raise MaiSrError(f"{path}: too large to decode in this machine's memory") from None
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
            raise MaiSrError(f"{path}: not a readable image "
                             f"({' '.join(str(exc).split())})") from None
        finally:
            Image.MAX_IMAGE_PIXELS = saved


def read_image(path: Path, max_pixels: int | None = MAX_PIXELS) -> np.ndarray:
    """Decode upright (EXIF applied) to L, LA, RGB or RGBA, as a uint8 array. Images above
    `max_pixels` (0 or None: no limit) are refused with one line."""
    with _opened(path, max_pixels) as im:
        im.load()
        im = ImageOps.exif_transpose(im)
        if im.mode not in ("L", "LA", "RGB", "RGBA"):
            has_alpha = "transparency" in im.info or im.mode in ("PA", "La")
            grey = im.mode in ("1", "I;16", "I;16B", "I;16L", "I", "F")
            im = im.convert(("LA" if grey else "RGBA") if has_alpha else
                            ("L" if grey else "RGB"))
        return np.asarray(im, dtype=np.uint8)


def upright_size(path: Path, max_pixels: int | None = MAX_PIXELS) -> tuple[int, int]:
    """(height, width) after EXIF orientation, from the header only (no decoding)."""
    with _opened(path, max_pixels) as im:
        w, h = im.size
        if im.getexif().get(ExifTags.Base.Orientation, 1) in _TRANSPOSING_ORIENTATIONS:
            w, h = h, w
        return h, w


# Output encoding. PNG is lossless at every level, so the default is the fast end. Measured
# on ABPN's 5760x3240 output of a 1080p photo (load 9.6): Pillow's default level 6 took
# 6.6 s of CPU for 12.1 MB; zlib level 1 with the "Up" row filter (each row minus the one
# above: the cheapest predictor, and the best one for upscaled images, where rows change
# slowly) 0.95 s for 14.7 MB. Up beat libpng's per-row adaptive choice at every level tried
# (level 6: 5.3 s, 12.0 MB against 6.9 s, 12.8 MB), so every level uses it. JPEG and WebP
# take a quality (Pillow's scale, 1-100).
PNG_LEVEL = 1
QUALITY = 95
FORMATS = {"png": ".png", "jpeg": ".jpg", "jpg": ".jpg", "webp": ".webp"}


def check_encoding(png_level: int = PNG_LEVEL, quality: int = QUALITY) -> None:
    """Raise MaiSrError unless 0 <= png_level <= 9 and 1 <= quality <= 100."""
    if not 0 <= png_level <= 9:
        raise MaiSrError(f"--png-level: must be 0 (no compression) to 9, got {png_level}")
    if not 1 <= quality <= 100:
        raise MaiSrError(f"--quality: must be 1 to 100, got {quality}")


def encode_png(img: np.ndarray, level: int = PNG_LEVEL) -> bytes:
    """PNG bytes of a uint8 HxW, HxWx3 (RGB) or HxWx4 (RGBA) image with OpenCV (libpng).

    OpenCV rather than Pillow: Pillow cannot choose the row filter, and with the "Up" filter
    OpenCV encodes a 5760x3240 upscale in half Pillow's time at the same zlib level, into a
    smaller file. The encoder releases the GIL, so images encode on parallel threads.
    """
    import cv2

    if img.ndim == 3 and img.shape[2] in (3, 4):
        img = cv2.cvtColor(img, cv2.COLOR_RGB2BGR if img.shape[2] == 3 else cv2.COLOR_RGBA2BGRA)
    params = [cv2.IMWRITE_PNG_COMPRESSION, level, cv2.IMWRITE_PNG_FILTER,
              cv2.IMWRITE_PNG_FILTER_UP]
    ok, data = cv2.imencode(".png", img, params)
    if not ok:
        raise MaiSrError(f"cannot encode a {img.shape} image as PNG")
    return data.tobytes()


def write_image(path: Path, img: np.ndarray, *, png_level: int = PNG_LEVEL,
                quality: int = QUALITY) -> None:
    """Save a uint8 image atomically; the extension picks the format.

    `png_level`: zlib level 0-9 of PNG files (all lossless; default 1, fast). `quality`:
    of JPEG and WebP files (1-100, default 95).
    """
    check_encoding(png_level, quality)
    path = Path(path)
    try:
        if path.suffix.lower() == ".png" and (img.ndim == 2 or img.shape[2] in (3, 4)):
            data = encode_png(np.ascontiguousarray(img), png_level)
            with atomic_path(path) as tmp:
                tmp.write_bytes(data)
            return
        with atomic_path(path) as tmp:
            # quality: JPEG/WebP only; compress_level: PNG only (grey+alpha goes here)
            Image.fromarray(img).save(tmp, quality=quality, compress_level=png_level)
    except (OSError, ValueError, KeyError) as exc:
        raise MaiSrError(f"{path}: cannot write this image ({' '.join(str(exc).split())})") \
            from None
