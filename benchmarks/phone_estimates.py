"""Fit the phone device profiles on the ETDS zoo's published INT8 latencies, validate them by
leaving one architecture out, and estimate every zoo model on every profile.

Data: Table 2 of J. Chao, Z. Zhou, H. Gao, J. Gong, Z. Yang, Z. Zeng, L. Dehbi, "Equivalent
Transformation and Dual Stream Network Construction for Mobile Image Super-Resolution", CVPR
2023 (``../shared/artifacts/etds_zoo/table2.csv``): eleven models at x3 and x4, a 360x640 LR
input, INT8, on four device/runtime pairs. The authors' converted files are not published,
so the timed graphs are reconstructions: the zoo's models as ``mai-sr export`` writes them
(deploy graphs, INT8 with uint8 IO, 1x360x640x3), with Keras' random initialisation: the
cost model reads structure and shapes, never weights.

For each phone profile (:mod:`mai_sr.device.profiles`):

* rows the profile names as outliers (a measured CPU fallback...) are shown with their
  cause and estimate, and not fitted;
* the coefficients are fitted on the other x3 and x4 rows (least squares on log latency,
  each coefficient >= 0; :mod:`mai_sr.device.profile_fit`);
* validation: every architecture's rows (all its sizes, x3 and x4) are estimated by a fit
  made without that architecture; per-row error, median and max |error|, Spearman rho;
* for profiles whose structure was searched (:data:`VARIANTS`), the structure variants'
  own validation, and a selection-aware one: the structure (shipped or a variant) chosen
  inside each fold, without the left-out architecture.

It also estimates the x2 versions of the same models (exported at 360x640; Table 2 gives no
x2 latencies), and prices the differences between our reconstructions and the published
forms (anchor form, clip placement, PReLU) per profile.

    python benchmarks/phone_estimates.py [--keep DIR] [--write-profiles] [--write-readme]

``--keep DIR`` keeps the exported files (and reuses those already there);
``--write-profiles`` stores the fitted coefficients and the fit record in the profile files.
Writes ``benchmarks/results/phone_estimates.json`` and ``benchmarks/results/phone_estimates.png``.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from mai_sr.device.estimate import FEATURES, cpu_ms, estimate, feature_totals
from mai_sr.device.profile_fit import (Row, leave_one_architecture_out, spearman,
                                       tie_matrix)
from mai_sr.device.profiles import ETDS_TABLE, load_profile, profile_names, save_profile

BENCHMARKS = str(Path(__file__).resolve().parent)
if BENCHMARKS not in sys.path:
    sys.path.insert(0, BENCHMARKS)
from _publish import RESULTS, ROOT, add_write_readme, publish  # noqa: E402

SHAPE = (360, 640)
ARTIFACTS = Path(os.environ.get("MAI_SR_ARTIFACTS", ROOT.parent / "shared" / "artifacts"))
TABLE2 = ARTIFACTS / "etds_zoo" / "table2.csv"
# Table 2 name -> mai-sr registry name (the zoo's models)
ZOO = {"ESPCN": "espcn", "FSRCNN": "fsrcnn", "ECBSR-M4C16": "ecbsr",
       "ECBSR-M4C32": "ecbsr_m4c32", "ECBSR-M6C40": "ecbsr_m6c40", "ABPN-M4C28": "abpn",
       "ABPN-M6C40": "abpn_m6c40", "ETDS-T": "etds", "ETDS-S": "etds_s", "ETDS-M": "etds_m",
       "ETDS-L": "etds_l"}
SCALES = (2, 3, 4)
TARGETS = {"median_abs_pct": 15.0, "max_abs_pct": {"dimensity": 35.0, "snapdragon": 50.0},
           "spearman": 0.9}


def architecture(model: str) -> str:
    """The unit left out together: every size of a family ("ETDS-M" -> "ETDS")."""
    return model.split("-")[0]


def read_table2(path: Path = TABLE2) -> list[dict]:
    """The zoo's rows of Table 2 (no Bicubic), latencies as floats or None."""
    if not path.is_file():
        raise SystemExit(f"{path}: not found; put ../shared/artifacts beside the checkout or "
                         "set MAI_SR_ARTIFACTS")
    rows = []
    for r in csv.DictReader(path.open()):
        if r["model"] not in ZOO:
            continue
        rows.append({**r, "scale": int(r["scale"]),
                     **{k: float(v) if v else None for k, v in r.items() if k.startswith("ms_")}})
    return rows


