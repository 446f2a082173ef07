"""Local CPU runtime vs the simulated VS680 NPU runtime of the four architectures.

Each model is the deploy graph of ``create_model(name, deploy=True)`` with Keras' random
initial weights, exported by ``mai_sr.export.convert.export`` exactly as ``mai-sr export
--model NAME --weights W`` does: full INT8, uint8 1x360x640x3 in, 1x1080x1920x3 out,
post-training calibration on ``--calib`` crops of the builtin photos. Every file is then
benchmarked by two runners through ``mai_sr.device.get_runner``:

- ``local``: LiteRT on this machine's CPU (XNNPACK, ``--threads`` threads, benchmark_model
  timing rules: at least ``--runs`` runs and ``--min-seconds`` seconds);
- ``synap``: the VS680 NPU cost model (an estimate, see the SyNAP section of the README).

The CPU/NPU speed-up sits beside the published one (MAI 2022 challenge report, Table 1:
VS680 CPU and NPU runtimes). Random weights change no shapes, so runtimes are those of trained models.

    python benchmarks/runners.py [--threads 2] [--runs 20] [--min-seconds 2] [--calib 8]
    python benchmarks/runners.py --resimulate [--write-readme]   # SyNAP column only

Prints the table, writes ``benchmarks/results/runners.json`` and rewrites the table in the
README's ``bench`` section.
"""

from __future__ import annotations

import argparse
import datetime
import os
import tempfile
from pathlib import Path

from tqdm import tqdm

from mai_sr.device import get_runner
from mai_sr.published import for_architecture

from _publish import add_write_readme, publish

MODELS = ("abpn", "scsrn", "ncnet", "xcat")


def export_random_model(name: str, out_dir: Path, calib: int) -> Path:
    """INT8 1x360x640x3 TFLite of `name`'s deploy graph with random initial weights."""
    from mai_sr.export.convert import export
    from mai_sr.models import create_model

    weights = out_dir / f"{name}.weights.h5"
    create_model(name, deploy=True).save_weights(str(weights))
    return export(out_dir / f"{name}.tflite", model=name, weights=weights, calib_n=calib)[0]


def bench_model(name: str, args, out_dir: Path) -> dict:
    path = export_random_model(name, out_dir, args.calib)
    local = get_runner("local", threads=args.threads, min_runs=args.runs,
                       min_seconds=args.min_seconds).bench(path)
    npu = get_runner("synap").bench(path)
    published = for_architecture(name)
    return {
        "file_kb": path.stat().st_size / 1024,
        "local": local.to_dict(),
        "synap": {k: v for k, v in npu.to_dict().items() if k != "layers"},
        "cpu_ms": local.avg_ms, "cpu_median_ms": local.median_ms, "npu_ms": npu.avg_ms,
        "speedup": local.avg_ms / npu.avg_ms,
        "published": {"cpu_ms": published.cpu_ms, "npu_ms": published.npu_ms,
                      "speedup": published.speedup, "team": published.team},
    }


def run(args) -> dict:
    models = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in tqdm(MODELS, desc="models", unit="model"):
            r = models[name] = bench_model(name, args, Path(tmp))
            tqdm.write(f"{name}: local {r['cpu_ms']:.1f} ms, SyNAP (simulated) "
                       f"{r['npu_ms']:.1f} ms, speed-up {r['speedup']:.1f}")
    device = next(iter(models.values()))["local"]["device"]
    return {"models": models, "input": [1, 360, 640, 3], "threads": args.threads,
            "min_runs": args.runs, "min_seconds": args.min_seconds,
            "calibration_crops": args.calib,
            "machine": {"cpu": device["cpu"], "cores": device["cores"],
                        "runtime": device["runtime"], "load_avg_1min": os.getloadavg()[0]},
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}


def resimulate(args) -> dict:
    """The stored result with the SyNAP column recomputed by today's simulator (after a
    recalibration): the same exports, timed by ``--runner synap`` only. The local CPU
    figures stay as measured (a loaded machine would only make them worse)."""
    import json

    from _publish import result_path

    result = json.loads(result_path("runners").read_text())
    with tempfile.TemporaryDirectory() as tmp:
        for name in tqdm(MODELS, desc="models", unit="model"):
            npu = get_runner("synap").bench(export_random_model(name, Path(tmp), args.calib))
            r = result["models"][name]
            tqdm.write(f"{name}: SyNAP (simulated) {r['npu_ms']:.1f} -> {npu.avg_ms:.1f} ms")
            r["synap"] = {k: v for k, v in npu.to_dict().items() if k != "layers"}
            r["npu_ms"], r["speedup"] = npu.avg_ms, r["cpu_ms"] / npu.avg_ms
    result["synap_resimulated"] = datetime.date.today().isoformat()
    return result


def readme_table(result: dict) -> str:
    m = result["machine"]
    rows = ["| model | local CPU ms (median) | VS680 NPU ms, simulated | CPU / NPU | "
            "published VS680: CPU ms, NPU ms, speed-up |", "|---|---|---|---|---|"]
    for name in MODELS:  # also when read back from the (key-sorted) JSON
        r = result["models"][name]
        p = r["published"]
        rows.append(f"| {name} | {r['cpu_ms']:.1f} ({r['cpu_median_ms']:.1f}) | "
                    f"{r['npu_ms']:.1f} | **{r['speedup']:.1f}** | "
                    f"{p['cpu_ms']:g}, {p['npu_ms']:g}, {p['speedup']:g} ({p['team']}) |")
    return "\n".join([
        *rows, "",
        f"Local: mean (median) of at least {result['min_runs']} runs and "
        f"{result['min_seconds']:g} s, {result['threads']} threads, {m['runtime']}, "
        f"{m['cpu']} ({m['cores']} cores shared with other jobs; 1-min load "
        f"{m['load_avg_1min']:.1f}), {result['date'][:10]}. INT8 exports of the deploy graphs "
        "with random weights at 1×360×640×3. Published: MAI 2022 challenge report, Table 1 "
        "(the VS680's own CPU, not this one). Written by `benchmarks/runners.py`"
        + (f"; SyNAP column re-simulated {result['synap_resimulated']} after the simulator's "
           "recalibration (`--resimulate`)." if result.get("synap_resimulated") else ".")])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=20, help="minimum timed runs")
    parser.add_argument("--min-seconds", type=float, default=2.0)
    parser.add_argument("--calib", type=int, default=8, help="calibration crops")
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument("--resimulate", action="store_true",
                        help="only recompute the SyNAP column of the stored result")
    add_write_readme(parser)
    args = parser.parse_args()
    result = resimulate(args) if args.resimulate else run(args)
    table = readme_table(result)
    print(table)
    if not args.no_write:
        publish("runners", result, table, write_readme=args.write_readme)


if __name__ == "__main__":
    main()
