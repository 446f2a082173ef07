"""`mai-sr report`: evaluate, benchmark and lint every model, then write the leaderboard.

Inputs are run directories (their ``export/*.tflite``, exported first when there is none)
or ``.tflite`` files. ``X.tflite`` (fixed shape) and ``X_none.tflite`` (dynamic shape) are
one model, and so are ``X_time.tflite`` (fixed) and ``X.tflite`` (dynamic), as published
repositories name them: the fixed file is timed, linted and sized (the challenge's timing
model); the dynamic one, when present, is evaluated (whole images, no tiling). Every measurement is
cached in ``<out>/cache`` by file hash, data set fingerprint, runner and options
(:mod:`mai_sr.report.cache`), so a rerun with nothing changed only rewrites the outputs.

A measurement that fails (a float model the simulator rejects, a lint error, a model
LiteRT cannot run) is recorded in the model's row and card; the report goes on. Failures
other than :class:`MaiSrError` (bugs) also get their traceback in ``<out>/errors.log``.
"""

from __future__ import annotations

import csv
import math
import traceback
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
from tqdm import tqdm

from mai_sr import __version__
from mai_sr.errors import MaiSrError
from mai_sr.fileio import json_bytes, sha256_json, write_files
from mai_sr.report.cache import ResultCache, dataset_fingerprint, file_hash
from mai_sr.report.cards import build_model_card, lint_summary
from mai_sr.results import BenchResult, EvalResult, ImageScore
from mai_sr.tflite.artifacts import check_twins

GRID_IMAGES = 3      # images in the visual comparison
GRID_CROP_LR = 32    # LR pixels per side of a crop (96 HR pixels at x3)
GRID_DATASETS = ("Set14", "B100")  # preferred for the comparison (varied photographs)
NO_RETRY_RUNNERS = frozenset({"adb"})  # device errors are transient: never cached
_MODEL = "<model file>"  # stands for the model's path in cached error messages
# File stems that say nothing about the model (third-party releases): named by their folder.
GENERIC_STEMS = frozenset({"model", "model_float", "model_int8", "model_quant"})


# ---------------------------------------------------------------- inputs


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


# ---------------------------------------------------------------- measurements


def evaluate_keras_fp32(run_dir: Path, source: str, predict=None) -> EvalResult:
    """PSNR/SSIM of a run's FP32 Keras deploy model on `source`, scored like `mai-sr eval`
    (RGB, border crop = the run's scale). `predict` (a compiled model call, as
    :func:`keras_predictor` gives) can be passed to reuse."""
    from mai_sr.data import iter_pairs
    from mai_sr.evaluate import dataset_name
    from mai_sr.runs import read_run_config, run_scale
    from mai_sr.scoring import Scoring, score_pairs

    scale = run_scale(read_run_config(run_dir))
    rows = score_pairs(predict or keras_predictor(run_dir), iter_pairs(source, scale=scale),
                       Scoring(scale))
    return EvalResult(model=f"{run_dir.name} (keras fp32)", dataset=dataset_name(source),
                      images=tuple(r.image_score() for r in rows), crop=scale)


def graph_scale(path: Path) -> int:
    """The upscaling factor of a .tflite file, read from its graph (LiteRT, no TensorFlow)."""
    from mai_sr.tflite.runtime import TFLiteSR

    return TFLiteSR(path).scale


def keras_predictor(run_dir: Path):
    """The run's FP32 deploy model as a predictor (uint8 LR -> uint8 SR), compiled once for
    any image size (imports TF)."""
    from mai_sr._tf import tf
    from mai_sr.scoring import float_batch_predictor
    from mai_sr.train.run_model import load_run_model

    model = load_run_model(run_dir, stage="fp32")
    fn = tf.function(lambda x: model(x, training=False),
                     input_signature=[tf.TensorSpec([1, None, None, 3], tf.float32)])
    return float_batch_predictor(lambda x: fn(tf.constant(x)).numpy())


def _bench(runner: str, options: dict, path: Path) -> list[dict]:
    from mai_sr import device

    result = device.get_runner(runner, **options).bench(path)
    return [r.to_dict() for r in (result if isinstance(result, list) else [result])]