def export_zoo(folder: Path) -> dict[tuple[str, int], Path]:
    """Every zoo model at every scale as ``mai-sr export`` writes it (INT8, uint8 IO, 360x640
    LR, random weights, a few builtin calibration crops); files already in `folder` are
    reused."""
    from tqdm import tqdm

    paths = {}
    for scale in SCALES:
        for model, name in ZOO.items():
            path = folder / f"{model}_x{scale}.tflite"
            paths[model, scale] = path
    todo = [(k, p) for k, p in paths.items() if not p.is_file()]
    for (model, scale), path in tqdm(todo, desc="exporting"):
        _export_one(ZOO[model], scale, path)
    for path in paths.values():  # a reused file without the sidecar mai-sr export writes
        if not Path(f"{path}.json").is_file():
            EXPORT_FALLBACKS.setdefault(path.name, "mai-sr export failed on this model; "
                                        "TFLite's full-integer conversion used instead")
    return paths


# Files `mai-sr export` could not write, and how they were made instead (in the result).
EXPORT_FALLBACKS: dict[str, str] = {}


def _export_one(name: str, scale: int, path: Path) -> None:
    """`mai-sr export --model NAME --weights W --scale S --shape 360x640` (the Python API).
    Where it fails, TFLite's own full-integer conversion of the same deploy graph (uint8 IO)
    stands in, and the fallback is recorded."""
    from mai_sr.errors import MaiSrError
    from mai_sr.export.convert import export
    from mai_sr.fileio import write_bytes
    from mai_sr.models import create_model

    with tempfile.TemporaryDirectory() as tmp:
        weights = Path(tmp) / f"{name}.weights.h5"
        create_model(name, scale=scale, deploy=True).save_weights(str(weights))
        try:
            export(path, model=name, weights=weights, scale=scale, shape=SHAPE, calib_n=8)
        except MaiSrError as exc:
            from synap_calibration import int8_tflite

            write_bytes(path, int8_tflite(create_model(name, scale=scale, deploy=True,
                                                       input_size=SHAPE)))
            EXPORT_FALLBACKS[path.name] = (f"mai-sr export failed ({str(exc)[:160]}); "
                                           "TFLite's full-integer conversion used instead")


def _outliers(profile) -> dict[tuple[str, int], dict]:
    return {(o["model"], o["scale"]): o for o in profile.data.get("outliers", [])}


def profile_rows(profile, table: list[dict], paths) -> tuple[list[Row], list[Row]]:
    """The x3 and x4 rows `profile` is fitted on, and its named outliers (shown, not
    fitted), each with the graph's features under the profile's structure."""
    column = profile.data["table_column"]
    outliers = _outliers(profile)
    rows, shown = [], []
    for r in table:
        ms = r[column]
        if r["scale"] == 2 or ms is None:
            continue
        path = paths[r["model"], r["scale"]]
        feats = feature_totals(path, profile)
        cpu = cpu_ms(path, profile)
        row = Row(r["model"], architecture(r["model"]), r["scale"], feats, cpu, ms)
        (shown if (r["model"], r["scale"]) in outliers else rows).append(row)
    return rows, shown


def _tie(profile):
    return tie_matrix(FEATURES, profile.data.get("shared_coefficients"))


