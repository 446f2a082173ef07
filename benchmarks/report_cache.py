"""Does `mai-sr report` redo only new work? Time a cold report and a rerun with nothing changed.

The models are the four architectures, as training runs: the newest run of each in
``runs/`` when there are some; else each architecture is trained here for a few hundred
steps plus QAT (``mai-sr train --model NAME --steps 600 --qat --qat-steps 150``, builtin
photos) and exported (``mai-sr export RUN/export/NAME.tflite --run RUN --dynamic``, 360x640).
``--random`` skips training and exports Keras' random initial weights instead (quick, but
the PSNRs are meaningless). Training and export are not timed.

Both reports run the real command line in a fresh process (``python -m mai_sr.cli report
... --runner local,synap``, default benchmark settings). The first writes into an empty
output folder; the second, with the same arguments, finds every evaluation (INT8 TFLite and
Keras FP32), benchmark, lint, crop and figure in ``<out>/cache``. Target: rerun < 10% of
the first run's wall time.

    python benchmarks/report_cache.py [--data ../shared/data/Set14] [--runs runs]
        [--steps 600] [--qat-steps 150] [--random] [--keep DIR]

Prints both times and the ratio, writes ``benchmarks/results/report_cache.json`` and rewrites
the table between the ``bench:report_cache`` markers in the README's ``report`` section.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _publish import add_write_readme, publish

ROOT = Path(__file__).resolve().parents[1]
ARCHITECTURES = ("abpn", "scsrn", "ncnet", "xcat")
TARGET = 0.10
SHARED = Path(os.environ.get("MAI_SR_DATA", ROOT.parent / "shared" / "data"))


def trained_runs(runs_dir: Path) -> list[Path]:
    """The newest run of each architecture under `runs_dir` with finished FP32 weights."""
    from mai_sr.runs import FP32_DEPLOY_WEIGHTS, read_run_config

    newest: dict[str, Path] = {}
    for run in sorted(p for p in runs_dir.glob("*") if p.is_dir() and not p.is_symlink()):
        if (run / "config.json").is_file() and (run / FP32_DEPLOY_WEIGHTS).is_file():
            arch = read_run_config(run).get("model")
            if arch in ARCHITECTURES and (arch not in newest or
                                          run.stat().st_mtime > newest[arch].stat().st_mtime):
                newest[arch] = run
    return [newest[a] for a in ARCHITECTURES if a in newest]


def _cli(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "mai_sr.cli", *args], check=True, cwd=ROOT,
                   stdout=subprocess.DEVNULL)


def train_short_runs(work: Path, steps: int, qat_steps: int) -> list[Path]:
    """Train and export each architecture briefly (FP32 then QAT) under `work`."""
    runs = []
    for arch in ARCHITECTURES:
        run = work / "runs" / arch
        _cli("train", "--model", arch, "--steps", str(steps), "--qat", "--qat-steps",
             str(qat_steps), "--out", str(run), "--quiet")
        _cli("export", str(run / "export" / f"{arch}.tflite"), "--run", str(run), "--dynamic")
        runs.append(run)
    return runs


def export_random(work: Path, calib: str) -> list[Path]:
    """Fixed (360x640) + dynamic INT8 files of each architecture with random initial weights."""
    from mai_sr.export.convert import export
    from mai_sr.models import create_model

    files = []
    for arch in ARCHITECTURES:
        weights = work / f"{arch}.weights.h5"
        create_model(arch, deploy=True).save_weights(str(weights))
        files.append(export(work / f"{arch}.tflite", model=arch, weights=str(weights),
                            dynamic=True, calib=calib, calib_n=8)[0])
    return files


def timed_report(inputs: list[str], data: str, out: Path) -> float:
    """Wall seconds of one `mai-sr report` in a new process (startup included)."""
    cmd = [sys.executable, "-m", "mai_sr.cli", "report", *inputs, "--data", data,
           "--runner", "local,synap", "--out", str(out), "--quiet"]
    start = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=ROOT)
    return time.perf_counter() - start


def _table_of(markdown: str) -> str:
    return "".join(line + "\n" for line in markdown.splitlines() if line.startswith("|"))


def readme_table(record: dict) -> str:
    return (f"Measured by `python benchmarks/report_cache.py` on {record['date']} "
            f"({record['machine']['cores']} cores, shared): {record['models']}, evaluated on "
            f"{record['data']}, runners local + synap.\n\n"
            f"| report | wall time |\n|---|---:|\n"
            f"| first (cold cache) | {record['first_s']:.1f} s |\n"
            f"| rerun, nothing changed | {record['rerun_s']:.2f} s |\n"
            f"| ratio (target < {record['target_ratio']:.0%}) | {record['ratio']:.1%} |\n\n"
            f"The leaderboard that run wrote (`leaderboard.md`):\n\n"
            f"{_table_of(record['leaderboard_md'])}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=str(SHARED / "Set14"), help="evaluation images")
    parser.add_argument("--runs", default=str(ROOT / "runs"), help="training runs folder")
    parser.add_argument("--steps", type=int, default=600, help="FP32 steps when training here")
    parser.add_argument("--qat-steps", type=int, default=150, help="QAT steps when training here")
    parser.add_argument("--random", action="store_true",
                        help="no runs: export random-weight models instead of training")
    parser.add_argument("--keep", help="report folder to keep (default: a temp folder)")
    add_write_readme(parser)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="report_cache_") as tmp:
        work = Path(tmp)
        runs = trained_runs(Path(args.runs)) if Path(args.runs).is_dir() else []
        if runs:
            inputs, kind = [str(r) for r in runs], f"the newest runs in {Path(args.runs).name}/"
        elif args.random:
            inputs = [str(p) for p in export_random(work, args.data)]
            kind = "random-weight INT8 exports (PTQ; PSNRs meaningless)"
        else:
            print(f"no trained runs in {args.runs}: training each architecture for "
                  f"{args.steps} + {args.qat_steps} QAT steps")
            inputs = [str(r) for r in train_short_runs(work, args.steps, args.qat_steps)]
            kind = (f"runs trained here for {args.steps} FP32 + {args.qat_steps} QAT steps "
                    "(`mai-sr train` defaults otherwise, builtin photos) and exported at 360x640")
        out = Path(args.keep) if args.keep else work / "report"
        if out.exists() and any(out.iterdir()):
            parser.error(f"--keep {out}: must be empty or absent (the first run must be cold)")
        first = timed_report(inputs, args.data, out)
        rerun = timed_report(inputs, args.data, out)
        markdown = (out / "leaderboard.md").read_text()

    ratio = rerun / first
    verdict = "PASS" if ratio < TARGET else "FAIL"
    print(f"first report: {first:.1f} s, rerun (nothing changed): {rerun:.2f} s, "
          f"ratio {ratio:.3f} (target < {TARGET}): {verdict}")
    record = {
        "first_s": round(first, 2), "rerun_s": round(rerun, 3), "ratio": round(ratio, 4),
        "target_ratio": TARGET, "pass": ratio < TARGET, "models": kind,
        "inputs": [Path(i).name for i in inputs],
        "data": Path(args.data).name, "runners": ["local", "synap"],
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                    "python": platform.python_version()},
        "date": datetime.date.today().isoformat(), "leaderboard_md": markdown,
    }
    publish("report_cache", record, readme_table(record), write_readme=args.write_readme)
    print(_table_of(markdown))
    return 0 if ratio < TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
