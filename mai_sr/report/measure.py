"""The measurements of `mai-sr report`, model by model: lint, eval (the INT8 file and the
run's Keras FP32 network), bench on each runner, and the crops of the visual comparison,
each cached in ``<out>/cache`` by file hash, data set fingerprint, runner and options
(:mod:`mai_sr.report.cache`).

A measurement that fails is recorded in the model's card and the report goes on; failures
other than :class:`MaiSrError` (bugs) also get their traceback in ``<out>/errors.log``.
"""

from __future__ import annotations

import math
import traceback
from pathlib import Path

import numpy as np

from mai_sr.errors import MaiSrError
from mai_sr.report.cache import ResultCache, file_hash
from mai_sr.report.cards import (build_model_card, card_fp32_rows, lint_summary,
                                 reference_card)
from mai_sr.report.inputs import Dataset, ModelInput
from mai_sr.results import BenchResult, EvalResult

GRID_IMAGES = 3      # images in the visual comparison
GRID_CROP_LR = 32    # LR pixels per side of a crop (96 HR pixels at x3)
GRID_DATASETS = ("Set14", "B100")  # preferred for the comparison (varied photographs)
NO_RETRY_RUNNERS = frozenset({"adb"})  # device errors are transient: never cached
_MODEL = "<model file>"  # stands for the model's path in cached error messages



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
    from mai_sr.runs import load_run_model

    model = load_run_model(run_dir, stage="fp32")
    fn = tf.function(lambda x: model(x, training=False),
                     input_signature=[tf.TensorSpec([1, None, None, 3], tf.float32)])
    return float_batch_predictor(lambda x: fn(tf.constant(x)).numpy())


def _bench(runner: str, options: dict, path: Path) -> list[dict]:
    from mai_sr import device

    result = device.get_runner(runner, **options).bench(path)
    return [r.to_dict() for r in (result if isinstance(result, list) else [result])]


def _runner_inputs(runner: str) -> dict:
    """What a runner's result depends on besides the file and options, for the cache key:
    the device profiles' content for ``sim`` (a refit changes every estimate)."""
    from mai_sr import device

    try:
        inputs = getattr(device.runner_class(runner), "cache_inputs", None)
    except MaiSrError:  # unavailable: its bench fails and says so
        return {}
    return {"inputs": inputs()} if inputs else {}


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
                "bench", {"model": timing_hash, "runner": runner, "options": options,
                          **_runner_inputs(runner)},
                lambda r=runner, o=options: _bench(r, o, model.timing), path=model.timing,
                cache_errors=runner not in NO_RETRY_RUNNERS)
            if error:  # the card lists it as "<runner>: <error>"
                benches.append(BenchResult(runner=runner, model=model.timing.name,
                                           avg_ms=math.nan, error=error))
            else:
                benches += [BenchResult.from_dict(d) for d in value]

        scale = {"scale": s} if (s := self.model_scale(model)) else {}
        # A shipped model has no run to score its FP32 network from: its own card has it.
        card_rows = [] if weights else card_fp32_rows(reference_card(model.timing), int8)
        return build_model_card(model.name, tflite=model.files, architecture=model.architecture,
                                **scale, int8_results=int8, fp32_results=fp32,
                                fp32_rows=card_rows,
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