def _busiest_box(hr: np.ndarray, size: int, scale: int) -> tuple[int, int]:
    """Top-left (y, x), in LR pixels, of the size x size LR crop with the most detail
    (gradient energy of the HR image), on a half-crop grid."""
    grey = hr.astype(np.float32).mean(axis=2)
    energy = np.zeros_like(grey)
    energy[:, 1:] += np.abs(np.diff(grey, axis=1))
    energy[1:, :] += np.abs(np.diff(grey, axis=0))
    h, w = hr.shape[0] // scale, hr.shape[1] // scale
    s, step = scale, max(1, size // 2)
    candidates = [(y, x) for y in range(0, h - size + 1, step) for x in range(0, w - size + 1, step)]
    return max(candidates,
               key=lambda yx: energy[yx[0] * s:(yx[0] + size) * s, yx[1] * s:(yx[1] + size) * s]
               .sum())


def _png_bytes(img: np.ndarray) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return buf.getvalue()


def _png_array(data: bytes) -> np.ndarray:
    import io

    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"))


class _Report:
    """State of one `make_report` call: cache, data sets, runners, error log."""

    def __init__(self, out: Path, datasets: list[Dataset], runners: list[str],
                 runner_options: dict, baseline_cache_dir=None):
        self.datasets, self.runners, self.runner_options = datasets, runners, runner_options
        self.baseline_cache_dir = baseline_cache_dir  # None: mai_sr.cache's default
        self.cache = ResultCache(out / "cache")
        self.error_log: list[str] = []
        self._predictors: dict[Path, object] = {}
        self._plan: list[dict] | None = None
        self._grid_pairs: dict[tuple[str, str], object] | None = None

    # ------------------------------------------------------------ caching
    def cached(self, kind: str, parts: dict, compute, *, path: Path | None = None,
               cache_errors: bool = True):
        """(value, error): from the cache, else compute() (JSON-able). MaiSrError becomes the
        error text (cached unless `cache_errors` is False); other exceptions are logged.

        The cache is keyed by content, so a cached error names the model file `path` by a
        placeholder and gets the current file's name back."""
        key = self.cache.key(kind, **parts)
        hit = self.cache.get_json(kind, key)
        if hit is None:
            try:
                hit = {"value": compute(), "error": None}
            except MaiSrError as exc:
                message = str(exc).replace(str(path), _MODEL) if path else str(exc)
                hit = {"value": None, "error": message}
            except Exception as exc:  # a bug elsewhere must not lose the other models' results
                self.error_log.append(f"{kind} {parts}:\n{traceback.format_exc()}")
                return None, f"{type(exc).__name__}: {exc} (traceback in errors.log)"
            if hit["error"] is None or cache_errors:
                self.cache.put_json(kind, key, hit)
        error = hit["error"]
        return hit["value"], error.replace(_MODEL, path.name) if error and path else error

    # ------------------------------------------------------------ one model
    def model_card(self, model: ModelInput, bar) -> dict:
        errors: list[str] = []
        timing_hash, fidelity_hash = file_hash(model.timing), file_hash(model.fidelity)

        bar.set_postfix_str(f"{model.name}: lint")
        lint, error = self.cached("lint", {"model": timing_hash},
                                  lambda: lint_summary(model.timing), path=model.timing)
        if error:
            errors.append(f"lint: {error}")

        int8 = []
        for ds in self.datasets:
            bar.set_postfix_str(f"{model.name}: eval {ds.name}")
            value, error = self.cached(
                "eval", {"model": fidelity_hash, "data": ds.fingerprint, "y_channel": False},
                lambda ds=ds: self._eval(model.fidelity, ds).to_dict(), path=model.fidelity)
            if error:
                errors.append(f"eval {ds.name}: {error}")
            else:
                int8.append(EvalResult.from_dict(value))

        fp32 = []
        weights = model.fp32_weights
        for ds in self.datasets if weights else ():
            bar.set_postfix_str(f"{model.name}: keras fp32 {ds.name}")
            value, error = self.cached(
                "fp32", {"weights": file_hash(weights), "architecture": model.architecture,
                         "data": ds.fingerprint},
                lambda ds=ds: evaluate_keras_fp32(model.run_dir, ds.source,
                                                  self._predictor(model.run_dir)).to_dict())
            if error:
                errors.append(f"keras fp32 {ds.name}: {error}")
            else:
                fp32.append(EvalResult.from_dict(value))

        benches = []
        for runner in self.runners:
            bar.set_postfix_str(f"{model.name}: bench {runner}")
            options = self.runner_options.get(runner, {})
            value, error = self.cached(
                "bench", {"model": timing_hash, "runner": runner, "options": options},
                lambda r=runner, o=options: _bench(r, o, model.timing), path=model.timing,
                cache_errors=runner not in NO_RETRY_RUNNERS)
            if error:  # the card lists it as "<runner>: <error>"
                benches.append(BenchResult(runner=runner, model=model.timing.name,
                                           avg_ms=math.nan, error=error))
            else:
                benches += [BenchResult.from_dict(d) for d in value]

        scale = {"scale": s} if (s := self.model_scale(model)) else {}
        return build_model_card(model.name, tflite=model.files, architecture=model.architecture,
                                **scale, int8_results=int8, fp32_results=fp32,
                                bench_results=benches, lint=lint,
                                run_config_hash=model.run_config_hash, errors=errors)

    def model_scale(self, model: ModelInput) -> int | None:
        """`model`'s upscaling factor, from its graph (cached per file); None if unreadable."""
        value, _error = self.cached("scale", {"model": file_hash(model.fidelity)},
                                    lambda: graph_scale(model.fidelity), path=model.fidelity)
        return value

    def _eval(self, path: Path, ds: Dataset) -> EvalResult:
        from mai_sr import evaluate

        # require_int8=False: a float model is still scored; lint flags it as not INT8.
        return evaluate.evaluate_tflite(path, [ds.source], quiet=True, require_int8=False,
                                        cache_dir=self.baseline_cache_dir)[0]

    def _predictor(self, run_dir: Path):
        if run_dir not in self._predictors:
            self._predictors[run_dir] = keras_predictor(run_dir)
        return self._predictors[run_dir]

    # ------------------------------------------------------------ comparison grid
    def grid_plan(self, scale: int) -> list[dict]:
        """The comparison images at `scale`: the first colour images of Set14/B100 (else of
        the first data set) big enough for a crop, each with its most detailed crop box."""
        if self._plan is None:
            preferred = [d for d in self.datasets if d.name in GRID_DATASETS] or self.datasets[:1]
            plan, _error = self.cached("gridplan", {"data": [d.fingerprint for d in preferred],
                                                    "images": GRID_IMAGES, "crop": GRID_CROP_LR,
                                                    "scale": scale},
                                       lambda: self._make_plan(preferred, scale))
            self._plan = plan or []
        return self._plan

    def _make_plan(self, datasets: list[Dataset], scale: int) -> list[dict]:
        from mai_sr.data import iter_pairs

        plan = []
        for ds in datasets:
            for pair in iter_pairs(ds.source, scale=scale, min_lr_size=GRID_CROP_LR):
                if len(plan) == GRID_IMAGES:
                    return plan
                rgb = pair.hr.astype(np.int16)
                if np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 1],
                                                                                rgb[..., 2]):
                    continue  # greyscale: colour errors would not show
                plan.append({"source": ds.source, "dataset": ds.name, "image": pair.name,
                             "fingerprint": ds.fingerprint, "scale": scale,
                             "box": list(_busiest_box(pair.hr, GRID_CROP_LR, scale))})
        return plan

    def _pair(self, item: dict):
        """The ImagePair of a plan item (the plan's images are decoded once, on demand)."""
        from mai_sr.data import iter_pairs

        if self._grid_pairs is None:
            self._grid_pairs = {}
            wanted = {(p["source"], p["image"]) for p in self._plan}
            for source in dict.fromkeys(s for s, _ in wanted):
                for pair in iter_pairs(source, scale=item["scale"]):
                    if (source, pair.name) in wanted:
                        self._grid_pairs[(source, pair.name)] = pair
                    if wanted <= self._grid_pairs.keys():
                        break
        return self._grid_pairs[(item["source"], item["image"])]

    def crop(self, item: dict, method: str, model_path: Path | None = None) -> np.ndarray | None:
        """The HR-size crop of `item` for method "hr", "bicubic" or a model (None on error)."""
        y, x = item["box"]
        c, s = GRID_CROP_LR, item["scale"]
        parts = {"data": item["fingerprint"], "image": item["image"], "box": item["box"],
                 "crop": c, "scale": s, "method": file_hash(model_path) if model_path else method}
        key = self.cache.key("crop", **parts)
        data = self.cache.get_bytes("crop", key)
        if data is not None:
            return _png_array(data)
        pair = self._pair(item)
        try:
            if method == "hr":
                tile = pair.hr[y * s:(y + c) * s, x * s:(x + c) * s]
            elif method == "bicubic":
                from mai_sr.data import bicubic_upscale

                tile = bicubic_upscale(pair.lr, s)[y * s:(y + c) * s, x * s:(x + c) * s]
            else:
                tile = self._model_crop(model_path, pair.lr, y, x, s)
        except MaiSrError as exc:
            self.error_log.append(f"crop {item['image']} {model_path}: {exc}")
            return None
        self.cache.put_bytes("crop", key, _png_bytes(np.ascontiguousarray(tile)))
        return tile

    @staticmethod
    def _model_crop(path: Path, lr: np.ndarray, y: int, x: int, s: int) -> np.ndarray:
        """Upscale only the crop plus a receptive-field margin: equal to cropping the whole
        upscaled image, at a fraction of the work."""
        from mai_sr.tflite.runtime import TFLiteSR

        model = TFLiteSR(path)
        c, m = GRID_CROP_LR, model.receptive_field + 1
        y0, x0 = max(0, y - m), max(0, x - m)
        region = lr[y0:min(lr.shape[0], y + c + m), x0:min(lr.shape[1], x + c + m)]
        sr = model.upscale(region)
        return sr[(y - y0) * s:(y - y0 + c) * s, (x - x0) * s:(x - x0 + c) * s]