def fit_profile(profile, table: list[dict], paths) -> dict:
    """Fit and validate one phone profile (see module docstring)."""
    outliers = _outliers(profile)
    rows, shown = profile_rows(profile, table, paths)
    result = leave_one_architecture_out(rows, tie=_tie(profile))
    coef = dict(zip(FEATURES, (round(c, 6) for c in result["coefficients"])))
    result["fold_coefficients"] = {a: {k: v for k, v in zip(FEATURES, c) if v}
                                   for a, c in result["fold_coefficients"].items()}
    for row in shown:
        est = float(np.dot(row.features, result["coefficients"]) + row.cpu_ms)
        o = outliers[row.model, row.scale]
        result["rows"].append({"model": row.model, "architecture": row.architecture,
                               "scale": row.scale, "published_ms": row.published_ms,
                               "estimate_ms": round(est, 3), "loo_ms": None,
                               "error_pct": round(100 * (est / row.published_ms - 1), 1),
                               "loo_error_pct": None, "outlier": o["cause"],
                               "rule": o.get("rule")})
    result["coefficients"] = coef
    result["notes"] = list(profile.data.get("notes", ()))
    result["fitted_rows"] = len(rows)
    result["outlier_rows"] = len(shown)
    family = "dimensity" if profile.name.startswith("dimensity") else "snapdragon"
    result["targets"] = {
        "median_abs_pct_at_most_15": result["median_abs_pct"] <= TARGETS["median_abs_pct"],
        f"max_abs_pct_at_most_{TARGETS['max_abs_pct'][family]:g}":
            result["max_abs_pct"] <= TARGETS["max_abs_pct"][family],
        "spearman_at_least_0.9": result["spearman"] >= TARGETS["spearman"]}
    return result


# Structure variants whose validation is recorded beside the shipped fit (profile -> variant
# -> overrides of the profile's data): what the search for the missing structure tried, so
# a reader sees how much the shipped choice owes to it, and what `selection_aware` chooses
# from inside each fold.
NPU_FUSED = ["RELU", "RELU6", "RELU_N1_TO_1", "RELU_0_TO_1", "MINIMUM", "MAXIMUM"]
# the QNN GPU profile's second fit: 4-channel output blocks, a price per elementwise kind
GPU_FIRST_COSTS = {"output_lanes": 4, "shared_coefficients": {}}
VARIANTS = {
    "snapdragon888-qnn-gpu": {
        "first fit: no elementwise fusion, no storage padding": {
            "fuse_any": False, "storage_lanes": 1, "fused_activations": NPU_FUSED,
            **GPU_FIRST_COSTS},
        "storage padding only": {"fuse_any": False, "fused_activations": NPU_FUSED,
                                 **GPU_FIRST_COSTS},
        "elementwise fusion only": {"storage_lanes": 1, **GPU_FIRST_COSTS},
        "second fit: fusion and storage padding, 4-channel output blocks, a price per "
        "elementwise kind": GPU_FIRST_COSTS,
        "8-channel output blocks, a price per elementwise kind": {"shared_coefficients": {}},
        "4-channel output blocks, one elementwise price": {"output_lanes": 4},
        "16-channel output blocks, one elementwise price": {"output_lanes": 16},
        "PReLU fused too": {
            "fused_activations": NPU_FUSED + ["TANH", "LOGISTIC", "MUL", "PRELU"]},
    },
    "dimensity8100-neuron": {
        "with the GPU profile's elementwise fusion": {
            "fuse_any": True, "fused_activations": NPU_FUSED + ["TANH", "LOGISTIC", "MUL"]},
    },
}


def variants(profile, table, paths) -> dict:
    """Leave-one-architecture-out figures of `profile`'s :data:`VARIANTS`."""
    out = {}
    for name, overrides in VARIANTS.get(profile.name, {}).items():
        res = fit_profile(replace(profile, data={**profile.data, **overrides}), table, paths)
        out[name] = {"overrides": overrides, **{k: res[k] for k in (
            "median_abs_pct", "max_abs_pct", "spearman")}}
    return out


