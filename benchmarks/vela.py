"""Arm Ethos-U estimates by Vela: shipped models, default export against ``--target`` export,
and the MAI 2022 recipe's structure variants put to a real compiler.

    python benchmarks/vela.py [--write-readme]

Table 1 (``vela``): the four shipped INT8 models on one configuration each of the U55, U65
and U85 (each with its default system config and memory mode, printed with the figures):
share of ops on the NPU, Vela's estimated ms and the MAC utilisation, for the default file
and for ``export --target`` (the exact depth-to-space rewrite of mai_sr/export/targets.py).
The default file's ms is its NPU part only: Vela does not time the CPU depth-to-space.
The ratio target / default is the speed target (at most 1.3x). Every form of the rewrite
(split tails or SLICE copies, no-op clips kept or deleted) is measured too, and the JSON
records whether the form ``export --target`` picks is the fastest on each configuration.

Table 2 (``vela_recipe``): the challenge recipe's structure variants at 640x360 INT8 through
Vela and the SyNAP simulator side by side: ABPN's deploy graph (nearest-conv anchor, clip
before depth-to-space), the same with the clip after depth-to-space, with the concat
anchor, and with a nearest-resize anchor added at HR; then the real published files (NJU
ABPN and MegSR NCNet, ../shared/artifacts) beside our NCNet.

Also timed: one ``bench --runner vela`` of a shipped model, end to end (target: under 30 s).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = str(Path(__file__).resolve().parent)
for p in (str(ROOT), BENCHMARKS):
    if p not in sys.path:
        sys.path.insert(0, p)
from _publish import add_write_readme, publish  # noqa: E402
from mai_sr.tflite.targets import export_targets, quoted_config  # noqa: E402

MODELS = ("abpn", "ncnet", "xcat", "scsrn")
CONFIGS = {target: quoted_config(target) for target in export_targets()}
SPEED_TARGET = 1.3
RECIPE_ORDER = ("recipe", "clip_after", "concat_anchor", "resize_anchor", "nju_abpn",
                "megsr_ncnet", "our_ncnet")
ARTIFACTS = ROOT.parent / "shared" / "artifacts"


def vela(path: Path, npu: str) -> dict:
    """Vela's estimate of `path` on `npu` as a small dict."""
    from mai_sr.device import get_runner

    r = get_runner("vela", npu=npu).bench(path).to_dict()
    d = r["delegate"]
    return {"ms": round(r["avg_ms"], 2), "npu_op_percent": d["npu_op_percent"],
            "cpu_ops": d["cpu_ops"], "mac_util_percent": d["mac_util_percent"],
            "system_config": r["device"]["system_config"],
            "memory_mode": r["device"]["memory_mode"]}


def synap_ms(path: Path) -> float:
    from mai_sr.device.synap import SynapRunner

    return round(SynapRunner().bench(path).avg_ms, 2)


def shipped(tmp: Path) -> dict:
    """Table 1: per model and configuration, default vs target (both clip forms)."""
    from mai_sr.export.targets import DROP_NOOP_CLIPS, rewrite_for_target

    rows = {}
    for model in MODELS:
        src = ROOT / "mai_sr" / "pretrained" / f"{model}.mai_builtin.tflite"
        for target, npu in CONFIGS.items():
            forms = {}
            for form in ("split", "slice"):
                for drop in (True, False):
                    key = f"{form}/{'drop' if drop else 'keep'} clips"
                    path = tmp / f"{model}_{target}_{form}_{drop}.tflite"
                    path.write_bytes(rewrite_for_target(src.read_bytes(), target,
                                                        drop_noop_clips=drop, form=form)[0])
                    forms[key] = vela(path, npu)
            default = vela(src, npu)
            path = tmp / f"{model}_{target}.tflite"
            data, rewrite = rewrite_for_target(src.read_bytes(), target)
            path.write_bytes(data)
            chosen = (f"{rewrite.form}/"
                      f"{'drop' if DROP_NOOP_CLIPS else 'keep'} clips")
            best = min(forms, key=lambda k: forms[k]["ms"])
            rows[f"{model}/{npu}"] = {
                "model": model, "npu": npu, "default": default, "target": forms[chosen],
                "forms": forms, "chosen_form": chosen, "fastest_form": best,
                "ratio": round(forms[chosen]["ms"] / default["ms"], 3)}
            print(f"{model:6s} {npu:15s} default {default['ms']:7.2f} ms "
                  f"({default['npu_op_percent']}% NPU)  target {forms[chosen]['ms']:7.2f} ms "
                  f"({forms[chosen]['npu_op_percent']}% NPU)  ratio {rows[f'{model}/{npu}']['ratio']:.3f}"
                  f"  [{chosen}; fastest {best} {forms[best]['ms']:.2f} ms]")
    return rows


def _recipe_models():
    """(name, description, keras model builder) of the structure variants (random weights:
    the estimate depends on the graph, not on the values)."""
    from mai_sr._tf import keras
    from mai_sr.models import create_model
    from mai_sr.models.blocks import ClipByValue

    shape = (360, 640)

    def resize_anchor():
        deploy = create_model("abpn", input_size=shape, deploy=True)
        inp = keras.Input((*shape, 3))
        body = keras.Model(deploy.input, deploy.get_layer("add_anchor").input[0])(inp)
        from mai_sr.models.blocks import DepthToSpace

        hr = DepthToSpace(3)(body)
        up = keras.layers.UpSampling2D(3, interpolation="nearest")(inp)
        return keras.Model(inp, ClipByValue()(keras.layers.Add()([hr, up])))

    return [
        ("recipe", "ABPN deploy: nearest-conv anchor, clip before D2S",
         lambda: create_model("abpn", input_size=shape, deploy=True)),
        ("clip_after", "clip after D2S",
         lambda: create_model("abpn", input_size=shape, deploy=True, clip="after_d2s")),
        ("concat_anchor", "concat anchor (9-input CONCATENATION), clip before D2S",
         lambda: create_model("abpn", input_size=shape, deploy=True, anchor="concat")),
        ("resize_anchor", "nearest-resize anchor added at HR, clip after",
         resize_anchor),
    ]


