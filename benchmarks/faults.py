"""Kill `mai-sr train` and `mai-sr export` at every write, and check what is left on disk.

Every file the toolkit writes lands through one `os.replace` (``mai_sr.fileio``). A process
killed with SIGKILL leaves the disk exactly as it was at that instant: the files renamed so
far, plus at most one complete temp file. So instead of starting one process per kill point,
each command runs once under a hook that copies the output folder just before and just after
every `os.replace` (``<k>-before`` / ``<k>-after``): each copy is the state a SIGKILL at that
instant leaves. The tests kill real processes at chosen points (``tests/test_faults.py``);
this script covers every point in under two minutes on an idle 2-core machine.

Checked on every state:

- train: every JSON file parses; every ``.npz`` checkpoint and ``.h5`` weights file opens;
  ``metrics.csv`` parses; then, from the states just before and after each stage's final
  weights land (``--resume-all``: every state), ``--resume`` finishes, leaves no temp file behind, and records
  every stage in ``summary.json`` with weights equal to the uninterrupted run's;
- export (a second export over a first one, ``--dynamic``): every reader either sees one
  consistent export or refuses the set as torn (``read_sidecar``'s sha256, and the fixed and
  dynamic files' embedded provenance compared by ``check_twins``).

    python benchmarks/faults.py [--keep DIR] [--resume-all]

Prints one line per violation, writes ``benchmarks/results/faults.json`` and exits 1 if any
state is bad.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from _publish import add_write_readme, publish

ROOT = Path(__file__).resolve().parents[1]
TRAIN_ARGS = ["--model", "abpn", "--data", "builtin", "--steps", "4", "--qat", "--qat-steps", "2",
              "--val-every", "2", "--ckpt-every", "2", "--batch", "2", "--patch", "24",
              "--quiet"]

# Runs a mai-sr command with os.replace wrapped: the watched folder is copied before and
# after every rename (a SIGKILL at that instant leaves exactly that copy on disk).
HOOK = r"""
import os, shutil, sys
watch, snaps = os.environ["FAULTS_WATCH"], os.environ["FAULTS_SNAPSHOTS"]
real_replace, count = os.replace, [0]
def snapshot(tag):
    shutil.copytree(watch, os.path.join(snaps, tag), symlinks=True, dirs_exist_ok=False)
def replace(src, dst, *args, **kwargs):
    if os.path.realpath(str(dst)).startswith(os.path.realpath(watch)):
        count[0] += 1
        snapshot(f"{count[0]:03d}-before")
        real_replace(src, dst, *args, **kwargs)
        snapshot(f"{count[0]:03d}-after")
    else:
        real_replace(src, dst, *args, **kwargs)
os.replace = replace
from mai_sr.cli import main
sys.exit(main(sys.argv[1:]))
"""


def mai_sr(*args: str, cwd: Path, hook: dict | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    code = ["-c", HOOK] if hook else ["-m", "mai_sr"]
    if hook:
        env.update({"FAULTS_WATCH": str(hook["watch"]), "FAULTS_SNAPSHOTS": str(hook["snaps"])})
    return subprocess.run([sys.executable, *code, *args], cwd=cwd, env=env, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


# ---------------------------------------------------------------- train


def check_run_files(run: Path) -> list[str]:
    """What is unreadable in a run folder (each file on its own; nothing is repaired)."""
    import h5py
    import numpy as np

    bad = []
    for path in sorted(p for p in run.rglob("*") if p.is_file()):
        rel = path.relative_to(run)
        try:
            if path.suffix == ".json":
                json.loads(path.read_text())
            elif path.suffix == ".npz" and not path.name.startswith("."):
                with np.load(path, allow_pickle=False) as npz:
                    [npz[k] for k in npz.files]
            elif path.name.endswith(".h5") and not path.name.startswith("."):
                with h5py.File(path, "r"):
                    pass
            elif path.name == "metrics.csv":
                with open(path, newline="") as f:
                    rows = list(csv.DictReader(f))
                assert all(r["step"].isdigit() for r in rows)
        except Exception as exc:  # noqa: BLE001 - any failure to read is the finding
            bad.append(f"{rel}: unreadable ({type(exc).__name__}: {exc})")
    return bad


def h5_arrays(path: Path) -> list:
    import h5py

    arrays = []
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: arrays.append((name, obj[()]))
                     if isinstance(obj, h5py.Dataset) else None)
    return sorted(arrays, key=lambda item: item[0])


def same_weights(a: Path, b: Path) -> bool:
    import numpy as np

    wa, wb = h5_arrays(a), h5_arrays(b)
    return len(wa) == len(wb) and all(na == nb and np.array_equal(x, y)
                                      for (na, x), (nb, y) in zip(wa, wb))


def resume_from(state: Path, reference: Path, work: Path) -> list[str]:
    """Resume a copy of a killed run's folder; what differs from the uninterrupted run."""
    runs = work / state.name
    shutil.copytree(state, runs, symlinks=True)
    run = runs / "run"
    if not (run / "config.json").is_file():
        return []  # killed before the run existed: nothing to resume, a fresh start is right
    proc = mai_sr("train", *TRAIN_ARGS, "--out", str(run), "--resume", cwd=work)
    if proc.returncode != 0:
        return [f"resume failed (exit {proc.returncode}): {proc.stdout.strip().splitlines()[-1:]}"]
    bad = []
    temps = [p.relative_to(run) for p in run.rglob(".*") if p.is_file() and p.name != ".lock"]
    if temps:
        bad.append(f"temp files left after a successful resume: {temps}")
    summary = json.loads((run / "summary.json").read_text())
    missing = [s for s in ("fp32", "qat") if s not in summary]
    if missing:
        bad.append(f"summary.json lacks stage(s) {missing} after resume")
    for rel in ("fp32/deploy.weights.h5", "qat/qat.weights.h5"):
        if not same_weights(run / rel, reference / rel):
            bad.append(f"{rel} differs from the uninterrupted run")
    return bad


