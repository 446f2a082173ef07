"""Atomic file writes (bytes, text, JSON, images) and content hashes.

Every file the toolkit writes goes through here: a temp file in the same directory, fsync,
then `os.replace`, so a crash or Ctrl-C never leaves a partial file in place of a good one.
Images are encoded by the extension's format (:func:`write_image`; PNG through OpenCV);
reading them is :mod:`mai_sr.imageio`'s.
An OS failure (full disk, read-only folder, a path that is a directory or under a file)
becomes a one-line :class:`~mai_sr.errors.MaiSrError` naming the file, and the temp file is
removed. Temp files carry the writing process's pid, so a later run can tell the leftovers
of a killed process (:func:`remove_stale_temps`) from a write in progress.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from mai_sr.errors import MaiSrError

if TYPE_CHECKING:
    import numpy as np

# ".<name>.<pid>.<random><suffix>": mkstemp's random part is 8 characters of [a-z0-9_].
_TEMP = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.[a-z0-9_]{8}(\..*)?$")


def write_error(path: str | os.PathLike, exc: OSError) -> MaiSrError:
    """The one-line error for an OS failure while writing `path`."""
    for parent in Path(path).parents:
        if parent.is_file():  # mkdir's EEXIST/ENOTDIR say less than this
            return MaiSrError(f"{path}: cannot write ({parent} is a file, not a folder)")
    reason = exc.strerror or str(exc)
    return MaiSrError(f"{path}: cannot write ({reason})")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temp path beside `path`; on success rename it onto `path`, on error delete it.

    For writers that want a file name (TF's `save_weights`, `Image.save`), not a stream.
    """
    path = Path(path)
    if path.is_dir():
        raise MaiSrError(f"{path}: is a folder, not a file name")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.",
                                   suffix=suffix or path.suffix or ".tmp", dir=path.parent)
    except OSError as exc:
        raise write_error(path, exc) from None
    os.close(fd)
    tmp = Path(tmp)
    # mkstemp creates 0600; give the file the mode a plain open() would (0666 minus umask).
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    try:
        yield tmp
        if tmp.exists():
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        raise write_error(path, exc) from None
    finally:
        if tmp.exists():
            tmp.unlink()


def write_files(contents: dict[str | os.PathLike, bytes]) -> list[Path]:
    """Write several files as one set: every temp file is written and synced before the
    first rename, so an OS failure (a full disk) leaves all the old files in place.

    A kill between two renames can still mix old and new files; sets written here therefore
    carry content hashes (the export's sidecars) so that readers detect such a mix.
    """
    # A failed write reaches its own atomic_path first (one line naming that file), then
    # the others, which delete their temps. ExitStack renames in reverse order of entry.
    with contextlib.ExitStack() as stack:
        for path, data in contents.items():
            stack.enter_context(atomic_path(path)).write_bytes(data)
    return [Path(p) for p in contents]


def remove_stale_temps(folder: str | os.PathLike) -> list[Path]:
    """Delete the temp files that killed processes left in `folder` (not recursive).

    A temp file names its writer's pid; one whose writer is no longer alive can never be
    renamed into place. Returns the deleted paths; files that cannot be deleted are left.
    """
    removed = []
    try:
        entries = list(Path(folder).iterdir())
    except OSError:
        return removed
    for entry in entries:
        match = _TEMP.match(entry.name)
        if not match or not entry.is_file() or _alive(int(match["pid"])):
            continue
        try:
            entry.unlink()
            removed.append(entry)
        except OSError:
            pass
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's live process
    return True


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write `data` to `path` atomically and return the path."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write `text` (UTF-8) to `path` atomically and return the path."""
    return write_bytes(path, text.encode("utf-8"))


def json_bytes(obj) -> bytes:
    """`obj` as the indented, key-sorted JSON text every JSON file of the toolkit holds."""
    return (json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n").encode("utf-8")


def write_json(path: str | os.PathLike, obj) -> Path:
    """Write `obj` as indented, key-sorted JSON atomically and return the path."""
    return write_bytes(path, json_bytes(obj))


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes (cache keys, provenance)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def sha256_json(obj) -> str:
    """Hex SHA-256 of `obj` serialised canonically (config hashes)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


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
    import numpy as np
    from PIL import Image

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