# ---------------------------------------------------------------- figures


def _training_curves(models: list[ModelInput]) -> list[dict]:
    """Loss and val PSNR series from each run's metrics.csv (stages placed one after another)."""
    from mai_sr.runs import METRICS_FILE, read_run_config

    curves = []
    for m in models:
        path = m.run_dir / METRICS_FILE if m.run_dir else None
        if path is None or not path.is_file():
            continue
        val_set = validation_set(read_run_config(m.run_dir))
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
        offset = 0
        for stage in dict.fromkeys(r.get("stage", "") for r in rows):
            stage_rows = [r for r in rows if r.get("stage", "") == stage]
            xs = [offset + int(float(r["step"])) for r in stage_rows]
            for column, axis in (("loss", "loss"), ("val_psnr", "psnr")):
                ys = [float(r[column]) if r.get(column) not in (None, "") else None
                      for r in stage_rows]
                curves.append({"label": f"{m.name} {stage}".strip(), "x": xs, "y": ys,
                               "axis": axis, **({"val_set": val_set} if axis == "psnr" else {})})
            offset = max(xs, default=offset)
    return curves


def validation_set(config: dict) -> str:
    """The images a run validated on, in words: its --val folders, else the share of its
    training data held out ("held-out T91+BSD200")."""
    from mai_sr.data import split_sources

    def names(value) -> str:
        try:
            return "+".join(Path(item).name for item in split_sources(value or []))
        except MaiSrError:  # an empty setting in an old run's config
            return "?"

    if config.get("val"):
        return names(config["val"])
    return f"held-out {names(config.get('data') or 'builtin')}"


