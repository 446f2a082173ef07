"""Do the everyday commands run at the speed of the model? Command time / inference time.

Five rows, each a command run as a user runs it (a fresh ``python -m mai_sr`` process, so
interpreter start and imports count) with the shipped ABPN, against the inference alone:

- ``eval_cold``: ``eval --pretrained abpn --data B100`` with an empty baseline cache. <= 5x.
- ``eval_warm``: the same with the cache filled by an earlier run (the bicubic rows, the
  LR images made from B100 and its decoded HR images). <= 3x.
- ``upscale_4``: ``upscale`` of a folder of four 1920x1080 PNGs to PNG (default encoding). <= 2x.
- ``upscale_1``: ``upscale`` of one 1920x1080 PNG to a PNG, what most users run. <= 3x.
- ``report``: ``report abpn.tflite --data B100 --runner local,synap`` into an empty folder
  with an empty baseline cache. <= 3x its inference and its runners' benchmark time.

**Pairing.** The command (A) and its inference (B) run in turn, A B A B ..., one round per
pair after one warm-up pair that is not counted (it fills the page cache and, for
``eval_warm``, the baseline cache). A ratio is taken per round, so the two halves of each
ratio ran seconds apart under the same load; the row quotes the median of the rounds'
ratios and their quartiles, and the JSON keeps every round with the 1-minute load average
before and after it.

**The denominator** is the fastest honest inference: a small script started as its own
process the same way as the command, right after it, loading the same model file with the
same threads (2), decoding every input beforehand, allocating the interpreter at each input
size and running each size once to warm it, then timing one pass over the inputs
(``TFLiteSR.upscale`` per image as ``eval`` calls it, ``upscale_image`` as ``upscale`` calls
it). Its clock runs inside the process, so the denominator holds no interpreter start, no
imports, no decoding and no tensor allocation: those are exactly what the command adds
beyond inference, and the ratio is meant to show them (its process wall time and its start
up to the first pixel are recorded beside it). For the report the denominator adds the
wall time of the local benchmark and the SyNAP simulation of the file it times
(``get_runner(name).bench``, as the report calls them).

**Verdict.** A row passes when the median ratio is at or below its target and fails above
it, unless the rounds' spread (interquartile range of the ratios) is wider than the
margin between the median and the target: then the row is *inconclusive*, which counts as
a failure (measure again on a quieter machine, or with more rounds).

The 1080p inputs are real photos: the first BSD200 images, centre-cropped to 16:9 and
resized to 1920x1080 with Pillow's bicubic filter, written to a temp folder (never kept).

    python benchmarks/everyday.py [--rounds 7] [--quick] [--data ../shared/data]
        [--skip report] [--write-readme]

``--quick`` (3 rounds, no JSON or README written unless ``--json`` names a file) is the
smoke test of the whole script.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from _publish import add_write_readme, measured_under, publish, result_path

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MAI_SR_DATA", ROOT.parent / "shared" / "data"))
MODEL = "abpn"
THREADS = 2  # TFLiteSR's default, which eval, upscale and report use
HD = (1920, 1080)
HD_IMAGES = 4
RUNNERS = "local,synap"
ROUNDS, QUICK_ROUNDS = 7, 3

# Inference alone, in its own process. argv: launch time (the parent's time.time()), kind
# ("pairs": LR images of a dataset folder, as eval makes them; "files": image files, as
# upscale reads them), the model file, sources; then optionally the report's timed file and
# its runners. Prints one JSON object.
_INFERENCE = r"""
import json, sys, time
launched = float(sys.argv[1])
from pathlib import Path
from mai_sr import data
from mai_sr.imageio import read_image
from mai_sr.tflite.runtime import TFLiteSR
from mai_sr.upscale import upscale_image

kind, model_path, sources = sys.argv[2], sys.argv[3], sys.argv[4].split(",")
model = TFLiteSR(model_path, THREADS)
if kind == "pairs":
    images = [p.lr for s in sources for p in data.iter_pairs(s, scale=model.scale)]
    run = model.upscale
else:
    images = [read_image(Path(s)) for s in sources]
    run = lambda img: upscale_image(model, img)
by_size = {}
for img in images:
    by_size.setdefault(img.shape, []).append(img)
ready = time.time() - launched
seconds = 0.0
for same_size in by_size.values():
    model.prepare(*same_size[0].shape[:2])
    run(same_size[0])  # warm: first touch of this size's arena
    start = time.perf_counter()
    for img in same_size:
        run(img)
    seconds += time.perf_counter() - start
result = {"inference_s": seconds, "images": len(images), "sizes": len(by_size),
          "ready_s": ready}