def train_faults(work: Path, resume_all: bool, jobs: int) -> dict:
    runs, snaps = work / "train" / "runs", work / "train" / "snapshots"
    runs.mkdir(parents=True)
    snaps.mkdir()
    started = time.perf_counter()
    proc = mai_sr("train", *TRAIN_ARGS, "--out", str(runs / "run"), cwd=work,
                  hook={"watch": runs, "snaps": snaps})
    if proc.returncode != 0:
        raise SystemExit(f"reference training failed:\n{proc.stdout[-2000:]}")
    reference_s = time.perf_counter() - started
    states = sorted(snaps.iterdir())
    findings = {}
    for state in states:
        bad = check_run_files(state / "run") if (state / "run").is_dir() else []
        if bad:
            findings[state.name] = bad
    chosen = states if resume_all else resume_points(states)
    return {"writes": len(states) // 2, "states_checked": len(states), "chosen": chosen,
            "reference_s": round(reference_s, 1), "findings": findings}


# Files whose landing the resumed states straddle: each stage's final weights (where
# summary.json could lose the stage). Mid-stage resumes are exact by test
# (tests/test_train.py); `--resume-all` resumes from every state (about 8x longer).
LANDMARKS = ("fp32/deploy.weights.h5", "qat/qat.weights.h5")


def resume_points(states: list[Path]) -> list[Path]:
    """The states just before and just after each landmark file first lands: the "before"
    one holds the writer's temp file (which --resume must clean), the "after" one the file
    without what follows it. Every other state is still checked file by file."""
    chosen = []
    for rel in LANDMARKS:
        first = next((i for i, s in enumerate(states) if (s / "run" / rel).is_file()), None)
        if first is not None:
            chosen += [states[first - 1], states[first]] if first else [states[first]]
    return sorted(set(chosen))


def resume_faults(work: Path, chosen: list[Path], pool) -> list:
    """Futures of resuming each chosen state (name, findings)."""
    reference = work / "train" / "runs" / "run"
    return [pool.submit(lambda s: (s.name, resume_from(s, reference, work / "resumed")), state)
            for state in chosen]


# ---------------------------------------------------------------- export


def export_faults(work: Path, run: Path) -> dict:
    """A second export over a first (different weights), snapshotted at every write."""
    out, snaps = work / "export" / "out", work / "export" / "snapshots"
    out.mkdir(parents=True)
    snaps.mkdir()
    shape = ["--shape", "36x64"]  # small: the conversions, not the writes, take the time
    first = mai_sr("export", str(out / "m.tflite"), "--run", str(run), "--dynamic", *shape,
                   cwd=work)
    if first.returncode != 0:
        raise SystemExit(f"first export failed:\n{first.stdout[-2000:]}")
    second = mai_sr("export", str(out / "m.tflite"), "--pretrained", "abpn", "--dynamic",
                    "--force", *shape, cwd=work, hook={"watch": out, "snaps": snaps})
    if second.returncode != 0:
        raise SystemExit(f"second export failed:\n{second.stdout[-2000:]}")
    findings = {}
    states = sorted(snaps.iterdir())
    for state in states:
        bad = check_export_set(state)
        if bad:
            findings[state.name] = bad
    return {"writes": len(states) // 2, "states_checked": len(states), "findings": findings}


def check_export_set(folder: Path) -> list[str]:
    """Readers must see one consistent export, or refuse the set."""
    from mai_sr.errors import MaiSrError
    from mai_sr.tflite import artifacts

    fixed, dynamic = folder / "m.tflite", folder / "m_none.tflite"
    try:
        records = [artifacts.read_sidecar(fixed), artifacts.read_sidecar(dynamic)]
        artifacts.check_twins(fixed, dynamic)
    except MaiSrError:
        return []  # refused as torn: detected
    sources = {json.dumps(r.get("source"), sort_keys=True) for r in records if r}
    if len(sources) > 1:
        return [f"a torn set passes every reader: sidecars from two exports {sorted(sources)}"]
    return []


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", help="work folder to keep (default: a temp folder)")
    parser.add_argument("--resume-all", action="store_true",
                        help="resume from every state, not only around the stage ends")
    parser.add_argument("--jobs", type=int, default=len(os.sched_getaffinity(0)))
    add_write_readme(parser)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="mai-sr-faults-"))
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    try:
        train = train_faults(work, args.resume_all, args.jobs)
        # The resumes and the export checks are independent: run them side by side.
        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            resumes = resume_faults(work, train.pop("chosen"), pool)
            export_future = pool.submit(export_faults, work, work / "train" / "runs" / "run")
            train["resumed"] = len(resumes)
            for future in resumes:
                name, bad = future.result()
                if bad:
                    train["findings"].setdefault(name, []).extend(bad)
            export = export_future.result()
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    result = {"train": train, "export": export,
              "wall_s": round(time.perf_counter() - started, 1)}
    bad = 0
    for what in ("train", "export"):
        r = result[what]
        print(f"{what}: {r['writes']} writes, {r['states_checked']} states checked"
              + (f", {r['resumed']} resumed" if "resumed" in r else "")
              + f": {len(r['findings'])} bad")
        for state, lines in r["findings"].items():
            for line in lines:
                print(f"  {state}: {line}")
        bad += len(r["findings"])
    print(f"wall time {result['wall_s']} s")
    publish("faults", result)
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