def _cached_figure(report: _Report, name: str, inputs, render) -> bytes:
    """A figure's PNG, re-rendered only when its inputs change."""
    key = report.cache.key("plot", name=name, inputs=inputs)
    png = report.cache.get_bytes("plot", key)
    if png is None:
        png = render()
        report.cache.put_bytes("plot", key, png)
    return png


def _figures(report: _Report, models: list[ModelInput], table) -> list[dict]:
    from mai_sr.report import plots
    from mai_sr.report.table import MEASURED
    from mai_sr.score import C

    rows = table.to_dict("records")
    points = [{"label": r["model"], "psnr": r["psnr"], "runtime_ms": r["npu_ms"],
               "score": r["score"], "kind": "measured" if r["source"] == MEASURED else "published",
               "challenge": not r["score_caveat"]} for r in rows]
    bars = [{"label": r["model"], "delta": r["delta_psnr"],
             "kind": "measured" if r["source"] == MEASURED else "published"} for r in rows]
    figures = [
        {"file": "psnr_vs_runtime.png", "title": "PSNR vs NPU runtime",
         "caption": "Grey curves join points of equal final score 2^(2*PSNR)/(C*runtime): "
                    "moving up one curve at the same runtime costs 0.5 dB per doubling of "
                    "score. Hollow markers are not challenge scores (see the leaderboard's "
                    "score cells): measured PSNRs are on this report's data, published ones "
                    "on the challenge test set.",
         "png": _cached_figure(report, "psnr_runtime", [points, C],
                               lambda: plots.psnr_runtime_png(points, C))},
        {"file": "delta_psnr.png", "title": "PSNR drop FP32 -> INT8",
         "caption": "Keras FP32 network minus the INT8 TFLite file on the same images; n.a. "
                    "where no FP32 network was available (bare .tflite inputs) or published.",
         "png": _cached_figure(report, "delta_psnr", bars, lambda: plots.delta_psnr_png(bars))},
    ]
    curves = _training_curves(models)
    if curves:
        sets = sorted({c["val_set"] for c in curves if "val_set" in c})
        figures.append({"file": "training_curves.png", "title": "Training curves",
                        "caption": "From each run's metrics.csv: FP32 stage, then QAT. "
                                   + (f"Validation PSNR on {sets[0]}." if len(sets) == 1 else
                                      "The runs validated on different images "
                                      f"({'; '.join(sets)}): their validation PSNRs do not "
                                      "compare with each other."),
                        "png": _cached_figure(report, "training", curves,
                                              lambda: plots.training_curves_png(curves))})
    grid = _grid(report, models)
    if grid:
        figures.append({"file": "comparison.png", "title": "Visual comparison",
                        "caption": f"HR crops of {GRID_CROP_LR}x{GRID_CROP_LR} LR pixels (the "
                                   "most detailed region of each image): HR, bicubic, then "
                                   "the output of each model of the most common scale "
                                   "(INT8 TFLite).",
                        "png": grid})
    return figures