def recipe(tmp: Path) -> dict:
    """Table 2: structure variants and the real published files, Vela and SyNAP side by side."""
    from synap_calibration import int8_tflite

    files = []
    for name, description, build in _recipe_models():
        path = tmp / f"variant_{name}.tflite"
        path.write_bytes(int8_tflite(build()))
        files.append((name, description, path))
    real = [("nju_abpn", "ABPN [19] published INT8 (concat anchor, clip after D2S)",
             ARTIFACTS / "nju_abpn" / "base7_D4C28_bs16ps64_lr1e-3_time.tflite"),
            ("megsr_ncnet", "MegSR NCNet published INT8 (nearest-conv anchor, clip after D2S)",
             ARTIFACTS / "megsr_ncnet" / "model.tflite"),
            ("our_ncnet", "our NCNet (clip before D2S)",
             ROOT / "mai_sr" / "pretrained" / "ncnet.mai_builtin.tflite")]
    files += [r for r in real if r[2].is_file()]
    rows = {}
    for name, description, path in files:
        row = {"description": description, "synap_ms": synap_ms(path)}
        for target, npu in CONFIGS.items():
            row[npu] = vela(path, npu)
        rows[name] = row
        print(f"{name:14s} synap {row['synap_ms']:6.2f}  "
              + "  ".join(f"{npu} {row[npu]['ms']:7.2f} ({row[npu]['npu_op_percent']}%)"
                          for npu in CONFIGS.values()))
    return rows


def bench_timing() -> float:
    import subprocess

    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "mai_sr", "bench", "--pretrained", "abpn",
                    "--runner", "vela", "--npu", "ethos-u65-512", "--json"], check=True,
                   capture_output=True, cwd=ROOT)
    return round(time.perf_counter() - start, 2)


def readme_tables(result: dict) -> str:
    npus = list(CONFIGS.values())
    cfg = {npu: next(r["default"] for r in result["shipped"].values() if r["npu"] == npu)
           for npu in npus}
    lines = ["Vela " + result["vela"] + " estimates; system config / memory mode: "
             + "; ".join(f"{npu}: {cfg[npu]['system_config']} / {cfg[npu]['memory_mode']}"
                         for npu in npus) + ".",
             "Default = the shipped file (its CPU depth-to-space is not timed by Vela); "
             "target = `export --target` (bit-identical outputs). Cells: NPU op share, ms, "
             "MAC utilisation.", "",
             "| model | NPU | default | target | target / default |",
             "|---|---|---|---|---|"]
    shipped_rows = sorted(result["shipped"].values(),
                          key=lambda r: (MODELS.index(r["model"]), npus.index(r["npu"])))
    for r in shipped_rows:
        d, t = r["default"], r["target"]
        lines.append(f"| {r['model']} | {r['npu']} | {d['npu_op_percent']}%, {d['ms']:.1f} ms, "
                     f"{d['mac_util_percent']:.0f}% | {t['npu_op_percent']}%, {t['ms']:.1f} ms, "
                     f"{t['mac_util_percent']:.0f}% | {r['ratio']:.2f}x |")
    lines += ["", "The MAI 2022 recipe through a real compiler (ABPN-sized graphs at 640x360, "
              "ms; % = NPU op share; SyNAP = this toolkit's VS680 simulator):", "",
              "| graph | SyNAP sim | " + " | ".join(npus) + " |",
              "|---|---|" + "---|" * len(npus)]
    order = [n for n in RECIPE_ORDER if n in result["recipe"]]
    for name in order:
        r = result["recipe"][name]
        cells = " | ".join(f"{r[npu]['ms']:.1f} ({r[npu]['npu_op_percent']:.0f}%)"
                           for npu in npus)
        lines.append(f"| {r['description']} | {r['synap_ms']:.1f} | {cells} |")
    lines += ["", f"`bench --runner vela` on a shipped model, end to end: "
              f"{result['bench_seconds']} s (target: under 30 s)."]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_write_readme(parser)
    args = parser.parse_args()
    from mai_sr.device.vela import require_vela

    result = {"vela": require_vela(), "speed_target": SPEED_TARGET}
    with tempfile.TemporaryDirectory() as tmp:
        result["shipped"] = shipped(Path(tmp))
        result["recipe"] = recipe(Path(tmp))
    result["bench_seconds"] = bench_timing()
    worst = max(r["ratio"] for r in result["shipped"].values())
    result["worst_ratio"] = worst
    result["all_npu"] = all(r["target"]["npu_op_percent"] == 100.0
                            for r in result["shipped"].values())
    result["chosen_is_fastest"] = {k: r["chosen_form"] == r["fastest_form"]
                                   for k, r in result["shipped"].items()}
    print(f"worst target/default ratio {worst:.3f} (target <= {SPEED_TARGET}); "
          f"every target file 100% NPU: {result['all_npu']}; "
          f"bench --runner vela: {result['bench_seconds']} s")
    publish("vela", result, readme_tables(result), write_readme=args.write_readme)


if __name__ == "__main__":
    main()
