"""The inputs of `mai-sr report`: which models (run directories, ``.tflite`` files, the
fixed/dynamic files of one export) and which data sets it measures.

``X.tflite`` (fixed shape) and ``X_none.tflite`` (dynamic shape) are one model, and so are
``X_time.tflite`` (fixed) and ``X.tflite`` (dynamic), as published repositories name them:
the fixed file is timed, linted and sized (the challenge's timing model); the dynamic one,
when present, is evaluated (whole images, no tiling).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mai_sr.errors import MaiSrError
from mai_sr.fileio import sha256_json
from mai_sr.report.cache import dataset_fingerprint
from mai_sr.tflite.artifacts import check_twins

# File stems that say nothing about the model (third-party releases): named by their folder.
GENERIC_STEMS = frozenset({"model", "model_float", "model_int8", "model_quant"})



@dataclass(frozen=True)
class Dataset:
    """A data source as `mai_sr.data.iter_pairs` takes it, its short name and fingerprint."""

    source: str
    name: str
    fingerprint: str


@dataclass
class ModelInput:
    """One model of the report: `timing` is benchmarked/linted, `fidelity` evaluated."""

    name: str
    timing: Path
    fidelity: Path
    architecture: str | None = None
    run_dir: Path | None = None
    run_config_hash: str | None = None

    @property
    def files(self) -> list[Path]:
        return [self.timing] if self.fidelity == self.timing else [self.timing, self.fidelity]

    @property
    def fp32_weights(self) -> Path | None:
        """The run's collapsed FP32 deploy weights (for dPSNR), if this model has a run."""
        if self.run_dir is None:
            return None
        from mai_sr.runs import FP32_DEPLOY_WEIGHTS

        path = self.run_dir / FP32_DEPLOY_WEIGHTS
        return path if path.is_file() else None


def resolve_datasets(data) -> list[Dataset]:
    """`--data` items: 'builtin', a folder, or a folder name under $MAI_SR_DATA (e.g. Set14)."""
    from mai_sr.data import data_folder, split_sources
    from mai_sr.evaluate import dataset_name

    out = []
    for item in split_sources(data):
        try:
            source = item if item == "builtin" else str(data_folder(item))
        except MaiSrError as exc:
            raise MaiSrError(f"--data {exc}") from None
        out.append(Dataset(source, dataset_name(source), dataset_fingerprint(source)))
    return out


# File-name suffixes of one model's two files, as published repositories name them:
# X.tflite (fixed) + X_none.tflite (dynamic), the challenge's names; X_time.tflite (fixed,
# the timed file) + X.tflite (dynamic), as in the official ABPN repository.
_PAIR_SUFFIXES = ("_none", "_time")


def _is_dynamic(path: Path) -> bool:
    """Dynamic input shape? Read from the file; by name when it cannot be read."""
    from mai_sr.tflite.graph import read_graph

    try:
        return read_graph(path).is_dynamic
    except MaiSrError:
        return path.stem.endswith("_none")


def _pair_files(paths: list[Path]) -> list[tuple[Path, Path]]:
    """(timing, fidelity) per model: the fixed-shape file is timed and the dynamic one (given
    or lying beside it) evaluated; a file without its partner is used for both.

    Files pair by name, ``X.tflite`` with ``X_none.tflite`` or ``X_time.tflite`` with
    ``X.tflite``; which of the two is fixed is read from the files themselves, since
    ``X.tflite`` is the fixed file in one convention and the dynamic one in the other.
    """
    groups: dict[Path, list[Path]] = {}
    for p in paths:
        base = next((p.with_name(p.stem[:-len(s)] + ".tflite") for s in _PAIR_SUFFIXES
                     if p.stem.endswith(s)), p)
        groups.setdefault(base, []).append(p)
    pairs = []
    for base, given in groups.items():
        beside = [f for f in (base.with_name(base.stem + "_time.tflite"), base,
                              base.with_name(base.stem + "_none.tflite"))
                  if f.is_file() and f not in given]
        dynamic = {f: _is_dynamic(f) for f in given + beside}
        fixed = [f for f in given + beside if not dynamic[f]]
        dyn = [f for f in given + beside if dynamic[f]]
        timing = (fixed or dyn)[0]
        pairs.append((timing, (dyn or fixed)[0]))
    return pairs


def provenance(path: Path) -> dict:
    """What `mai-sr export` recorded about a file: its sidecar, else the ``mai_sr_provenance``
    metadata inside it (a shipped model has no sidecar); {} for a third-party file."""
    from mai_sr.tflite.artifacts import read_metadata, read_sidecar

    record = read_sidecar(path)
    if record:
        return record
    try:
        return read_metadata(path) or {}
    except Exception:  # not a readable TFLite file: lint and eval say what is wrong with it
        return {}


