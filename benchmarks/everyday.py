"""Do the everyday commands run at the speed of the model? Command time / inference time.

Three commands, each run as a user runs it (a fresh ``python -m mai_sr.cli`` process, so
interpreter start and imports count), with the shipped ABPN:

- ``eval --pretrained abpn --data B100``, once with an empty baseline cache (cold) and once
  with the bicubic rows cached by the first run (warm). Targets: <= 5x cold, <= 3x warm.
- ``upscale`` of a folder of 1080p PNGs to PNG (default encoding). Target: <= 2x.
- ``report abpn.tflite --data B100 --runner local,synap`` into an empty folder with an empty
  baseline cache. Target: <= 3x its inference and simulator time.

The denominator is the inference *alone*, measured in a separate process so that work the
command overlaps with inference cannot inflate it: the same model file and inputs, decoded
beforehand, run once to warm the interpreter and timed on a second pass (``TFLiteSR.upscale``
per image, as the commands call it). For the report it is that B100 pass on the file the
report evaluates plus the wall time of the local benchmark and the SyNAP simulation of the
file it times (``get_runner(name).bench``, as the report calls them).

The 1080p inputs are real photos: the first BSD200 images, centre-cropped to 16:9 and
resized to 1920x1080 with Pillow's bicubic filter, written to a temp folder (never kept).
The machine is shared, so every figure is recorded with the 1-minute load average before
and after it; ratios of a command and its denominator measured minutes apart under
different loads are only comparable when the loads are.

    python benchmarks/everyday.py [--data ../shared/data] [--images 4] [--skip report]
        [--write-readme]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _publish import add_write_readme, measured_under, publish, result_path

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MAI_SR_DATA", ROOT.parent / "shared" / "data"))
MODEL = "abpn"
TARGETS = {"eval_cold": 5.0, "eval_warm": 3.0, "upscale": 2.0, "report": 3.0}
HD = (1920, 1080)

# Inference alone, in its own process. Prints one JSON object.
_INFERENCE = r"""
import json, sys, time
from mai_sr import data
from mai_sr.imageio import read_image
from mai_sr.tflite.runtime import TFLiteSR
from mai_sr.upscale import upscale_image

kind, model_path, source = sys.argv[1], sys.argv[2], sys.argv[3]
model = TFLiteSR(model_path)
if kind == "pairs":
    images = [p.lr for p in data.iter_pairs(source, scale=model.scale)]
else:
    images = [read_image(p) for p in sorted(__import__("pathlib").Path(source).glob("*.png"))]
for img in images:  # warm: allocation for each size, first-touch of the arena
    upscale_image(model, img)
start = time.perf_counter()
for img in images:
    upscale_image(model, img)
result = {"inference_s": time.perf_counter() - start, "images": len(images)}
if len(sys.argv) > 4:  # the report's runners, on its timed (fixed-shape) file
    from mai_sr.device import get_runner
    for runner in sys.argv[5].split(","):
        start = time.perf_counter()
        get_runner(runner).bench(sys.argv[4])
        result[f"{runner}_bench_s"] = time.perf_counter() - start