if len(sys.argv) > 5:  # the report's runners, on its timed (fixed-shape) file
    from mai_sr.device import get_runner
    for runner in sys.argv[6].split(","):
        start = time.perf_counter()
        get_runner(runner).bench(sys.argv[5])
        result[runner + "_bench_s"] = time.perf_counter() - start
print(json.dumps(result))
""".replace("THREADS", str(THREADS))


# ---------------------------------------------------------------- statistics and verdict


def quartiles(values: list[float]) -> tuple[float, float, float]:
    """(first quartile, median, third quartile) of `values`, within their range."""
    if not values:
        raise ValueError("no rounds")
    if len(values) == 1:
        return values[0], values[0], values[0]
    q1, median, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, median, q3


def summarize(ratios: list[float], target: float) -> dict:
    """Median and quartiles of the rounds' ratios, and the verdict against `target`.

    'pass' (median <= target) or 'fail', unless the spread (q3 - q1) is wider than the
    margin |target - median|: then 'inconclusive', since another set of rounds could land on
    the other side of the target. Only 'pass' passes.
    """
    q1, median, q3 = quartiles(ratios)
    spread, margin = q3 - q1, abs(target - median)
    if spread > margin:
        verdict = "inconclusive"
    else:
        verdict = "pass" if median <= target else "fail"
    return {"median": round(median, 3), "q1": round(q1, 3), "q3": round(q3, 3),
            "spread": round(spread, 3), "margin": round(margin, 3), "target": target,
            "verdict": verdict, "pass": verdict == "pass"}


def row_summary(rounds: list[dict], target: float) -> dict:
    """A row of the result: the verdict on its rounds' ratios, the medians of both halves
    and the range of the load over the rounds."""
    loads = [r["load_before"] for r in rounds] + [r["load_after"] for r in rounds]
    return {**summarize([r["ratio"] for r in rounds], target),
            "command_s": round(statistics.median(r["command_s"] for r in rounds), 3),
            "inference_s": round(statistics.median(r["inference_s"] for r in rounds), 3),
            "load": [min(loads), max(loads)], "rounds": rounds}


def vs_previous(rows: dict, previous: dict) -> dict:
    """Each row's median relative to the same row of `previous` (a former result), e.g.
    0.04 for 4% higher; rows that `previous` lacks are left out."""
    changes = {}
    for name, row in rows.items():
        old = previous.get("rows", {}).get(name, {}).get("median")
        if old:
            changes[name] = round(row["median"] / old - 1, 3)
    return changes


# ---------------------------------------------------------------- one round


def load() -> float:
    return round(os.getloadavg()[0], 2)


def run_process(cmd: list[str], capture: bool = False) -> tuple[float, str]:
    """Wall seconds of `cmd` as a new process (and its stdout when `capture`)."""
    start = time.perf_counter()
    done = subprocess.run(cmd, check=True, cwd=ROOT, text=True,
                          stdout=subprocess.PIPE if capture else subprocess.DEVNULL)
    return time.perf_counter() - start, done.stdout or ""


def inference(args: list[str]) -> dict:
    """Run the inference script (`args` after its launch time); its JSON, with its wall."""
    seconds, out = run_process([sys.executable, "-c", _INFERENCE, repr(time.time()), *args],
                               capture=True)
    result = json.loads(out.strip().splitlines()[-1])
    result["process_s"] = seconds
    return result


@dataclass
class Row:
    """One row: `command(i)` is round i's command line (a fresh output per round),
    `inference` the denominator script's arguments, `extra(result)` what the denominator
    adds beyond its inference pass (the report's runners)."""

    name: str
    label: str
    target: float
    command: Callable[[int], list[str]]
    inference: list[str]
    extra: Callable[[dict], float] = lambda _result: 0.0
    cleanup: Callable[[int], None] = lambda _i: None


def one_round(row: Row, index: int) -> dict:
    """Command, then inference; the ratio and the load before and after both."""
    before = load()
    command_s, _ = run_process(row.command(index))
    inf = inference(row.inference)
    after = load()
    row.cleanup(index)
    denominator = inf["inference_s"] + row.extra(inf)
    parts = {k: round(v, 4) for k, v in inf.items() if k.endswith("_s")}
    return {"command_s": round(command_s, 4), "inference_s": round(denominator, 4),
            "ratio": round(command_s / denominator, 4), "load_before": before,
            "load_after": after, "denominator_parts": parts}


def measure(row: Row, rounds: int) -> dict:
    """One warm-up round (not counted), then `rounds` rounds; the row's summary."""
    one_round(row, -1)
    counted = []
    for i in range(rounds):
        counted.append(one_round(row, i))
        r = counted[-1]
        print(f"  {row.name} round {i + 1}/{rounds}: {r['command_s']:.2f} s / "
              f"{r['inference_s']:.3f} s = {r['ratio']:.2f}x (load {r['load_before']}"
              f"->{r['load_after']})", flush=True)
    summary = row_summary(counted, row.target)
    print(f"{row.name}: median {summary['median']:.2f}x [{summary['q1']:.2f}-"
          f"{summary['q3']:.2f}] (target <= {row.target:g}x: {summary['verdict'].upper()}; "
          f"load {summary['load'][0]}-{summary['load'][1]})", flush=True)
    return summary


# ---------------------------------------------------------------- the rows


def make_hd_folder(folder: Path, count: int, data: Path) -> list[Path]:
    """`count` 1920x1080 PNGs from the first BSD200 photos (centre crop to 16:9, bicubic)."""
    from PIL import Image

    from mai_sr.data import IMAGE_SUFFIXES

    sources = sorted(p for p in (data / "BSD200").iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    written = []
    for src in sources[:count]:
        with Image.open(src) as im:
            im = im.convert("RGB")
            w, h = im.size
            ch = min(h, w * HD[1] // HD[0])
            cw = ch * HD[0] // HD[1]
            box = ((w - cw) // 2, (h - ch) // 2, (w - cw) // 2 + cw, (h - ch) // 2 + ch)
            written.append(folder / f"{src.stem}.png")
            im.crop(box).resize(HD, Image.BICUBIC).save(written[-1])
    return written


def _remove(*paths: Path) -> None:
    for path in paths:
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def make_rows(work: Path, data: Path, names: list[str]) -> list[Row]:
    """The rows called `names`, their inputs and outputs under `work`."""
    from mai_sr.pretrained import pretrained_path

    cli = [sys.executable, "-m", "mai_sr"]
    b100 = data / "B100"
    dynamic, fixed = str(pretrained_path(MODEL, "dynamic")), str(pretrained_path(MODEL, "fixed"))

    def evaluate(cache: Path) -> list[str]:
        return [*cli, "eval", "--pretrained", MODEL, "--data", str(b100), "--quiet", "--json",
                "--cache-dir", str(cache)]

    rows = [
        Row("eval_cold", "`eval --pretrained abpn --data B100`, empty baseline cache", 5.0,
            lambda i: evaluate(work / f"cold-cache{i}"), ["pairs", dynamic, str(b100)],
            cleanup=lambda i: _remove(work / f"cold-cache{i}")),
        Row("eval_warm", "the same, cache filled by an earlier run", 3.0,
            lambda i: evaluate(work / "warm-cache"), ["pairs", dynamic, str(b100)]),
        Row("report", f"`report abpn.tflite --data B100 --runner {RUNNERS}`, cold", 3.0,
            lambda i: [*cli, "report", fixed, "--data", str(b100), "--runner", RUNNERS,
                       "--out", str(work / f"report{i}"), "--cache-dir",
                       str(work / f"report-cache{i}"), "--quiet"],
            ["pairs", dynamic, str(b100), fixed, RUNNERS],
            extra=lambda inf: sum(inf[f"{r}_bench_s"] for r in RUNNERS.split(",")),
            cleanup=lambda i: _remove(work / f"report{i}", work / f"report-cache{i}")),
    ]
    if any(name.startswith("upscale") for name in names):
        folder = work / "hd"
        folder.mkdir(exist_ok=True)
        images = make_hd_folder(folder, HD_IMAGES, data)
        rows += [
            Row("upscale_4", f"`upscale` of a folder of {len(images)} 1920x1080 PNGs", 2.0,
                lambda i: [*cli, "upscale", str(folder), str(work / f"hd_x3-{i}"),
                           "--pretrained", MODEL, "--quiet"],
                ["files", dynamic, ",".join(map(str, images))],
                cleanup=lambda i: _remove(work / f"hd_x3-{i}")),
            Row("upscale_1", "`upscale` of one 1920x1080 PNG", 3.0,
                lambda i: [*cli, "upscale", str(images[0]), str(work / f"one_x3-{i}.png"),
                           "--pretrained", MODEL, "--quiet"],
                ["files", dynamic, str(images[0])],
                cleanup=lambda i: _remove(work / f"one_x3-{i}.png")),
        ]
    by_name = {row.name: row for row in rows}
    return [by_name[name] for name in names]


ROW_NAMES = ("eval_cold", "eval_warm", "upscale_4", "upscale_1", "report")


def selected(skip: str) -> list[str]:
    """The row names not skipped; `skip` names rows or groups (eval, upscale, report)."""
    words = {s.strip() for s in skip.split(",") if s.strip()}
    unknown = words - set(ROW_NAMES) - {n.split("_")[0] for n in ROW_NAMES}
    if unknown:
        raise SystemExit(f"--skip: unknown {', '.join(sorted(unknown))} (rows: "
                         f"{', '.join(ROW_NAMES)}, or eval, upscale)")
    return [n for n in ROW_NAMES if n not in words and n.split("_")[0] not in words]


# ---------------------------------------------------------------- the README table


def readme_table(result: dict) -> str:
    """The README block: one line on how, then one row per command."""
    when = result["measured_under"]
    loads = [v for row in result["rows"].values() for v in row["load"]]
    busy = max(loads, default=0) >= 1.5
    lines = [
        f"Measured by `python benchmarks/everyday.py` on {when['date'][:10]} ({when['cpus']} "
        f"cores; 1-minute load {min(loads, default=0):g}-{max(loads, default=0):g} over the "
        f"rounds{', a busy machine: provisional figures' if busy else ''}). Each round runs "
        "the command, then the inference alone in a fresh process; the ratio is the "
        "median of the rounds' ratios, [first-third quartile] its spread. A row whose spread "
        "is wider than its margin to the target is inconclusive.", "",
        "| command | rounds | command (median) | inference alone (median) | ratio, median "
        "[quartiles] | target | verdict | load (1-min) |",
        "|---|---:|---:|---:|---|---:|---|---|"]
    labels = dict(result.get("labels", {}))
    for name, row in result["rows"].items():
        dated = f" (measured {row['measured'][:10]})" if row.get("measured") else ""
        lines.append(
            f"| {labels.get(name, name)}{dated} | {len(row['rounds'])} | "
            f"{row['command_s']:.2f} s | {row['inference_s']:.2f} s | {row['median']:.2f}x "
            f"[{row['q1']:.2f}-{row['q3']:.2f}] | <= {row['target']:g}x | {row['verdict']} | "
            f"{row['load'][0]:g}-{row['load'][1]:g} |")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- main


def _kept_rows(result: dict, names: list[str]) -> None:
    """Rows not measured this time keep their last figures, marked with their date."""
    previous = result_path("everyday")
    last = json.loads(previous.read_text()) if previous.is_file() else {}
    for name in ROW_NAMES:
        row = last.get("rows", {}).get(name)
        if name not in names and row is not None:
            result["rows"][name] = {**row, "measured": row.get("measured") or
                                    last.get("measured_under", {}).get("date")}
            result["labels"][name] = last.get("labels", {}).get(name, name)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=str(SHARED), help="folder holding B100 and BSD200")
    parser.add_argument("--rounds", type=int, default=None,
                        help=f"counted rounds per row (default {ROUNDS}; --quick {QUICK_ROUNDS})")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke test: few rounds, nothing written unless --json")
    parser.add_argument("--json", default=None, help="also write the result to this file")
    parser.add_argument("--skip", default="", help="comma-separated rows or groups "
                        "(eval, upscale, report): their last figures are kept, with their date")
    add_write_readme(parser)
    args = parser.parse_args()
    rounds = args.rounds or (QUICK_ROUNDS if args.quick else ROUNDS)
    names = selected(args.skip)
    previous = result_path("everyday")
    last = json.loads(previous.read_text()) if previous.is_file() else {}
    result: dict = {"model": MODEL, "threads": THREADS, "rounds": rounds, "quick": args.quick,
                    "denominator": "warm inference in its own process, timed inside it",
                    "rows": {}, "labels": {}}
    with tempfile.TemporaryDirectory(prefix="everyday_") as tmp:
        for row in make_rows(Path(tmp), Path(args.data).resolve(), names):
            result["labels"][row.name] = row.label
            result["rows"][row.name] = measure(row, rounds)
    result["vs_previous"] = vs_previous(result["rows"], last)
    for name, change in result["vs_previous"].items():
        print(f"{name}: median {change:+.1%} against the last recorded run")
    if not args.quick:
        _kept_rows(result, names)
    result["rows"] = {n: result["rows"][n] for n in ROW_NAMES if n in result["rows"]}
    result["pass"] = all(row["pass"] for row in result["rows"].values())
    result["measured_under"] = measured_under()
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    if not args.quick:
        publish("everyday", result, readme_table(result), write_readme=args.write_readme)
    else:
        print(readme_table(result))
    return 0 if result["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
