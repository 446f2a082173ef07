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
    # Where the scored file came from, in words, when a run's file was not exported by the
    # report itself: "model.tflite, exported from this run" (the CLI says which file it scored).
    origin: str | None = None

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


def scored_files(model: ModelInput) -> str:
    """"run-1: scoring model.tflite (timed) + model_none.tflite (evaluated), exported from
    this run": which files a model's row is measured on, for the command's output."""
    def shown(path: Path) -> str:
        try:
            return str(path.relative_to(Path.cwd()))
        except ValueError:
            return path.name if _is_shipped(path) else str(path)

    files = shown(model.timing) if model.fidelity == model.timing else \
        f"{shown(model.timing)} (timed) + {shown(model.fidelity)} (evaluated)"
    return f"{model.name}: scoring {files}" + (f", {model.origin}" if model.origin else "")


def card_file_name(name: str) -> str:
    """The card file of a model name (``scsrn (shipped)`` -> ``scsrn-shipped.json``)."""
    import re

    return (re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "model") + ".json"


def _exported_from(path: Path, run_name: str, config_hash: str) -> bool:
    """True when `path`'s provenance says `mai-sr export --run` wrote it from this run (the
    run's folder name and config hash) at INT8."""
    from mai_sr.tflite.artifacts import read_sidecar

    try:
        record = read_sidecar(path)
    except MaiSrError:  # a torn set: not a file to score
        return False
    source = record.get("source")
    return (isinstance(source, dict) and source.get("run") == run_name
            and source.get("run_config_sha256") == config_hash
            and record.get("precision", "int8") == "int8")


def _user_exports(run_dir: Path, candidates) -> list[Path]:
    """The INT8 files among `candidates` that were exported from `run_dir`."""
    from mai_sr.runs import read_run_config

    config_hash = sha256_json(read_run_config(run_dir))
    return [p for p in candidates if _exported_from(p, run_dir.name, config_hash)]


def _run_models(run_dir: Path, given: list[Path] = ()) -> list[ModelInput]:
    """The INT8 files of a training run: `given` (the user's own export, --tflite), else its
    ``export/*.tflite``, else the files in the working directory that `mai-sr export --run`
    wrote from this run (the quick start's ``model.tflite``), else a new export."""
    from mai_sr.tflite.artifacts import read_sidecar
    from mai_sr.runs import read_run_config

    config = read_run_config(run_dir)
    arch = config.get("model")
    # The run's own folder name: `runs/latest` (a link) is named after the run it points to.
    run_name = run_dir.resolve().name
    origin = None
    files = list(given)
    if files:
        origin = "given with --tflite"
    else:
        files = [p for p in sorted((run_dir / "export").glob("*.tflite"))
                 if read_sidecar(p).get("precision", "int8") == "int8"]
    if not files:
        files = _user_exports(run_dir, sorted(Path.cwd().glob("*.tflite")))
        origin = "exported from this run" if files else None
    if not files:
        from mai_sr.export.convert import export

        files = export(run_dir / "export" / f"{arch}.tflite", run=str(run_dir), dynamic=True)
        origin = "exported by this report"
    pairs = _pair_files([Path(p) for p in files])
    models = []
    for timing, fidelity in pairs:
        name = run_name if len(pairs) == 1 else f"{run_name}-{timing.stem}"
        models.append(ModelInput(name, timing, fidelity, arch, run_dir,
                                 _run_config_hash(provenance(timing)) or sha256_json(config),
                                 origin=origin))
    return models


def shipped_model_file(name: str) -> Path | None:
    """The fixed-shape INT8 file of a shipped model named `name` (``abpn``,
    ``abpn.mai_builtin``, ``abpn.etds_div2k``, as :func:`mai_sr.weights.resolve` names them),
    or None when `name` names none."""
    from mai_sr.pretrained import pretrained_names, pretrained_path

    return pretrained_path(name, "fixed") if name in pretrained_names() else None


