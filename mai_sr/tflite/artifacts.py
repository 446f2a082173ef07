"""The files around a ``.tflite`` model, as every reader sees them (no TensorFlow).

- ``X.tflite``: the fixed-shape file (timed); ``X_none.tflite``: its dynamic-shape twin, the
  name the challenge repositories use;
- ``X.tflite.json``: the export's sidecar (provenance, with the file's sha256);
- the ``mai_sr_provenance`` metadata entry inside the flatbuffer: the same record, embedded;
- a shipped pretrained model, named instead of a path.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from mai_sr.errors import MaiSrError

METADATA_NAME = "mai_sr_provenance"


def dynamic_path(output: Path) -> Path:
    """``model.tflite`` -> ``model_none.tflite`` (the challenge repos' name)."""
    return output.with_name(f"{output.stem}_none{output.suffix}")


def sidecar_path(path: str | os.PathLike) -> Path:
    """``model.tflite`` -> ``model.tflite.json``."""
    return Path(f"{path}.json")


def read_sidecar(path: str | os.PathLike) -> dict:
    """The export's provenance JSON beside `path` (``model.tflite.json``), or {} if absent."""
    sidecar = sidecar_path(path)
    if not sidecar.is_file():
        return {}
    try:
        data = json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MaiSrError(f"{sidecar}: unreadable provenance JSON ({exc})") from None
    if not isinstance(data, dict):
        raise MaiSrError(f"{sidecar}: provenance JSON is not an object")
    return data


def read_metadata(path) -> dict | None:
    """The provenance record stored in a .tflite file's metadata, or None (uses `tflite`)."""
    import tflite

    data = Path(path).read_bytes()
    model = tflite.Model.GetRootAsModel(data, 0)
    for i in range(model.MetadataLength()):
        entry = model.Metadata(i)
        if entry.Name().decode() == METADATA_NAME:
            return json.loads(model.Buffers(entry.Buffer()).DataAsNumpy().tobytes())
    return None



def model_file(model: str | os.PathLike | None, pretrained: str | None,
               kind: str = "dynamic") -> Path:
    """The .tflite a command runs: `model`, or the shipped `pretrained` one of `kind`
    ("dynamic" for image work, "fixed" for timing: the 360x640 file that was benchmarked)."""
    if model and pretrained:
        raise MaiSrError(f"give a .tflite model file or --pretrained {pretrained}, not both")
    if pretrained:
        from mai_sr.pretrained import pretrained_path

        return pretrained_path(pretrained, kind)
    if not model:
        raise MaiSrError("no model: give a .tflite model file or --pretrained NAME")
    return Path(model)
