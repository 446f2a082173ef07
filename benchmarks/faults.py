"""Kill `mai-sr train`, `export` and `import` at every write, check what is left on disk, and
give every command hostile model files.

Every file the toolkit writes lands through one `os.replace` (``mai_sr.fileio``). A process
killed with SIGKILL leaves the disk exactly as it was at that instant: the files renamed so
far, plus at most one complete temp file. So instead of starting one process per kill point,
each command runs once under a hook that copies the output folder just before and just after
every `os.replace` (``<k>-before`` / ``<k>-after``): each copy is the state a SIGKILL at that
instant leaves. The tests kill real processes at chosen points (``tests/test_faults.py``);
this script covers every point.

Checked on every state:

- train: every JSON file parses; every ``.npz`` checkpoint and ``.h5`` weights file opens;
  ``metrics.csv`` parses; then, from the states just before and after each stage's final
  weights land (``--resume-all``: every state), ``--resume`` finishes, leaves no temp file
  behind, and records every stage in ``summary.json`` with weights equal to the
  uninterrupted run's;
- export (a second export over a first one, ``--dynamic``): every reader either sees one
  consistent export or refuses the set as torn (``read_sidecar``'s sha256, and the fixed and
  dynamic files' embedded provenance compared by ``check_twins``);
- import (the published ETDS ABPN checkpoint, ``--force`` over an import of ESPCN): each file
  is whole, one import's bytes; ``weights_file_model`` accepts the pair only when weights and
  record come from the same import (the record's ``weights_sha256``); and a later import into
  each state that holds temp files cleans them and writes the uninterrupted run's set.

Hostile inputs (``tests/crafted_files.py``): a SavedModel, a Keras .h5 and a .pth that run
code when loaded carelessly, .pth tensors past their storage, stride and zip bombs, a
truncated checkpoint, .h5 external storage, links and huge datasets, a malformed and a
Flex-op .tflite, unknown architectures of 10, 20 and 40 convs, each through the commands
that read it, one process at a time: exit 2, one ``mai-sr CMD: error:`` line naming the file
and the reason, no traceback, no crash, no marker file written, unknown architectures
answered within 2 s, and peak memory within its limit (the process's own rusage).

    python benchmarks/faults.py [--keep DIR] [--resume-all] [--only hostile,import]

134 s of CPU time in all (6 minutes of wall time on 2 cores at load 10; the result records
both, and the load). Prints one line per violation, writes
``benchmarks/results/faults.json`` (a full run only) and exits 1 if any state or case is bad.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
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


# ---------------------------------------------------------------- import

ARTIFACTS = ROOT.parent / "shared" / "artifacts"
IMPORT_SOURCE = ARTIFACTS / "etds_abpn" / "ABPN_M4C28_x3.pth"
IMPORT_EARLIER = ARTIFACTS / "etds_zoo" / "pretrained" / "ESPCN" / "ESPCN_x3.pth"
IMPORT_OUT = "w.weights.h5"


def import_faults(work: Path, pool) -> dict:
    """A second import (ABPN) over a first (ESPCN) with --force, snapshotted at every write;
    then a later import from each state that holds temp files."""
    missing = [str(p) for p in (IMPORT_SOURCE, IMPORT_EARLIER) if not p.is_file()]
    if missing:
        return {"skipped": f"not found: {', '.join(missing)} (put ../shared/artifacts beside "
                           "the checkout)", "writes": 0, "states_checked": 0, "findings": {}}
    out, snaps = work / "import" / "out", work / "import" / "snapshots"
    out.mkdir(parents=True)
    snaps.mkdir()
    first = mai_sr("import", str(IMPORT_EARLIER), "--out", str(out / IMPORT_OUT), cwd=work)
    if first.returncode != 0:
        raise SystemExit(f"first import failed:\n{first.stdout[-2000:]}")
    old = import_set(out)
    second = mai_sr("import", str(IMPORT_SOURCE), "--out", str(out / IMPORT_OUT), "--force",
                    cwd=work, hook={"watch": out, "snaps": snaps})
    if second.returncode != 0:
        raise SystemExit(f"second import failed:\n{second.stdout[-2000:]}")
    new = import_set(out)
    states = sorted(snaps.iterdir())
    findings = {}
    for state in states:
        bad = check_import_set(state, old, new)
        if bad:
            findings[state.name] = bad
    # A later import must clean what the killed one left: once per distinct set of temps.
    with_temps = {}
    for state in states:
        temps = tuple(sorted(p.name for p in state.iterdir() if p.name.startswith(".")))
        if temps:
            with_temps.setdefault(temps, state)
    later = [pool.submit(import_again, state, work / "import" / "again", new)
             for state in with_temps.values()]
    for state, future in zip(with_temps.values(), later):
        bad = future.result()
        if bad:
            findings.setdefault(state.name, []).extend(bad)
    return {"writes": len(states) // 2, "states_checked": len(states),
            "later_imports": len(later), "findings": findings}


def import_set(folder: Path) -> dict:
    """The bytes of the weights and record an import wrote in `folder`."""
    return {"weights": (folder / IMPORT_OUT).read_bytes(),
            "record": (folder / f"{IMPORT_OUT}.json").read_bytes()}


def same_record(written: dict) -> dict:
    """The record without the one field that names where it was written."""
    record = json.loads(written["record"])
    record.pop("weights", None)
    return record


def check_import_set(folder: Path, old: dict, new: dict) -> list[str]:
    """Each file is whole (one import's bytes), and a reader accepts the pair only when both
    come from the same import (the record's weights_sha256)."""
    from mai_sr.errors import MaiSrError
    from mai_sr.weights import weights_file_model

    files = {"weights": folder / IMPORT_OUT, "record": folder / f"{IMPORT_OUT}.json"}
    origin, bad = {}, []
    for kind, path in files.items():
        if not path.is_file():
            bad.append(f"{path.name} missing: the earlier import's set is gone")
            continue
        data = path.read_bytes()
        origin[kind] = "old" if data == old[kind] else "new" if data == new[kind] else None
        if origin[kind] is None:
            bad.append(f"{path.name}: {len(data):,} bytes that neither import wrote (partial)")
    if bad:
        return bad
    try:
        weights_file_model(files["weights"], None)
        accepted = True
    except MaiSrError:
        accepted = False
    if accepted and origin["weights"] != origin["record"]:
        bad.append(f"a torn set passes weights_file_model: {origin['weights']} weights with the "
                   f"{origin['record']} record")
    if not accepted and origin["weights"] == origin["record"]:
        bad.append(f"the {origin['weights']} import's complete set is refused")
    return bad


def import_again(state: Path, work: Path, new: dict) -> list[str]:
    """Import again (--force) into a copy of a killed import's folder: the set is complete and
    no temp file is left."""
    folder = work / state.name
    shutil.copytree(state, folder, symlinks=True)
    proc = mai_sr("import", str(IMPORT_SOURCE), "--out", str(folder / IMPORT_OUT), "--force",
                  cwd=work)
    if proc.returncode != 0:
        return [f"a later import failed (exit {proc.returncode}): "
                f"{proc.stdout.strip().splitlines()[-1:]}"]
    bad = []
    temps = sorted(p.name for p in folder.iterdir() if p.name.startswith("."))
    if temps:
        bad.append(f"temp files left after a later import: {temps}")
    again = import_set(folder)
    if again["weights"] != new["weights"] or same_record(again) != same_record(new):
        bad.append("a later import did not write the set the uninterrupted one wrote")
    return bad


# ---------------------------------------------------------------- hostile inputs

# Limits the hostile cases must answer within. Unknown architectures: 2 s, the bound the
# import of any state dict must meet on a 2-core machine: in CPU time always, and in wall
# time unless other work loads the machine past its cores (then wall time measures the
# machine, and is recorded but not judged). Memory: the peak resident size of the whole
# process. A file refused from its structure stays near the interpreter's 50 MB (the zip
# bomb this guards against once drove it to 6.8 GB); one read and then fitted loads
# TensorFlow (about 0.6 GB). Anything slower than CASE_TIMEOUT_S is a hang.
UNKNOWN_ARCHITECTURE_LIMIT_S = 2.0
STRUCTURE_MEMORY_LIMIT_MB = 256
TF_MEMORY_LIMIT_MB = 1024
CASE_TIMEOUT_S = 120
# What each case's one line must say (besides naming its file): the reason it is refused.
REFUSAL = {"pth_offset": "reach element", "pth_size": "reach element",
           "pth_stride": "reach element", "pth_negative_stride": "malformed size",
           "pth_stride_bomb": "exceeds the import limit", "pth_short_storage": "reach element",
           "pth_pickle_code": "refusing to load os.system", "pth_zip_bomb": "over the import limit",
           "h5_external_storage": "external file", "h5_external_link": "external link",
           "h5_huge_dataset": "over the import limit", "tflite_short_kernel": "malformed",
           "savedmodel_code": "does not fit abpn", "h5_lambda_code": "does not fit abpn",
           "tflite_flex_import": "no conv layers found"}
# The cases whose files are read as data and then fitted (TensorFlow loads): the rest are
# refused from the file's structure alone.
FITTED = ("savedmodel_code", "h5_lambda_code")


# Builds the files whose builders need TensorFlow (crafted_files), in one process.
BUILD_TF_FILES = r"""
import sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
import crafted_files as crafted
files, markers = Path(sys.argv[2]), Path(sys.argv[3])
crafted.savedmodel_that_writes(files / "savedmodel", markers / "savedmodel")
crafted.keras_h5_with_lambda(files / "lambda.h5", markers / "lambda_h5")
crafted.tflite_that_writes(files / "flex.tflite", markers / "flex_tflite")
"""


def hostile_files(files: Path, markers: Path) -> dict[str, Path]:
    """Every hostile file kind of tests/crafted_files.py, by case name."""
    sys.path.insert(0, str(ROOT / "tests"))
    import crafted_files as crafted
    from mai_sr.importer.source import MAX_SOURCE_BYTES

    proc = subprocess.run([sys.executable, "-c", BUILD_TF_FILES, str(ROOT / "tests"),
                           str(files), str(markers)], text=True, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT,
                          env={**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"})
    if proc.returncode != 0:
        raise SystemExit(f"building the TF hostile files failed:\n{proc.stdout[-2000:]}")
    for marker in markers.iterdir():  # building ran the code once; start clean
        marker.unlink()
    pth = {"offset": {"offset": 10**9}, "size": {"size": (3, 3, 3, 4)},
           "stride": {"stride": (27, 9, 3, 100)}, "negative_stride": {"stride": (27, 9, 3, -1)},
           "stride_bomb": {"size": (100000, 100000), "stride": (0, 0)}}
    built = {f"pth_{name}": crafted.conv_checkpoint(files / f"{name}.pth", **fields)
             for name, fields in pth.items()}
    built["pth_short_storage"] = crafted.torch_zip(
        files / "short.pth", [("conv.weight", "0", 81, 0, (3, 3, 3, 3), (27, 9, 3, 1))],
        {"0": bytes(40)})
    built["pth_pickle_code"] = crafted.torch_zip(
        files / "code.pth", [], {}, pickle_bytes=crafted.code_pickle(
            f"touch {markers / 'pth_pickle'}"))
    built["pth_zip_bomb"] = crafted.zip_bomb(files / "bomb.pth", 2 * MAX_SOURCE_BYTES)
    if IMPORT_SOURCE.is_file():
        data = IMPORT_SOURCE.read_bytes()
        built["pth_truncated"] = files / "truncated.pth"
        built["pth_truncated"].write_bytes(data[:len(data) * 6 // 10])
    built["h5_external_storage"] = crafted.keras_h5_external(files / "ext.h5",
                                                             files / "secret.bin")
    built["h5_external_link"] = crafted.keras_h5_external_link(files / "link.h5",
                                                               files / "other.h5")
    built["h5_huge_dataset"] = crafted.keras_h5_huge(files / "huge.h5")
    built["tflite_short_kernel"] = crafted.tflite_short_kernel(
        files / "short.tflite", ROOT / "mai_sr" / "pretrained" / "abpn.mai_builtin.tflite")
    for convs in (10, 20, 40):
        built[f"unknown_{convs}_convs"] = crafted.unknown_architecture(
            files / f"unknown{convs}.pth", convs)
    built.update(savedmodel_code=files / "savedmodel", h5_lambda_code=files / "lambda.h5",
                 tflite_flex=files / "flex.tflite")
    return built


def hostile_cases(files: dict[str, Path], work: Path) -> list[tuple[str, list[str], str]]:
    """(case, mai-sr argv, what the one line must say) for each hostile file and command."""
    cases = []
    for name, path in files.items():
        out = str(work / f"{name}.weights.h5")
        if name.startswith("unknown_"):
            convs = name.split("_")[1]
            cases.append((name, ["import", str(path), "--out", out],
                          f"{path}: not a known architecture: found {convs} convs"))
        elif name == "tflite_flex":
            image = work / "in.png"
            from PIL import Image

            Image.new("RGB", (8, 8)).save(image)
            for argv in (["eval", str(path)], ["bench", str(path)],
                         ["upscale", "--model", str(path), str(image), str(work / "o.png")]):
                cases.append((f"{name}_{argv[0]}", argv, f"{path}: holds custom op(s) "
                                                         "FlexWriteFile"))
            cases.append((f"{name}_import", ["import", str(path), "--model", "abpn", "--out",
                                             out], f"{path}: {REFUSAL[f'{name}_import']}"))
        else:
            cases.append((name, ["import", str(path), "--model", "abpn", "--out", out],
                          REFUSAL.get(name, str(path))))
    return cases


def run_measured(argv: list[str], cwd: Path) -> dict:
    """Run ``mai-sr ARGV`` alone and measure it: exit code, stderr, wall and CPU time, and peak
    resident memory (the child's own rusage, from wait4); killed after CASE_TIMEOUT_S."""
    import threading

    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    load = os.getloadavg()[0]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "mai_sr", *argv], cwd=cwd, env=env,
                                stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        timer = threading.Timer(CASE_TIMEOUT_S, proc.kill)
        timer.start()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        timer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    return {"exit": proc.returncode, "stdout": stdout, "stderr": stderr,
            "wall_s": round(wall, 2), "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
            "peak_mb": round(usage.ru_maxrss / 1024), "timed_out": wall >= CASE_TIMEOUT_S,
            "load_avg": round(load, 2)}


def check_case(name: str, argv: list[str], expect: str, run: dict, markers: Path) -> list[str]:
    bad = []
    lines = [line for line in run["stderr"].splitlines() if line.strip()]
    if run["timed_out"]:
        bad.append(f"no answer within {CASE_TIMEOUT_S} s")
    elif run["exit"] < 0:
        bad.append(f"killed by signal {-run['exit']} (a crash)")
    elif run["exit"] != 2:
        bad.append(f"exit {run['exit']}, not 2")
    if "Traceback" in run["stderr"] + run["stdout"]:
        bad.append("a traceback")
    if len(lines) != 1 or not lines[0].startswith(f"mai-sr {argv[0]}: error: "):
        bad.append(f"{len(lines)} stderr lines, not one `mai-sr {argv[0]}: error:` line: "
                   f"{lines[:3]}")
    elif expect not in lines[0] or str(argv[1] if argv[0] != "upscale" else argv[2]) \
            not in lines[0]:
        bad.append(f"the line does not name the file and say {expect!r}")
    written = sorted(p.name for p in markers.iterdir())
    if written:
        bad.append(f"code in the file ran: marker(s) {written} written")
        for marker in markers.iterdir():
            marker.unlink()
    if name.startswith("unknown_"):
        limit, idle = UNKNOWN_ARCHITECTURE_LIMIT_S, run["load_avg"] <= os.cpu_count()
        if run["cpu_s"] > limit or (idle and run["wall_s"] > limit):
            bad.append(f"answered in {run['wall_s']} s ({run['cpu_s']} s CPU), over {limit} s")
    limit = TF_MEMORY_LIMIT_MB if name in FITTED else STRUCTURE_MEMORY_LIMIT_MB
    if run["peak_mb"] > limit:
        bad.append(f"peak memory {run['peak_mb']} MB, over {limit} MB")
    return bad


def hostile_inputs(work: Path) -> dict:
    """Each hostile file through the commands that read it, one process at a time."""
    files, markers, outs = work / "hostile" / "files", work / "hostile" / "markers", \
        work / "hostile" / "out"
    for folder in (files, markers, outs):
        folder.mkdir(parents=True)
    cases, findings = [], {}
    for name, argv, expect in hostile_cases(hostile_files(files, markers), outs):
        run = run_measured(argv, cwd=work)
        bad = check_case(name, argv, expect, run, markers)
        lines = [line for line in run["stderr"].splitlines() if line.strip()]
        cases.append({"case": name, "command": argv[0], "exit": run["exit"],
                      "line": lines[-1] if lines else "", "wall_s": run["wall_s"],
                      "cpu_s": run["cpu_s"], "peak_mb": run["peak_mb"],
                      "load_avg": run["load_avg"]})
        if bad:
            findings[name] = bad
    leftovers = sorted(p.name for p in outs.iterdir() if p.name.endswith((".h5", ".json")))
    if leftovers:
        findings["outputs"] = [f"refused imports left files: {leftovers}"]
    return {"cases": cases, "findings": findings,
            "limits": {"unknown_architecture_s": UNKNOWN_ARCHITECTURE_LIMIT_S,
                       "peak_memory_mb": STRUCTURE_MEMORY_LIMIT_MB,
                       "peak_memory_mb_fitted": TF_MEMORY_LIMIT_MB, "timeout_s": CASE_TIMEOUT_S}}


PASSES = ("hostile", "train", "export", "import")


def run_passes(work: Path, passes: set[str], resume_all: bool, jobs: int) -> dict:
    """The hostile cases first, alone (their times are measured); then the writes."""
    result = {}
    if "hostile" in passes:
        started = time.perf_counter()
        result["hostile"] = hostile_inputs(work)
        result["hostile"]["wall_s"] = round(time.perf_counter() - started, 1)
    if "export" in passes:
        passes.add("train")  # the first export is of the training run
    train = train_faults(work, resume_all, jobs) if "train" in passes else None
    # The resumes, the export and the import are independent: run them side by side.
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        resumes = resume_faults(work, train.pop("chosen"), pool) if train else []
        export = (pool.submit(export_faults, work, work / "train" / "runs" / "run")
                  if "export" in passes else None)
        imported = pool.submit(import_faults, work, pool) if "import" in passes else None
        if train:
            train["resumed"] = len(resumes)
            for future in resumes:
                name, bad = future.result()
                if bad:
                    train["findings"].setdefault(name, []).extend(bad)
            result["train"] = train
        if export:
            result["export"] = export.result()
        if imported:
            result["import"] = imported.result()
    return result


def report(result: dict) -> int:
    """Print what was checked and every violation; the number of bad states and cases."""
    bad = 0
    for what in ("train", "export", "import"):
        r = result.get(what)
        if r is None:
            continue
        if "skipped" in r:
            print(f"{what}: skipped ({r['skipped']})")
            continue
        print(f"{what}: {r['writes']} writes, {r['states_checked']} states checked"
              + (f", {r['resumed']} resumed" if "resumed" in r else "")
              + (f", {r['later_imports']} imported again" if "later_imports" in r else "")
              + f": {len(r['findings'])} bad")
        for state, lines in r["findings"].items():
            for line in lines:
                print(f"  {state}: {line}")
        bad += len(r["findings"])
    if "hostile" in result:
        r = result["hostile"]
        print(f"hostile inputs: {len(r['cases'])} cases in {r['wall_s']} s: "
              f"{len(r['findings'])} bad")
        print(f"  {'case':<22} {'command':<8} exit  wall s  cpu s  peak MB  load")
        for case in r["cases"]:
            print(f"  {case['case']:<22} {case['command']:<8} {case['exit']:>4} "
                  f"{case['wall_s']:>7} {case['cpu_s']:>6} {case['peak_mb']:>8} "
                  f"{case['load_avg']:>5}")
        for case, lines in r["findings"].items():
            for line in lines:
                print(f"  {case}: {line}")
        bad += len(r["findings"])
    return bad


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", help="work folder to keep (default: a temp folder)")
    parser.add_argument("--resume-all", action="store_true",
                        help="resume from every state, not only around the stage ends")
    parser.add_argument("--only", help=f"comma-separated passes of {', '.join(PASSES)} "
                                       "(default: all; a partial run writes no results)")
    parser.add_argument("--jobs", type=int, default=len(os.sched_getaffinity(0)))
    add_write_readme(parser)
    args = parser.parse_args(argv)
    passes = set(args.only.split(",")) if args.only else set(PASSES)
    if passes - set(PASSES):
        parser.error(f"--only: choose from {', '.join(PASSES)}")
    sys.path.insert(0, str(ROOT))
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="mai-sr-faults-"))
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    try:
        result = run_passes(work, passes, args.resume_all, args.jobs)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    result["wall_s"] = round(time.perf_counter() - started, 1)
    # CPU time of the script and every process it ran: the wall time's floor on this many
    # cores, whatever else loads the machine.
    usage = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    result["cpu_s"] = round(sum(u.ru_utime + u.ru_stime for u in usage), 1)
    result["load_avg_5min"] = round(os.getloadavg()[1], 2)
    bad = report(result)
    print(f"wall time {result['wall_s']} s ({result['cpu_s']} s CPU; load {result['load_avg_5min']}"
          f" over 5 minutes on {os.cpu_count()} cores)")
    if args.only:
        print("a partial run: benchmarks/results/faults.json not written")
    else:
        publish("faults", result)
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
