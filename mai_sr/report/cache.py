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
# file_hash and dataset_fingerprint are shared with eval's bicubic baseline cache.
from mai_sr.cache import dataset_fingerprint, file_hash  # noqa: F401 (re-exported)
from mai_sr.fileio import sha256_json, write_bytes, write_json

CACHE_VERSION = 1


class ResultCache:
    """Files under `root` (``<out>/cache``): ``<kind>/<key>.json`` and ``<kind>/<key>.png``."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    @staticmethod
    def key(kind: str, **parts) -> str:
        """Hex key of one piece of work: `kind` plus the JSON-able `parts` that determine it."""
        return sha256_json({"kind": kind, "cache_version": CACHE_VERSION,
                            "toolkit": __version__, **parts})

    def _path(self, kind: str, key: str, suffix: str) -> Path:
        return self.root / kind / f"{key}{suffix}"

    def get_json(self, kind: str, key: str):
        """The cached object, or None (missing or unreadable entries)."""
        path = self._path(kind, key, ".json")
        try:
            value = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return value

    def put_json(self, kind: str, key: str, value) -> None:
        write_json(self._path(kind, key, ".json"), value)

    def get_bytes(self, kind: str, key: str, suffix: str = ".png") -> bytes | None:
        path = self._path(kind, key, suffix)
        try:
            data = path.read_bytes()
        except OSError:
            return None
        return data

    def put_bytes(self, kind: str, key: str, data: bytes, suffix: str = ".png") -> None:
        write_bytes(self._path(kind, key, suffix), data)
