"""Result cache of `mai-sr report`: JSON (and PNG) files keyed by what produced them.

A key is the SHA-256 of a canonical JSON object naming the kind of work, the model file's
content hash, the data set's fingerprint, the runner and every option that changes the
result (plus :data:`CACHE_VERSION` and the toolkit version, so a new toolkit recomputes).
Changing any of those gives a new key, so stale results are never reused; unchanged inputs
give the same key, so a rerun only does new work. Entries are written atomically.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from mai_sr import __version__
from mai_sr.fileio import sha256_file, sha256_json, write_bytes, write_json

CACHE_VERSION = 1


class ResultCache:
    """Files under `root` (``<out>/cache``): ``<kind>/<key>.json`` and ``<kind>/<key>.png``."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.hits = 0
        self.misses = 0

    @staticmethod
    def key(kind: str, **parts) -> str:
        """Hex key of one piece of work: `kind` plus the JSON-able `parts` that determine it."""
        return sha256_json({"kind": kind, "cache_version": CACHE_VERSION,
                            "toolkit": __version__, **parts})

    def _path(self, kind: str, key: str, suffix: str) -> Path:
        return self.root / kind / f"{key}{suffix}"

    def get_json(self, kind: str, key: str):
        """The cached object, or None (missing or unreadable entries count as misses)."""
        path = self._path(kind, key, ".json")
        try:
            value = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            self.misses += 1
            return None
        self.hits += 1
        return value

    def put_json(self, kind: str, key: str, value) -> None:
        write_json(self._path(kind, key, ".json"), value)

    def get_bytes(self, kind: str, key: str, suffix: str = ".png") -> bytes | None:
        path = self._path(kind, key, suffix)
        try:
            data = path.read_bytes()
        except OSError:
            self.misses += 1
            return None
        self.hits += 1
        return data

    def put_bytes(self, kind: str, key: str, data: bytes, suffix: str = ".png") -> None:
        write_bytes(self._path(kind, key, suffix), data)


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
    from mai_sr.data import BUILTIN_PHOTOS, IMAGE_SUFFIXES

    if source == "builtin":
        import skimage

        return sha256_json({"builtin": BUILTIN_PHOTOS, "skimage": skimage.__version__})
    folder = Path(source)
    rows = []
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder)
        if p.suffix.lower() in IMAGE_SUFFIXES and not any(s.startswith(".") for s in rel.parts):
            st = p.stat()
            rows.append((rel.as_posix(), st.st_size, st.st_mtime_ns))
    return sha256_json(rows)