def _grid(report: _Report, models: list[ModelInput]) -> bytes | None:
    from mai_sr.report import plots

    # One scale per grid (crops side by side must match): the most common of the models',
    # whose models are shown; the challenge's x3 on a tie.
    from collections import Counter

    from mai_sr.challenge import CHALLENGE_SCALE

    scales = {m.name: report.model_scale(m) for m in models}
    counts = Counter(s for s in scales.values() if s)
    if not counts:
        return None
    scale = max(counts, key=lambda s: (counts[s], s == CHALLENGE_SCALE))
    plan = report.grid_plan(scale)
    if not plan:
        return None
    methods = [("HR", "hr", None), ("bicubic", "bicubic", None)] + \
              [(m.name, "model", m.fidelity) for m in models if scales[m.name] == scale]
    # The figure depends only on the plan and the model files: a rerun decodes no crop.
    inputs = [plan, [(label, path and file_hash(path)) for label, _, path in methods]]

    def render() -> bytes:
        rows = []
        for item in plan:
            tiles = []
            for label, method, path in methods:
                tile = report.crop(item, method, path)
                if tile is None:  # failed model: a grey tile keeps the columns aligned
                    tile = np.full((GRID_CROP_LR * scale,) * 2 + (3,), 128, np.uint8)
                tiles.append((label, tile))
            rows.append({"title": f"{item['dataset']}/{item['image']}", "tiles": tiles})
        return plots.comparison_grid_png(rows)

    return _cached_figure(report, "grid", inputs, render)


# ---------------------------------------------------------------- entry point