def selection_aware(profile, table, paths) -> dict:
    """Leave-one-architecture-out with the structure choice inside the loop: for each
    architecture, the shipped structure and every :data:`VARIANTS` entry are scored by their
    own leave-one-architecture-out over the OTHER architectures (median |error|, then max),
    and the best one's fit without the architecture estimates its rows. The left-out rows
    touch neither the coefficients nor the choice, so this is the figure to expect when
    the structure was picked after seeing the data."""
    candidates = {"shipped": profile, **{
        name: replace(profile, data={**profile.data, **overrides})
        for name, overrides in VARIANTS.get(profile.name, {}).items()}}
    built = {name: (profile_rows(p, table, paths)[0], _tie(p)) for name, p in candidates.items()}
    loo = {name: leave_one_architecture_out(rows, tie=tie) for name, (rows, tie) in built.items()}
    arches = list(dict.fromkeys(r.architecture for r in built["shipped"][0]))

    def inner(name, left_out):
        rows, tie = built[name]
        res = leave_one_architecture_out([r for r in rows if r.architecture != left_out],
                                         tie=tie)
        return res["median_abs_pct"], res["max_abs_pct"]

    picks, out = {}, []
    for arch in arches:
        picks[arch] = min(candidates, key=lambda name: inner(name, arch))
        out += [r for r in loo[picks[arch]]["rows"] if r["architecture"] == arch]
    errors = np.abs([r["loo_error_pct"] for r in out])
    return {"picks": picks, "median_abs_pct": round(float(np.median(errors)), 1),
            "max_abs_pct": round(float(np.max(errors)), 1),
            "spearman": round(spearman([r["loo_ms"] for r in out],
                                        [r["published_ms"] for r in out]), 3)}


def x2_estimates(paths, profiles) -> list[dict]:
    """Every profile's estimate of the x2 models (360x640 LR): Table 2 has no x2 latencies,
    so these are predictions to be checked against the authors' x2 timings."""
    rows = []
    for model in ZOO:
        row = {"model": model, "scale": 2}
        for profile in profiles:
            row[profile.name] = round(estimate(paths[model, 2], profile).total_ms, 2)
        rows.append(row)
    return rows


def _variant(name: str, scale: int, folder: Path, **overrides) -> Path:
    """A deploy graph of `name` with `overrides` (e.g. the published anchor form), INT8."""
    from synap_calibration import int8_tflite

    from mai_sr.fileio import write_bytes
    from mai_sr.models import create_model

    tag = "_".join(f"{k}-{v}" for k, v in sorted(overrides.items()))
    path = folder / f"{name}_x{scale}_{tag}.tflite"
    if not path.is_file():
        write_bytes(path, int8_tflite(create_model(name, scale=scale, deploy=True,
                                                   input_size=SHAPE, **overrides)))
    return path


def reconstruction_costs(paths, profiles, folder: Path) -> list[dict]:
    """What our reconstructions' differences from the published graphs cost per profile:
    ABPN's published anchor (9 or 16 input copies concatenated) instead of our 1x1 nearest
    conv, its clip after depth-to-space instead of before, and the PReLU layers' share of
    ECBSR's and FSRCNN's estimates (a converter that lowers PReLU to several ops, or fuses
    it, moves the figure by up to that much)."""
    out = []
    for scale in (3, 4):
        ours = paths["ABPN-M4C28", scale]
        for what, overrides in (("concat anchor (published form)", {"anchor": "concat"}),
                                ("clip after depth-to-space (published form)",
                                 {"clip": "after_d2s"})):
            other = _variant("abpn", scale, folder, **overrides)
            out.append({"model": "ABPN-M4C28", "scale": scale, "difference": what,
                        **{p.name: round(estimate(other, p).total_ms
                                         - estimate(ours, p).total_ms, 2) for p in profiles}})
    for model in ("ECBSR-M4C16", "ECBSR-M6C40", "FSRCNN"):
        row = {"model": model, "scale": 3, "difference": "PReLU layers' share of the estimate"}
        for p in profiles:
            est = estimate(paths[model, 3], p)
            row[p.name] = round(sum(layer.ms for layer in est.layers
                                    if layer.ops[0] == "PRELU"), 2)
        out.append(row)
    return out