def _not_an_input(item: str, path: Path) -> str:
    """Why `item` is no report input, in one line (a zoo weight names the export command)."""
    from mai_sr.pretrained import pretrained_names
    from mai_sr.weights import list_weights

    if path.exists():
        return f"{item}: not a .tflite file (give run directories, .tflite files or shipped names)"
    if any(w.name == item and not w.shipped for w in list_weights()):
        return (f"{item}: zoo weights, not an INT8 file; `mai-sr fetch {item}` imports them, "
                "then report the .tflite that `mai-sr export` writes from them")
    return (f"{item}: no such file or folder, nor a shipped model "
            f"({', '.join(pretrained_names())})")


def _assign_tflite(runs: list[Path], tflite) -> dict[Path, list[Path]]:
    """--tflite files -> the run each was exported from (its provenance), or the only run.

    A file no run claims, or given with no run, is a one-line error: scoring it as a run's
    would put another network's figures under the run's name."""
    assigned: dict[Path, list[Path]] = {run: [] for run in runs}
    for item in tflite or ():
        path = Path(item).absolute()
        if not (path.suffix == ".tflite" and path.is_file()):
            raise MaiSrError(f"--tflite {item}: no such .tflite file")
        if not runs:
            raise MaiSrError(f"--tflite {item}: give the run it was exported from (or give "
                             "the file itself as an input)")
        owners = [run for run in runs if _user_exports(run, [path])]
        source = provenance(path).get("source")
        if not owners and len(runs) == 1 and not (isinstance(source, dict) and "run" in source):
            owners = runs  # no run recorded (a file converted elsewhere), one run given
        if not owners:
            raise MaiSrError(f"--tflite {item}: its provenance names none of the runs given "
                             f"({', '.join(r.name for r in runs)})")
        assigned[owners[0]].append(path)
    return assigned


def resolve_inputs(inputs, tflite=(), pretrained=()) -> list[ModelInput]:
    """Run directories, .tflite files and shipped model names (``abpn``, ``abpn.mai_builtin``)
    -> models with unique names (bad input: MaiSrError). `tflite`: files the user exported
    from the runs among `inputs` (``--tflite``), scored instead of the runs' own exports.
    `pretrained`: shipped model names only (``--pretrained``).

    Names say what a model is: the run's folder name, a shipped model's name marked
    "(shipped)", the folder of a third-party ``model.tflite``; models that would share a
    name get their folder as a prefix. The architecture is the one the file's provenance
    names (sidecar or embedded metadata), so shipped files get their published rows too.
    """
    for name in pretrained:
        if shipped_model_file(name) is None:
            from mai_sr.pretrained import pretrained_names

            raise MaiSrError(f"--pretrained {name}: not a shipped model (choose from "
                             f"{', '.join(pretrained_names())})")
    models, files, runs = [], [], []
    for item in [*inputs, *(shipped_model_file(n) for n in pretrained)]:
        path = Path(item).absolute()
        if path.is_dir():
            # The run itself, not a link to it: `runs/latest` is read as the run it names.
            runs.append(path.resolve())
        elif path.suffix == ".tflite" and path.is_file():
            files.append(path)
        elif not path.exists() and (shipped := shipped_model_file(str(item))) is not None:
            files.append(shipped)
        else:
            raise MaiSrError(_not_an_input(str(item), path))
    runs = list(dict.fromkeys(runs))
    given = _assign_tflite(runs, tflite)
    for run in runs:
        models += _run_models(run, given[run])
    for timing, fidelity in _pair_files(files):
        if fidelity != timing:
            # one row must never mix two exports' figures (a set torn by a kill mid-export)
            check_twins(timing, fidelity)
        record = provenance(timing)
        models.append(ModelInput(_file_model_name(timing, record), timing, fidelity,
                                 _architecture(record),
                                 run_config_hash=_run_config_hash(record)))
    if not models:
        raise MaiSrError("no models to report on (give run directories, .tflite files or "
                         "--pretrained NAME)")
    unique: dict[tuple[Path, Path], ModelInput] = {}
    for m in models:
        unique.setdefault((m.timing, m.fidelity), m)
    models = list(unique.values())
    _unique_names(models)
    return models