def make_report(inputs, *, data, runners, out_dir, quiet: bool = False,
                runner_options: dict | None = None, cache_dir=None) -> Path:
    """Evaluate, lint and benchmark every model of `inputs`; write the report to `out_dir`.

    inputs: run directories and/or .tflite files. data: data sources ('builtin', folders, or
    folder names under $MAI_SR_DATA), list or comma-separated; the first is the leaderboard's
    PSNR/SSIM. runners: names from `mai_sr.device` ("local" gives CPU ms, "synap"/"adb" NPU ms).
    runner_options: {runner: {keyword: value}} for `mai_sr.device.get_runner` (e.g.
    {"local": {"min_runs": 5}}); part of the cache key. cache_dir: where the bicubic
    baselines shared with `mai-sr eval` live (default ``$XDG_CACHE_HOME/mai-sr``).

    Writes leaderboard.csv, leaderboard.md, plots/*.png, index.html, cards/<model>.json and
    cache/ (reused by the next call). Returns `out_dir`.
    """
    from mai_sr.device import list_runners
    from mai_sr.report.page import render_page
    from mai_sr.report.challenge import citation
    from mai_sr.report.table import details_frame, leaderboard, markdown_table, summary_frame

    runners = list(runners.split(",") if isinstance(runners, str) else runners)
    unknown = [r for r in runners if r not in list_runners()]
    if unknown:
        raise MaiSrError(f"--runner {','.join(unknown)}: unknown (choose from "
                         f"{', '.join(list_runners())})")
    datasets = resolve_datasets(data)
    models = resolve_inputs(inputs)
    out = Path(out_dir)
    report = _Report(out, datasets, runners, dict(runner_options or {}), cache_dir)

    cards = []
    with tqdm(models, desc="report", unit="model", disable=quiet) as bar:
        for model in bar:
            cards.append(report.model_card(model, bar))
    # Every page file is written as one set at the end (fileio.write_files): a full disk
    # leaves the previous report whole instead of half of a new one.
    pages: dict[Path, bytes] = {}
    for card in cards:
        pages[out / "cards" / card_file_name(card["name"])] = json_bytes(card)
        for line in card["errors"]:
            if not quiet:
                tqdm.write(f"{card['name']}: {line}")

    names = [d.name for d in datasets]
    table = leaderboard(cards, names)
    pages[out / "leaderboard.csv"] = table.to_csv(index=False, float_format="%.6g").encode()
    summary = summary_frame(table)
    notes = _notes(names, runners, cards)
    title = f"mai-sr report: {len(cards)} model(s) on {', '.join(names)}"
    pages[out / "leaderboard.md"] = (
        f"# {title}\n\n" + markdown_table(summary) + "\n" + "".join(f"- {n}\n" for n in notes)
        + "".join(f"- {citation(key)}: {url}\n" for key, url in _references())).encode()

    figures = _figures(report, models, table)
    for fig in figures:
        pages[out / "plots" / fig["file"]] = fig["png"]
    intro = [f"Generated by mai-sr {__version__} on {datetime.now():%Y-%m-%d %H:%M}.",
             f"Data: {', '.join(f'{d.name} ({d.source})' for d in datasets)}. "
             f"Runners: {', '.join(runners)}."]
    pages[out / "index.html"] = render_page(
        title=title, intro=intro, summary=summary_frame(table, with_caveats=False),
        details=details_frame(table),
        sources=list(table["source"]), statuses=list(table["status"]),
        caveats=list(table["score_caveat"]), notes=notes,
        references=[(citation(key), url) for key, url in _references()],
        figures=figures, cards=cards).encode()
    if report.error_log:
        pages[out / "errors.log"] = ("\n".join(report.error_log) + "\n").encode()
    write_files(pages)
    return out


def _references() -> list[tuple[str, str]]:
    """(key, link) of the papers the page cites."""
    from mai_sr.report.challenge import REFERENCES

    return [(key, ref[3]) for key, ref in REFERENCES.items()]


def _notes(datasets: list[str], runners: list[str], cards: list[dict]) -> list[str]:
    from mai_sr.report.challenge import TABLE1
    from mai_sr.score import C

    notes = [f"PSNR/SSIM: RGB, border crop = the model's scale, mean over {datasets[0]} (the "
             "INT8 TFLite file; its dynamic-shape variant when there is one).",
             "dPSNR FP32->INT8: the run's Keras FP32 network minus the INT8 file on the same "
             "images; n.a. for .tflite inputs without a run."]
    if "local" in runners:
        notes.append("CPU ms: this machine's CPU (LiteRT, local runner). The CPU column of "
                     f"{TABLE1} is the VS680's own CPU, so CPU times and speed-ups are not "
                     "comparable with the published rows.")
    if "synap" in runners:
        notes.append("NPU ms from the synap runner is the SyNAP simulator's estimate for the "
                     "VS680 NPU, not a measurement on hardware.")
    if "vela" in runners:
        notes.append("Vela: Arm Vela's estimate for an Ethos-U NPU (configuration, system "
                     "config and memory mode in each model card), with the share of ops it "
                     "places on the NPU; shown in the model cards, not used for the score.")
    notes.append(f"Final score: 2^(2*PSNR) / (C * NPU ms), C = {C:.6g} (fitted to {TABLE1}). "
                 "A score computed on other images, at another scale or input size, or from "
                 "a simulated or other device's runtime says so in its cell: it ranks models "
                 "within this report but is not comparable with the challenge's scores.")
    if any(c["architecture"] for c in cards):
        notes.append(f"Rows marked published are copied from {TABLE1} for the same "
                     "architectures, for reference; the architecture comes from each file's "
                     "provenance (its sidecar or embedded metadata).")
    notes.append("Params, GFLOPs (2 x MACs) and activations at the timing input are counted "
                 "as in the AIM 2020 and NTIRE 2023 efficient-SR challenges.")
    return notes