def fit_record(profile, result: dict, date: str) -> dict:
    """The profile file's ``fit`` entry."""
    arches = sorted({r["architecture"] for r in result["rows"]})
    excluded = [f"{r['model']} x{r['scale']}" for r in result["rows"] if r.get("outlier")]
    return {"date": date, "script": "benchmarks/phone_estimates.py",
            "results": "benchmarks/results/phone_estimates.json",
            "data": f"{ETDS_TABLE}, column {profile.data['table_column']}",
            "graphs": "the zoo models as mai-sr exports them (deploy graphs, INT8, uint8 IO, "
                      "1x360x640x3); reconstructions, not the authors' files",
            "validation": {"method": "leave-one-architecture-out over the x3 and x4 rows ("
                                     + ", ".join(arches) + ")",
                           "median_abs_pct": result["median_abs_pct"],
                           "max_abs_pct": result["max_abs_pct"],
                           "spearman": result["spearman"], "rows": result["fitted_rows"],
                           "excluded": (f"named outliers not fitted: {', '.join(excluded)}"
                                        if excluded else ""),
                           **({"selection_aware": {k: result["selection_aware"][k] for k in (
                               "median_abs_pct", "max_abs_pct", "spearman")}}
                              if result.get("selection_aware") else {})},
            "in_sample": result["in_sample"]}


