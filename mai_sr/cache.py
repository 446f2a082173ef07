"""Caches shared by the commands: where they live, what keys them, and the bicubic baselines.

The user cache lives in ``$XDG_CACHE_HOME/mai-sr`` (``~/.cache/mai-sr`` when the variable is
unset); `eval` and `report` take ``--cache-dir`` to put it elsewhere. It holds the bicubic
rows of each data set (:class:`BaselineCache`): the bicubic baseline's PSNR and SSIM depend
only on the images, the scale and the metric options, not on the model, so every `eval` and
`report` of every model on the same data shares them. (`report` keeps its per-model results
in its own ``<out>/cache``, :mod:`mai_sr.report.cache`.) Beside the rows it keeps the LR
inputs `eval` made from the data set's HR images (:meth:`BaselineCache.images_key`): Pillow's
antialiased bicubic downscale is a tenth of a warm `eval`'s CPU, and its result, like the
baseline's, depends only on the images, the scale and Pillow. It also keeps the decoded HR
images: decoding B100's PNGs is 0.34 CPU-s of a warm `eval`'s 2.1, reading them back from
the cache 0.05. Of an image set above :data:`IMAGE_CACHE_MAX_BYTES`, only its first images
up to that size are kept (B100's HR images are 46 MB at x3). Both are read with
:class:`CachedImages`.

Entries are JSON files written atomically (temp file + rename), keyed by a hash of every
input, so a stale entry is never read. A cache location that cannot be written (read-only,
a file in the way, no permission) means no cache, never an error; an unreadable or damaged
entry is recomputed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from mai_sr import __version__
from mai_sr.errors import MaiSrError
from mai_sr.fileio import sha256_file, sha256_json, write_json

CACHE_DIR_NAME = "mai-sr"
# Bump when the bicubic baseline or the metrics change what they compute.
BASELINE_VERSION = 1
# Bump "lr" when the LR images change (mai_sr.data.bicubic_downscale), "hr" when decoding
# changes the pixels (mai_sr.imageio.read_image_rgb).
IMAGE_VERSIONS = {"lr": 1, "hr": 1}
# The LR images of B100 at x3 are 5 MB, its HR images 46 MB; DIV2K's 100 validation images
# would be 90 MB of LR images: of a larger image set, only its first images up to this size
# are kept.
IMAGE_CACHE_MAX_BYTES = 64 << 20


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/mai-sr``, else ``~/.cache/mai-sr`` (the XDG base directory spec)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / CACHE_DIR_NAME


_FILE_HASHES: dict[tuple[str, int, int], str] = {}


def file_hash(path: str | os.PathLike) -> str:
    """SHA-256 of a file, memoised per (path, size, mtime) within the process."""
    path = Path(path).resolve()
    st = path.stat()
    memo = (str(path), st.st_size, st.st_mtime_ns)
    if memo not in _FILE_HASHES:
        _FILE_HASHES[memo] = sha256_file(path)
    return _FILE_HASHES[memo]


def dataset_fingerprint(source: str) -> str:
    """A hash that changes when the images of a data source change.

    "builtin" is fixed by the scikit-image version and the photo list; a folder by the
    relative path, size and modification time of every image file below it (stat only, so
    large folders cost milliseconds; touching a file recomputes, which is the safe side).
    """
    from mai_sr.data import BUILTIN_PHOTOS, data_folder, image_files

    if source == "builtin":
        import skimage

        return sha256_json({"builtin": BUILTIN_PHOTOS, "skimage": skimage.__version__})
    # The folder the data reader uses: a bare name (``Set14``) is looked up under
    # $MAI_SR_DATA, so its fingerprint is that folder's images, not an empty list.
    folder = data_folder(source)
    rows = []
    for p in image_files(folder):
        st = p.stat()
        rows.append((p.relative_to(folder).as_posix(), st.st_size, st.st_mtime_ns))
    return sha256_json(rows)


class BaselineCache:
    """The bicubic rows of data sets, as JSON files ``<root>/baselines/<key>.json``.

    A row is ``{"name", "height", "width", "bicubic_psnr", "bicubic_ssim"}`` for one image.
    `root` None is :func:`default_cache_dir`.
    """

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(root) if root is not None else default_cache_dir()

    @staticmethod
    def key(source: str, *, scale: int, crop: int, y_channel: bool,
            fingerprint: str | None = None) -> str:
        """Hex key of the bicubic rows of `source` at `scale` with these metric options.

        Includes the data's fingerprint, Pillow's version (its bicubic filter makes both the
        LR input and the baseline) and the toolkit's, so any change recomputes.
        `fingerprint`: :func:`dataset_fingerprint` of `source`, when the caller has it.
        """
        import PIL

        return sha256_json({"kind": "bicubic", "version": BASELINE_VERSION,
                            "toolkit": __version__, "pillow": PIL.__version__,
                            "data": fingerprint or dataset_fingerprint(source), "scale": scale,
                            "crop": crop, "y_channel": bool(y_channel)})

    def _path(self, key: str) -> Path:
        return self.root / "baselines" / f"{key}.json"

    def get(self, key: str) -> list[dict] | None:
        """The cached rows, or None (missing, unreadable or malformed entries are misses)."""
        try:
            rows = json.loads(self._path(key).read_text(encoding="utf-8"))
            rows = [{"name": str(r["name"]), "height": int(r["height"]),
                     "width": int(r["width"]), "bicubic_psnr": float(r["bicubic_psnr"]),
                     "bicubic_ssim": float(r["bicubic_ssim"])} for r in rows]
        except (OSError, ValueError, TypeError, KeyError):
            return None
        return rows

    def put(self, key: str, rows: list[dict]) -> bool:
        """Store `rows` atomically; False (and nothing written) when the location is not
        writable."""
        try:
            write_json(self._path(key), rows)
        except (OSError, MaiSrError):  # fileio names the failure; here it only means no cache
            return False
        return True

    @staticmethod
    def images_key(kind: str, source: str, *, scale: int,
                   fingerprint: str | None = None) -> str:
        """Hex key of an image set of `source` at `scale`: "lr", the LR images made from it
        (by Pillow's downscale), or "hr", its decoded HR images cropped to a multiple of
        `scale` (decoded by Pillow). Keyed by the data, Pillow and the toolkit;
        `fingerprint` as for :meth:`key`."""
        import PIL

        return sha256_json({"kind": kind, "version": IMAGE_VERSIONS[kind],
                            "toolkit": __version__, "pillow": PIL.__version__,
                            "data": fingerprint or dataset_fingerprint(source), "scale": scale})

    def images_path(self, kind: str, key: str) -> Path:
        """The file of the image set `key` of `kind` ("lr" or "hr")."""
        return self.root / kind / f"{key}.npz"

    def put_images(self, kind: str, key: str, images: dict) -> bool:
        """Store an image set (name -> uint8 HxWx3) atomically, unless it exceeds
        :data:`IMAGE_CACHE_MAX_BYTES`; False when nothing was written."""
        import numpy as np

        from mai_sr.fileio import atomic_path

        if not images or sum(img.nbytes for img in images.values()) > IMAGE_CACHE_MAX_BYTES:
            return False
        try:
            with atomic_path(self.images_path(kind, key)) as tmp, open(tmp, "wb") as f:
                np.savez(f, **images)
        except (OSError, MaiSrError):
            return False
        return True


class CachedImages:
    """The images of one cache entry (an .npz), each read when asked for, so the first one
    is ready without reading the rest. Read without pickles; a missing or damaged file, or
    a damaged image, is a miss, never an error. Not an image (uint8 HxWx3): a miss too.
    Made empty, it can be opened later (:meth:`open`), after the reader holding it was
    made."""

    def __init__(self, path: Path | None = None):
        self._archive, self.names = None, frozenset()
        self._served: dict[int, object] = {}  # id -> image, of every image handed out
        if path is not None:
            self.open(path)

    def open(self, path: Path) -> None:
        import zipfile

        import numpy as np

        self.close()
        try:
            self._archive = np.load(path, allow_pickle=False)
            self.names = frozenset(self._archive.files)
        except (OSError, ValueError, EOFError, zipfile.BadZipFile):
            self._archive, self.names = None, frozenset()

    def get(self, name: str):
        """The image `name`, or None (absent, damaged, or not a uint8 HxWx3 image)."""
        import zipfile

        import numpy as np

        archive = self._archive  # (closed by another thread meanwhile: a miss)
        if archive is None or name not in self.names:
            return None
        try:
            img = archive[name]
        except (OSError, ValueError, EOFError, KeyError, AttributeError, zipfile.BadZipFile):
            return None
        if not (img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3):
            return None
        self._served[id(img)] = img
        return img

    def holds(self, images: dict) -> bool:
        """Whether the entry holds exactly `images` (by name), each one handed out by this
        set: else an image was made anew (missing, damaged, or of the wrong size for its
        file) and the entry is worth writing again."""
        return set(images) == self.names and \
            all(self._served.get(id(img)) is img for img in images.values())

    def close(self) -> None:
        """Close the file; :attr:`names` and :meth:`holds` still answer for what it held."""
        archive, self._archive = self._archive, None
        if archive is not None:
            archive.close()
