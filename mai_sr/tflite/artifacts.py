"""The files around a ``.tflite`` model, as every reader sees them (no TensorFlow).

- ``X.tflite``: the fixed-shape file (timed); ``X_none.tflite``: its dynamic-shape twin, the
  name the challenge repositories use;
- ``X.tflite.json``: the export's sidecar (provenance, with the file's sha256);
- the ``mai_sr_provenance`` metadata entry inside the flatbuffer: the same record, embedded.

Which file a command runs (a path, or a shipped model's name) is resolved by
:func:`mai_sr.weights.model_file`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from mai_sr.errors import MaiSrError
from mai_sr.fileio import sha256_file

METADATA_NAME = "mai_sr_provenance"


def dynamic_path(output: Path) -> Path:
    """``model.tflite`` -> ``model_none.tflite`` (the challenge repos' name)."""
    return output.with_name(f"{output.stem}_none{output.suffix}")


def sidecar_path(path: str | os.PathLike) -> Path:
    """``model.tflite`` -> ``model.tflite.json``."""
    return Path(f"{path}.json")


def read_sidecar(path: str | os.PathLike) -> dict:
    """The export's provenance JSON beside `path` (``model.tflite.json``), or {} if absent.

    A sidecar records its file's sha256. One that does not match is refused: it belongs to
    another export (a set torn by a kill or a full disk, or a file replaced by hand), and
    its figures would be put beside the wrong network. A file without a sidecar (a
    third-party or shipped model) is taken as it is.
    """
    sidecar = sidecar_path(path)
    if not sidecar.is_file():
        return {}
    try:
        data = json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MaiSrError(f"{sidecar}: unreadable provenance JSON ({exc})") from None
    if not isinstance(data, dict):
        raise MaiSrError(f"{sidecar}: provenance JSON is not an object")
    expected = data.get("sha256")
    if expected is not None and Path(path).is_file() and sha256_file(path) != expected:
        raise MaiSrError(f"{sidecar}: does not describe {Path(path).name} (sha256 differs: an "
                         "interrupted export or a replaced file); export again, or delete the "
                         "sidecar to use the file without its provenance")
    return data


def read_metadata(path) -> dict | None:
    """The provenance record stored in a .tflite file's metadata, or None (uses `tflite`).

    A file that is not a readable TFLite model gives the reader's one-line error."""
    import tflite

    from mai_sr.tflite.graph import read_graph

    read_graph(path)  # a truncated or foreign file fails here, with one line naming it
    data = Path(path).read_bytes()
    model = tflite.Model.GetRootAsModel(data, 0)
    for i in range(model.MetadataLength()):
        entry = model.Metadata(i)
        if entry.Name().decode(errors="replace") == METADATA_NAME:
            try:
                return json.loads(model.Buffers(entry.Buffer()).DataAsNumpy().tobytes())
            except (ValueError, UnicodeDecodeError) as exc:
                raise MaiSrError(f"{path}: unreadable {METADATA_NAME} metadata ({exc})") \
                    from None
    return None


def check_set(path: str | os.PathLike) -> None:
    """Refuse one file of an export set (``X.tflite`` + ``X_none.tflite``) whose other file
    lies beside it but comes from another export (:func:`check_twins`): every command that
    reads one file of a set checks it, as ``report`` does, so ``eval`` of the dynamic file
    and ``bench`` of the fixed one never measure half of a torn set. A file without a
    twin beside it is not checked."""
    path = Path(path)
    if path.suffix != ".tflite":
        return
    if path.stem.endswith("_none"):
        fixed, dynamic = path.with_name(path.stem[:-len("_none")] + path.suffix), path
    else:
        fixed, dynamic = path, dynamic_path(path)
    if fixed.is_file() and dynamic.is_file():
        check_twins(fixed, dynamic)


# Provenance fields that must agree between a fixed file and its dynamic twin: the two are
# one export of one network, converted at two input shapes.
TWIN_FIELDS = ("model", "scale", "precision", "quantization", "source", "calibration",
               "weights_sha256")


def check_twins(fixed: str | os.PathLike, dynamic: str | os.PathLike) -> None:
    """Refuse a fixed file and a dynamic twin that are not one export (a set torn by a kill
    or a full disk half-way through ``export --dynamic``, or a file replaced by hand).

    Both files' embedded provenance is compared on :data:`TWIN_FIELDS`, and each against
    its sidecar's sha256 (:func:`read_sidecar`). Files without embedded provenance
    (third-party models) are not compared.
    """
    for path in (fixed, dynamic):
        read_sidecar(path)
    records = [read_metadata(fixed), read_metadata(dynamic)]
    if None in records:
        return
    differ = [k for k in TWIN_FIELDS if records[0].get(k) != records[1].get(k)]
    if differ:
        raise MaiSrError(f"{Path(fixed).name} and {Path(dynamic).name} are not one export "
                         f"(their {', '.join(differ)} differ): export both again")