def plot(fits: dict, path: Path) -> Path:
    """Estimate (leave-one-architecture-out) vs published, one panel per profile."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    fig, axes = plt.subplots(1, len(fits), figsize=(4.2 * len(fits), 4.2))
    for ax, (name, res) in zip(np.atleast_1d(axes), fits.items()):
        for arch in sorted({r["architecture"] for r in res["rows"]}):
            rs = [r for r in res["rows"] if r["architecture"] == arch]
            xs = [r["published_ms"] for r in rs]
            ys = [r["loo_ms"] if r["loo_ms"] is not None else r["estimate_ms"] for r in rs]
            marks = ["x" if r.get("outlier") else "o" for r in rs]
            for x, y, m in zip(xs, ys, marks):
                ax.scatter(x, y, marker=m, color=f"C{sorted(ZOO_ARCHES).index(arch)}",
                           label=arch if (x, y) == (xs[0], ys[0]) else None)
        lo = min(min(r["published_ms"], r["loo_ms"] or r["estimate_ms"]) for r in res["rows"])
        hi = max(max(r["published_ms"], r["loo_ms"] or r["estimate_ms"]) for r in res["rows"])
        ax.plot([lo, hi], [lo, hi], "k:", lw=1)
        ax.set_xscale("log")
        ax.set_yscale("log")
        for axis in (ax.xaxis, ax.yaxis):  # ticks at 1, 2, 5 x 10^k read "200", not 2x10^2
            axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
            axis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
            axis.set_minor_formatter(NullFormatter())
        ax.set_title(f"{name}\nmedian {res['median_abs_pct']}%, max {res['max_abs_pct']}%, "
                     f"rho {res['spearman']:.2f}", fontsize=9)
        ax.set_xlabel("published ms (Table 2)")
        ax.set_ylabel("estimate ms (leave-one-architecture-out; x: outlier, full fit)")
        ax.legend(fontsize=7)
    fig.suptitle("Phone latency estimates vs Chao et al., CVPR 2023, Table 2 (INT8, 360x640)",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


ZOO_ARCHES = sorted({architecture(m) for m in ZOO})


def table_text(fits: dict, x2: list[dict]) -> str:
    """The per-profile tables (Markdown), then the x2 estimates."""
    lines = []
    for name, res in fits.items():
        c = ", ".join(f"{k} {v:.4g}" for k, v in res["coefficients"].items() if v)
        lines += [f"**{name}**: leave-one-architecture-out median |error| "
                  f"{res['median_abs_pct']}%, max {res['max_abs_pct']}%, Spearman "
                  f"{res['spearman']:.2f} over {res['fitted_rows']} rows; in-sample median "
                  f"{res['in_sample']['median_abs_pct']}%. Coefficients (ms per unit): {c}. "
                  "Targets: " + ", ".join(f"{k.replace('_', ' ')} {'yes' if v else 'NO'}"
                                          for k, v in res["targets"].items()) + ".", ""]
        lines += [f"- {note}" for note in res.get("notes", ())]
        if res.get("variants"):
            lines.append("- Structure variants, leave-one-architecture-out: " + "; ".join(
                f"{n}: median {v['median_abs_pct']}%, max {v['max_abs_pct']}%, Spearman "
                f"{v['spearman']:.2f}" for n, v in res["variants"].items()) + ".")
        if res.get("selection_aware"):
            sel = res["selection_aware"]
            lines.append(f"- Selection-aware leave-one-architecture-out (the structure, shipped "
                         f"or a variant, chosen inside each fold without the left-out "
                         f"architecture): median {sel['median_abs_pct']}%, max "
                         f"{sel['max_abs_pct']}%, Spearman {sel['spearman']:.2f}.")
        if res.get("notes") or res.get("variants"):
            lines.append("")
        lines += ["| model | scale | published ms | estimate (full fit) | LOO estimate | "
                  "LOO error | note |", "|---|---:|---:|---:|---:|---:|---|"]
        for r in res["rows"]:
            loo = "-" if r["loo_ms"] is None else f"{r['loo_ms']:.1f}"
            err = "-" if r["loo_error_pct"] is None else f"{r['loo_error_pct']:+.1f}%"
            note = f"outlier, not fitted: {r['outlier']}" if r.get("outlier") else ""
            lines.append(f"| {r['model']} | x{r['scale']} | {r['published_ms']:g} | "
                         f"{r['estimate_ms']:.1f} | {loo} | {err} | {note} |")
        lines.append("")
    names = [k for k in x2[0] if k not in ("model", "scale")]
    lines += ["x2 estimates (360x640 LR; Table 2 gives no x2 latencies):", "",
              "| model | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    lines += [f"| {r['model']} | " + " | ".join(f"{r[n]:.1f}" for n in names) + " |"
              for r in x2]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--keep", help="keep the exported .tflite files in this folder (and "
                                       "reuse those already there)")
    parser.add_argument("--write-profiles", action="store_true",
                        help="store the fitted coefficients and fit record in the profiles")
    add_write_readme(parser)
    args = parser.parse_args()
    started = time.time()
    date = time.strftime("%Y-%m-%d")
    table = read_table2()
    phones = [load_profile(n) for n in profile_names() if not n.startswith("vs680")]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.keep) if args.keep else Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        paths = export_zoo(folder)
        fits = {p.name: fit_profile(p, table, paths) for p in phones}
        for p in phones:
            if p.name in VARIANTS:
                fits[p.name]["variants"] = variants(p, table, paths)
                fits[p.name]["selection_aware"] = selection_aware(p, table, paths)
        refitted = {p.name: {**p.data, "coefficients": fits[p.name]["coefficients"],
                             "fit": fit_record(p, fits[p.name], date)} for p in phones}
        if args.write_profiles:
            for p in phones:
                save_profile(p, refitted[p.name])
        # this run's fit, with the VS680 (whether or not the files were written)
        profiles = [replace(p, data=refitted.get(p.name, p.data))
                    for p in map(load_profile, profile_names())]
        x2 = x2_estimates(paths, profiles)
        differences = reconstruction_costs(paths, profiles, folder)
    result = {"date": date, "source": ETDS_TABLE, "input_shape": [1, *SHAPE, 3],
              "features": list(FEATURES), "targets": TARGETS, "profiles": fits,
              "x2_estimates": x2, "reconstruction_differences": differences,
              "profiles_written": args.write_profiles, "export_fallbacks": EXPORT_FALLBACKS,
              "seconds": round(time.time() - started, 1)}
    png = plot(fits, RESULTS / "phone_estimates.png")
    text = table_text(fits, x2)
    print(text)
    print("reconstruction differences (ms, ours -> published form):")
    for d in differences:
        print(f"  {d['model']} x{d['scale']} {d['difference']}: "
              + ", ".join(f"{k} {v:+.1f}" for k, v in d.items()
                          if k not in ("model", "scale", "difference")))
    print(f"plot: {png.relative_to(ROOT)}")
    publish("phone_estimates", result, text, write_readme=args.write_readme)


if __name__ == "__main__":
    main()
