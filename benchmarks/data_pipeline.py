"""Is the training input pipeline free? Training-step rate with the real tf.data pipeline
divided by the rate with one constant in-memory batch (target >= 0.9).

ABPN (``mai_sr.models.create_model('abpn')``; a plain 7-conv 28-channel net of the same
shapes if the models package is unavailable), batch 16, LR patch 64, L1 loss, Adam. Data:
T91 from ``../shared/data`` (or ``$MAI_SR_DATA``), else the builtin photos. The two loops
alternate in short rounds so that load from other processes hits both alike; the figure is
the median of the per-round ratios. Process CPU time per step (all threads) is reported
too: it is the pipeline's own cost, whatever else runs on the machine.

    python benchmarks/data_pipeline.py [--rounds 40] [--steps 2] [--data DIR|builtin]

Prints the ratio, writes ``benchmarks/results/data_pipeline.json`` and rewrites the results
table in the README's ``data`` section.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import time
import warnings
from pathlib import Path

from mai_sr import data
from mai_sr.train import dataset

from _publish import add_write_readme, publish

ROOT = Path(__file__).resolve().parents[1]
TARGET = 0.9


def default_data() -> str:
    shared = Path(os.environ.get("MAI_SR_DATA", ROOT.parent / "shared" / "data"))
    return str(shared / "T91") if (shared / "T91").is_dir() else "builtin"


def build_model(keras):
    """ABPN from the model registry, or the same-shaped plain stand-in."""
    try:
        from mai_sr.models import create_model

        return create_model("abpn"), "abpn"
    except Exception as exc:  # the registry is optional here: any failure means "stand-in"
        print(f"(models.create_model('abpn') unavailable: {type(exc).__name__}; "
              "using a plain 7-conv 28-channel net)")
    conv = lambda c, act="relu": keras.layers.Conv2D(c, 3, padding="same", activation=act)  # noqa: E731
    inp = keras.Input((None, None, 3))
    x = conv(28)(inp)
    for _ in range(4):
        x = conv(28)(x)
    x = conv(27)(x)
    x = conv(27, None)(x)
    x = keras.layers.Lambda(lambda t: keras.backend.clip(t, 0.0, 255.0))(x)
    out = keras.layers.Lambda(lambda t: __import__("tensorflow").nn.depth_to_space(t, 3))(x)
    return keras.Model(inp, out), "plain-7conv-28ch"


def run(source: str, rounds: int, steps: int, batch: int, patch: int) -> dict:
    from mai_sr._tf import keras, tf

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pairs = data.load_pairs(source, min_lr_size=patch)
    print(f"data: {source}: {len(pairs)} images ({len(caught)} smaller than a {patch}px "
          "LR patch skipped)")

    model, model_name = build_model(keras)
    optimizer = keras.optimizers.Adam(1e-4)

    @tf.function
    def train_step(lr, hr):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.abs(model(lr, training=True) - hr))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    batches = iter(dataset.make_train_dataset(pairs, patch=patch, batch=batch, seed=0))
    const_lr, const_hr = next(batches)

    def pipeline_loop(n):
        for _ in range(n):
            lr, hr = next(batches)
            loss = train_step(lr, hr)
        return float(loss)  # waits for the last step

    def constant_loop(n):
        for _ in range(n):
            loss = train_step(const_lr, const_hr)
        return float(loss)

    loops = {"pipeline": pipeline_loop, "constant": constant_loop}
    wall = {name: [] for name in loops}
    cpu = {name: [] for name in loops}
    pipeline_loop(3)  # trace and warm up both paths
    constant_loop(3)
    for r in range(rounds):
        # Short alternating chunks, first one then the other, so that load from other
        # processes (it changes over seconds) falls on both loops alike.
        for name in (("pipeline", "constant") if r % 2 else ("constant", "pipeline")):
            w0, c0 = time.perf_counter(), time.process_time()
            loops[name](steps)
            wall[name].append(time.perf_counter() - w0)
            cpu[name].append(time.process_time() - c0)
        if (r + 1) % max(1, rounds // 5) == 0 or r + 1 == rounds:
            print(f"round {r + 1}/{rounds}: pipeline {steps * (r + 1) / sum(wall['pipeline']):.2f} "
                  f"steps/s, constant batch {steps * (r + 1) / sum(wall['constant']):.2f} steps/s")

    n = steps * rounds
    rate = {name: n / sum(wall[name]) for name in loops}
    cpu_ms = {name: 1000 * sum(cpu[name]) / n for name in loops}
    # Each round pairs the two loops a second apart: the median of the paired ratios shrugs
    # off the bursts of other jobs that the ratio of total rates takes in whole.
    paired = sorted(c / p for c, p in zip(wall["constant"], wall["pipeline"]))
    return {
        "ratio": statistics.median(paired),
        "ratio_of_totals": rate["pipeline"] / rate["constant"],
        "paired_ratio_quartiles": [paired[len(paired) // 4], paired[3 * len(paired) // 4]],
        "target": TARGET,
        "pipeline_steps_per_s": rate["pipeline"],
        "constant_steps_per_s": rate["constant"],
        "cpu_ms_per_step": cpu_ms,
        "cpu_ratio": cpu_ms["constant"] / cpu_ms["pipeline"],
        "rounds": rounds,
        "steps_per_round": steps,
        "model": model_name,
        "data": source if source == "builtin" else Path(source).name,
        "images": len(pairs),
        "skipped_small": len(caught),
        "batch": batch,
        "patch": patch,
        "machine": {"cpus": os.cpu_count(), "load_avg_1min": os.getloadavg()[0],
                    "python": platform.python_version(), "tensorflow": tf.__version__},
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def readme_table(result: dict) -> str:
    verdict = "meets" if result["ratio"] >= result["target"] else "misses"
    m, cpu = result["machine"], result["cpu_ms_per_step"]
    q1, q3 = result["paired_ratio_quartiles"]
    return "\n".join([
        "| model | data | batch × LR patch | real pipeline | one constant batch | ratio "
        "(median) | CPU-time ratio |",
        "|---|---|---|---|---|---|---|",
        f"| {result['model']} | {result['data']} ({result['images']} images) | "
        f"{result['batch']} × {result['patch']}² | "
        f"{result['pipeline_steps_per_s']:.2f} steps/s | "
        f"{result['constant_steps_per_s']:.2f} steps/s | **{result['ratio']:.3f}** | "
        f"{result['cpu_ratio']:.3f} |",
        "",
        f"{result['rounds']} alternating rounds of {result['steps_per_round']} steps per loop. "
        f"The ratio is the median of the per-round ratios (quartiles {q1:.2f} and {q3:.2f}; "
        f"ratio of the total rates {result['ratio_of_totals']:.3f}). CPU time per step (all "
        "threads, unaffected by other jobs): "
        f"{cpu['pipeline']:.0f} ms with the pipeline, {cpu['constant']:.0f} ms with the constant "
        f"batch (ratio {result['cpu_ratio']:.3f}). {m['cpus']} CPUs shared with other jobs "
        f"(1-min load {m['load_avg_1min']:.1f}), TF {m['tensorflow']}, {result['date'][:10]}. "
        f"It {verdict} the ≥ {result['target']} target. Written by "
        "`benchmarks/data_pipeline.py`.",
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=default_data())
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--steps", type=int, default=2, help="steps per loop per round")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--patch", type=int, default=64)
    parser.add_argument("--no-write", action="store_true", help="print only")
    add_write_readme(parser)
    args = parser.parse_args()
    result = run(args.data, args.rounds, args.steps, args.batch, args.patch)
    print(f"data pipeline ratio: {result['ratio']:.3f} (target >= {TARGET})")
    if not args.no_write:
        publish("data_pipeline", result, readme_table(result), write_readme=args.write_readme)


if __name__ == "__main__":
    main()
