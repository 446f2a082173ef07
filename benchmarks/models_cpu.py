"""How fast are the four architectures on a CPU, INT8 vs FP32? (A speed check of the
architectures, not of trained models: weights are Keras' random initialisation.)

Each deploy graph (``create_model(name, deploy=True)`` at a fixed 1x360x640x3 input) is
converted twice with the TFLite converter: FP32, and full INT8 (uint8 input and output) after
a quick calibration on random uint8 images. Both are timed with LiteRT
(``ai_edge_litert.interpreter.Interpreter``, 2 threads) on one 360x640 image, in rounds
over all models and both precisions so that load from other processes hits all alike; the
figure is the median of all timed runs. The script also profiles every model
(``mai_sr.profile``) at 360x640.

    python benchmarks/models_cpu.py [--rounds 5] [--runs 3] [--calib 8] [--threads 2]

Prints the tables, writes ``benchmarks/results/models_cpu.json`` and rewrites the tables in
the README's ``models`` section.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from mai_sr.published import for_architecture

from _publish import add_write_readme, publish

MODELS = ("abpn", "scsrn", "ncnet", "xcat")
SHAPE = (360, 640)


def convert(model, precision: str, calib: int) -> bytes:
    """FP32 or full-INT8 (uint8 IO, random-image calibration) TFLite bytes of ``model``."""
    from mai_sr._tf import tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if precision == "int8":
        rng = np.random.default_rng(0)

        def representative():
            for _ in range(calib):
                yield [rng.integers(0, 256, (1, *SHAPE, 3)).astype(np.float32)]

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.uint8
        converter.inference_output_type = tf.uint8
    return converter.convert()


def op_names(buf: bytes) -> list[str]:
    """Op names of a TFLite flatbuffer, in execution order (via mai_sr.tflite.graph)."""
    from mai_sr.tflite.graph import read_graph

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.tflite"
        path.write_bytes(buf)
        return [op.type for op in read_graph(path).ops]


class Timer:
    """One LiteRT interpreter with a fixed random input; ``run()`` times one invoke in ms."""

    def __init__(self, buf: bytes, threads: int):
        from ai_edge_litert.interpreter import Interpreter

        self.interpreter = Interpreter(model_content=buf, num_threads=threads)
        self.interpreter.allocate_tensors()
        detail = self.interpreter.get_input_details()[0]
        image = np.random.default_rng(1).integers(0, 256, detail["shape"])
        self.interpreter.set_tensor(detail["index"], image.astype(detail["dtype"]))

    def run(self) -> float:
        start = time.perf_counter()
        self.interpreter.invoke()
        return (time.perf_counter() - start) * 1e3


def prepare(name: str, args) -> dict:
    """Convert one deploy graph to FP32 and INT8, load both, profile it."""
    from mai_sr.models import create_model
    from mai_sr.profile import profile_model

    model = create_model(name, deploy=True, input_size=SHAPE)
    bufs = {p: convert(model, p, args.calib) for p in ("fp32", "int8")}
    timers = {p: Timer(buf, args.threads) for p, buf in bufs.items()}
    for timer in timers.values():
        timer.run()  # warm-up: the first invoke allocates and packs weights
    prof = profile_model(name, size=SHAPE)
    published = for_architecture(name)
    return {
        "timers": timers,
        "fp32_kb": len(bufs["fp32"]) / 1024, "int8_kb": len(bufs["int8"]) / 1024,
        "int8_ops": sorted(set(op_names(bufs["int8"]))),
        "profile_360x640": {k: v for k, v in prof.to_dict().items() if k != "layers"},
        "published": {"size_kb": published.size_kb, "psnr": published.psnr,
                      "npu_ms": published.npu_ms, "cpu_ms": published.cpu_ms},
    }


def run(args) -> dict:
    from mai_sr._tf import tf

    models = {name: prepare(name, args) for name in tqdm(MODELS, desc="convert", unit="model")}
    times = {name: {"fp32": [], "int8": []} for name in models}
    # Every round times every model at both precisions, so load changes hit all alike.
    for _ in tqdm(range(args.rounds), desc="time", unit="round"):
        for name, r in models.items():
            for p, timer in r["timers"].items():
                times[name][p] += [timer.run() for _ in range(args.runs)]
    for name, r in models.items():
        del r["timers"]
        ms = {p: statistics.median(t) for p, t in times[name].items()}
        r.update(fp32_ms=ms["fp32"], int8_ms=ms["int8"], int8_over_fp32=ms["int8"] / ms["fp32"],
                 times_ms=times[name])
        print(f"{name}: FP32 {r['fp32_ms']:.1f} ms, INT8 {r['int8_ms']:.1f} ms, "
              f"ratio {r['int8_over_fp32']:.2f}, INT8 {r['int8_kb']:.1f} KB")
    return {
        "models": models,
        "input": [1, *SHAPE, 3],
        "threads": args.threads, "rounds": args.rounds, "runs_per_round": args.runs,
        "calibration_images": args.calib,
        "machine": {"cpus": os.cpu_count(), "load_avg_1min": os.getloadavg()[0],
                    "python": platform.python_version(), "tensorflow": tf.__version__,
                    "processor": platform.processor() or platform.machine()},
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def readme_tables(result: dict) -> str:
    # MODELS order, also when read back from the (key-sorted) JSON
    models, m = [(name, result["models"][name]) for name in MODELS], result["machine"]
    speed = ["| model | FP32 ms | INT8 ms | INT8 / FP32 | INT8 file | published INT8 file, "
             "VS680 NPU ms |", "|---|---|---|---|---|---|"]
    speed += [f"| {name} | {r['fp32_ms']:.1f} | {r['int8_ms']:.1f} | "
              f"**{r['int8_over_fp32']:.2f}** | {r['int8_kb']:.1f} KB | "
              f"{r['published']['size_kb']} KB, {r['published']['npu_ms']} ms |"
              for name, r in models]
    prof = ["| model | params (+ frozen) | GMAC | activations | convs | peak memory INT8 / FP32 "
            "| INT8 weights |", "|---|---|---|---|---|---|---|"]
    for name, r in models:
        p = r["profile_360x640"]
        prof.append(f"| {name} | {p['params']:,} (+{p['frozen_params']}) | "
                    f"{p['macs'] / 1e9:.2f} | {p['activations'] / 1e6:.1f} M | {p['convs']} | "
                    f"{p['peak_bytes_int8'] / 1e6:.1f} / {p['peak_bytes_fp32'] / 1e6:.1f} MB | "
                    f"{p['int8_weight_bytes'] / 1024:.1f} KiB |")
    return "\n".join([
        "Efficiency profile of the deploy graphs at 360×640 LR (`mai-sr profile --model NAME "
        "--size 360x640`):",
        "",
        *prof,
        "",
        f"CPU speed on 1×{SHAPE[0]}×{SHAPE[1]}×3, LiteRT with {result['threads']} threads, "
        "random weights (INT8 calibrated on random images):",
        "",
        *speed,
        "",
        f"Median of {result['rounds']} alternating rounds × {result['runs_per_round']} runs; "
        f"{m['cpus']} CPUs ({m['processor']}) shared with other jobs (1-min load "
        f"{m['load_avg_1min']:.1f}), TF {m['tensorflow']}, {result['date'][:10]}. "
        "Published figures: MAI 2022 report, Table 1. Written by `benchmarks/models_cpu.py`.",
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--calib", type=int, default=8, help="random calibration images")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-write", action="store_true", help="print only")
    add_write_readme(parser)
    args = parser.parse_args()
    result = run(args)
    table = readme_tables(result)
    print(table)
    if not args.no_write:
        publish("models_cpu", result, table, write_readme=args.write_readme)


if __name__ == "__main__":
    main()
