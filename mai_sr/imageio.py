"""Reading and writing image files as uint8 arrays, the way every command sees them.

Decoding applies the EXIF orientation (the result is upright) and brings any mode to L, LA,
RGB or RGBA; writing is atomic and the extension picks the format. Errors are one line
naming the file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from mai_sr.errors import MaiSrError
from mai_sr.fileio import atomic_path

# EXIF orientations 5-8 rotate by 90 degrees, swapping width and height.
_TRANSPOSING_ORIENTATIONS = (5, 6, 7, 8)


def read_image(path: Path) -> np.ndarray:
    """Decode upright (EXIF applied) to L, LA, RGB or RGBA, as a uint8 array."""
    try:
        with Image.open(path) as im:
            im.load()
            im = ImageOps.exif_transpose(im)
            if im.mode not in ("L", "LA", "RGB", "RGBA"):
                has_alpha = "transparency" in im.info or im.mode in ("PA", "La")
                grey = im.mode in ("1", "I;16", "I;16B", "I;16L", "I", "F")
                im = im.convert(("LA" if grey else "RGBA") if has_alpha else
                                ("L" if grey else "RGB"))
            return np.asarray(im, dtype=np.uint8)
    except FileNotFoundError:
        raise MaiSrError(f"{path}: no such file") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise MaiSrError(f"{path}: not a readable image ({' '.join(str(exc).split())})") from None


def upright_size(path: Path) -> tuple[int, int]:
    """(height, width) after EXIF orientation, from the header only (no decoding)."""
    try:
        with Image.open(path) as im:
            w, h = im.size
            if im.getexif().get(ExifTags.Base.Orientation, 1) in _TRANSPOSING_ORIENTATIONS:
                w, h = h, w
            return h, w
    except FileNotFoundError:
        raise MaiSrError(f"{path}: no such file") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise MaiSrError(f"{path}: not a readable image ({' '.join(str(exc).split())})") from None


def write_image(path: Path, img: np.ndarray) -> None:
    """Save a uint8 image atomically; the extension picks the format."""
    try:
        with atomic_path(path) as tmp:
            Image.fromarray(img).save(tmp, quality=95)  # quality: JPEG/WebP only
    except (OSError, ValueError, KeyError) as exc:
        raise MaiSrError(f"{path}: cannot write this image ({' '.join(str(exc).split())})") \
            from None