def _architecture(record: dict) -> str | None:
    """The architecture a provenance record names, if it is one of ours."""
    from mai_sr.registry import MODELS

    return record.get("model") if record.get("model") in MODELS else None


def _run_config_hash(record: dict) -> str | None:
    """The training run's config hash recorded by `mai-sr export`, if any."""
    source = record.get("source")
    return source.get("run_config_sha256") if isinstance(source, dict) else None


def _is_shipped(path: Path) -> bool:
    from mai_sr.pretrained import PRETRAINED_DIR

    return path.resolve().parent == PRETRAINED_DIR


def _file_model_name(path: Path, record: dict) -> str:
    """What a bare .tflite is, as a name: a shipped model's name marked "(shipped)", the run
    folder of a file in a run's export/, the folder of a third-party file named like
    ``model.tflite``, else the file name."""
    from mai_sr.runs import CONFIG_FILE

    # X_none (dynamic) and X_time (fixed, timed) are files of the model X.
    stem = next((path.stem[:-len(s)] for s in _PAIR_SUFFIXES if path.stem.endswith(s)),
                path.stem)
    if _is_shipped(path):
        return f"{stem} (shipped)"
    parent = path.resolve().parent
    if parent.name == "export" and (parent.parent / CONFIG_FILE).is_file():
        return parent.parent.name
    if not record and stem.lower() in GENERIC_STEMS:
        return parent.name
    return stem


def _unique_names(models: list[ModelInput]) -> None:
    """Give models that share a name their folder as a prefix (their file name when named
    after their folder), then a number if still equal."""
    from collections import Counter

    counts = Counter(m.name for m in models)
    for m in models:
        if counts[m.name] > 1:
            folder = m.timing.resolve().parent.name
            m.name = f"{folder}/{m.timing.stem}" if m.name == folder else f"{folder}/{m.name}"
    seen: dict[str, int] = {}
    for m in models:
        seen[m.name] = seen.get(m.name, 0) + 1
        if seen[m.name] > 1:
            m.name = f"{m.name} ({seen[m.name]})"


def card_file_name(name: str) -> str:
    """The card file of a model name (``scsrn (shipped)`` -> ``scsrn-shipped.json``)."""
    import re

    return (re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "model") + ".json"


def _run_models(run_dir: Path) -> list[ModelInput]:
    """The INT8 exports of a training run (exporting them first if there are none)."""
    from mai_sr.tflite.artifacts import read_sidecar
    from mai_sr.runs import read_run_config

    config = read_run_config(run_dir)
    arch = config.get("model")
    # The run's own folder name: `runs/latest` (a link) is named after the run it points to.
    run_name = run_dir.resolve().name
    files = [p for p in sorted((run_dir / "export").glob("*.tflite"))
             if read_sidecar(p).get("precision", "int8") == "int8"]
    if not files:
        from mai_sr.export.convert import export

        files = export(run_dir / "export" / f"{arch}.tflite", run=str(run_dir), dynamic=True)
    pairs = _pair_files([Path(p) for p in files])
    models = []
    for timing, fidelity in pairs:
        name = run_name if len(pairs) == 1 else f"{run_name}-{timing.stem}"
        models.append(ModelInput(name, timing, fidelity, arch, run_dir,
                                 _run_config_hash(provenance(timing)) or sha256_json(config)))
    return models


def resolve_inputs(inputs) -> list[ModelInput]:
    """Run directories and .tflite files -> models with unique names (bad input: MaiSrError).

    Names say what a model is: the run's folder name, a shipped model's name marked
    "(shipped)", the folder of a third-party ``model.tflite``; models that would share a
    name get their folder as a prefix. The architecture is the one the file's provenance
    names (sidecar or embedded metadata), so shipped files get their published rows too.
    """
    models, files = [], []
    for item in inputs:
        path = Path(item).absolute()
        if path.is_dir():
            # The run itself, not a link to it: `runs/latest` is read as the run it names.
            models += _run_models(path.resolve())
        elif path.suffix == ".tflite" and path.is_file():
            files.append(path)
        else:
            what = "no such file or folder" if not path.exists() else "not a .tflite file"
            raise MaiSrError(f"{item}: {what} (give run directories or .tflite files)")
    for timing, fidelity in _pair_files(files):
        if fidelity != timing:
            # one row must never mix two exports' figures (a set torn by a kill mid-export)
            check_twins(timing, fidelity)
        record = provenance(timing)
        models.append(ModelInput(_file_model_name(timing, record), timing, fidelity,
                                 _architecture(record),
                                 run_config_hash=_run_config_hash(record)))
    if not models:
        raise MaiSrError("no models to report on (give run directories or .tflite files)")
    unique: dict[tuple[Path, Path], ModelInput] = {}
    for m in models:
        unique.setdefault((m.timing, m.fidelity), m)
    models = list(unique.values())
    _unique_names(models)
    return models