print(json.dumps(result))
"""


def load() -> float:
    return round(os.getloadavg()[0], 2)


def timed(cmd: list[str], env: dict | None = None) -> dict:
    """Wall seconds of `cmd` in a new process, with the load before and after."""
    before = load()
    start = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL, env=env)
    return {"seconds": round(time.perf_counter() - start, 3), "load_before": before,
            "load_after": load()}


def inference(kind: str, model: Path, source: Path, *extra: str) -> dict:
    before = load()
    out = subprocess.run([sys.executable, "-c", _INFERENCE, kind, str(model), str(source),
                          *extra], check=True, cwd=ROOT, capture_output=True, text=True).stdout
    result = json.loads(out.strip().splitlines()[-1])
    result.update(load_before=before, load_after=load())
    return result


def make_hd_folder(folder: Path, count: int, data: Path) -> list[str]:
    """`count` 1920x1080 PNGs from the first BSD200 photos (centre crop to 16:9, bicubic)."""
    from PIL import Image

    from mai_sr.data import IMAGE_SUFFIXES

    sources = sorted(p for p in (data / "BSD200").iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    names = []
    for src in sources[:count]:
        with Image.open(src) as im:
            im = im.convert("RGB")
            w, h = im.size
            ch = min(h, w * HD[1] // HD[0])
            cw = ch * HD[0] // HD[1]
            box = ((w - cw) // 2, (h - ch) // 2, (w - cw) // 2 + cw, (h - ch) // 2 + ch)
            im.crop(box).resize(HD, Image.BICUBIC).save(folder / f"{src.stem}.png")
        names.append(src.name)
    return names


def ratio_row(name: str, command: dict, denominator_s: float, extra: dict | None = None) -> dict:
    ratio = command["seconds"] / denominator_s
    row = {"command_s": command["seconds"], "inference_s": round(denominator_s, 3),
           "ratio": round(ratio, 2), "target": TARGETS[name], "pass": ratio <= TARGETS[name],
           "load_command": [command["load_before"], command["load_after"]], **(extra or {})}
    print(f"{name}: {command['seconds']:.2f} s / {denominator_s:.2f} s inference = "
          f"{ratio:.2f}x (target <= {TARGETS[name]}x: {'PASS' if row['pass'] else 'FAIL'}; "
          f"load {command['load_before']}->{command['load_after']})", flush=True)
    return row


def readme_table(result: dict) -> str:
    labels = {"eval_cold": "`eval --pretrained abpn --data B100`, empty baseline cache",
              "eval_warm": "the same, bicubic rows cached",
              "upscale": f"`upscale` of a folder of {result.get('hd_images', '?')} 1080p PNGs",
              "report": "`report abpn.tflite --data B100 --runner local,synap`, cold"}
    lines = [f"Measured by `python benchmarks/everyday.py` on {result['measured_under']['date']}"
             f" ({result['measured_under']['cpus']} cores shared with other work; load = "
             "1-minute load average before/after each run).", "",
             "| command | command time | inference alone | ratio | target | load (command) "
             "| load (inference) |", "|---|---:|---:|---:|---:|---|---|"]
    for name, row in result["commands"].items():
        when = f" (measured {row['measured'][:16].replace('T', ' ')})" if row.get("measured") else ""
        lines.append(f"| {labels[name]}{when} | {row['command_s']:.1f} s | {row['inference_s']:.2f} s "
                     f"| {row['ratio']:.1f}x | <= {row['target']:g}x | "
                     f"{row['load_command'][0]}->{row['load_command'][1]} | "
                     f"{row['load_inference'][0]}->{row['load_inference'][1]} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=str(SHARED), help="folder holding B100 and BSD200")
    parser.add_argument("--images", type=int, default=4, help="1080p images to upscale")
    parser.add_argument("--skip", default="", help="comma-separated: eval,upscale,report "
                        "(their rows of the last result are kept, with their date)")
    add_write_readme(parser)
    args = parser.parse_args()
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    data = Path(args.data).resolve()
    b100 = data / "B100"

    from mai_sr.pretrained import pretrained_path

    dynamic, fixed = pretrained_path(MODEL, "dynamic"), pretrained_path(MODEL, "fixed")
    cli = [sys.executable, "-m", "mai_sr.cli"]
    commands: dict[str, dict] = {}
    result: dict = {"model": MODEL, "commands": commands}
    with tempfile.TemporaryDirectory(prefix="everyday_") as tmp:
        work = Path(tmp)
        if "eval" not in skip:
            inf = inference("pairs", dynamic, b100)
            load_inf = [inf["load_before"], inf["load_after"]]
            cache = work / "eval-cache"
            evaluate = [*cli, "eval", "--pretrained", MODEL, "--data", str(b100), "--quiet",
                        "--json", "--cache-dir", str(cache)]
            commands["eval_cold"] = ratio_row("eval_cold", timed(evaluate), inf["inference_s"],
                                              {"load_inference": load_inf,
                                               "images": inf["images"]})
            commands["eval_warm"] = ratio_row("eval_warm", timed(evaluate), inf["inference_s"],
                                              {"load_inference": load_inf,
                                               "images": inf["images"]})
        if "upscale" not in skip:
            folder = work / "hd"
            folder.mkdir()
            result["hd_images"] = len(make_hd_folder(folder, args.images, data))
            inf = inference("folder", dynamic, folder)
            command = timed([*cli, "upscale", str(folder), str(work / "hd_x3"), "--pretrained",
                             MODEL, "--quiet"])
            commands["upscale"] = ratio_row("upscale", command, inf["inference_s"],
                                            {"load_inference": [inf["load_before"],
                                                                inf["load_after"]],
                                             "images": inf["images"]})
        if "report" not in skip:
            runners = "local,synap"
            inf = inference("pairs", dynamic, b100, str(fixed), runners)
            denominator = inf["inference_s"] + sum(inf[f"{r}_bench_s"] for r in runners.split(","))
            command = timed([*cli, "report", str(fixed), "--data", str(b100), "--runner",
                             runners, "--out", str(work / "report"), "--cache-dir",
                             str(work / "report-cache"), "--quiet"])
            commands["report"] = ratio_row(
                "report", command, denominator,
                {"load_inference": [inf["load_before"], inf["load_after"]],
                 "parts_s": {k: round(v, 3) for k, v in inf.items() if k.endswith("_s")}})
    if skip:  # the skipped commands keep their last rows, marked with when they were measured
        previous = result_path("everyday")
        last = json.loads(previous.read_text()) if previous.is_file() else {}
        for name, row in last.get("commands", {}).items():
            if name not in commands and name.split("_")[0] in skip:
                commands[name] = {**row, "measured": row.get("measured") or
                                  last.get("measured_under", {}).get("date")}
        if "upscale" in skip and "hd_images" in last:
            result["hd_images"] = last["hd_images"]
    result["pass"] = all(row["pass"] for row in commands.values())
    result["measured_under"] = measured_under()
    publish("everyday", result, readme_table(result), write_readme=args.write_readme)
    return 0 if result["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
