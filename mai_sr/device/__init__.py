"""Runners: time a .tflite model on this machine (LiteRT), on Android devices over adb
(`benchmark_model`), or on the simulated Synaptics VS680 NPU.

    runner = get_runner("local", threads=2)
    result = runner.bench("model.tflite")        # -> BenchResult

Adding a runner means adding a module with a class that follows `Runner` and one line in
`RUNNERS`. Modules are imported only when their runner is asked for, and none imports
TensorFlow.
"""

from __future__ import annotations

import importlib
import inspect
import json

from mai_sr.device.base import (BENCH_RESULT_SCHEMA, Runner, format_result,  # noqa: F401
                                results_to_json)
from mai_sr.errors import MaiSrError
from mai_sr.tflite.artifacts import model_file
from mai_sr.results import BenchResult

# name -> "module:Class"
RUNNERS = {
    "local": "mai_sr.device.local:LocalRunner",
    "adb": "mai_sr.device.adb:AdbRunner",
    "synap": "mai_sr.device.synap:SynapRunner",
}


def list_runners() -> list[str]:
    """Names `get_runner` accepts."""
    return sorted(RUNNERS)


def runner_class(name: str) -> type:
    """The class registered under `name` (imported on demand)."""
    if name not in RUNNERS:
        raise MaiSrError(f"unknown runner {name!r}; choose from {', '.join(list_runners())}")
    module_name, class_name = RUNNERS[name].split(":")
    return getattr(importlib.import_module(module_name), class_name)


def get_runner(name: str, **options) -> Runner:
    """Build the runner `name` with the options its constructor accepts.

    The CLI has one set of flags for all runners (threads, runs, adb serial...); each runner
    takes the subset it understands, so the others are dropped here rather than failing.
    Options that are None mean "runner default" and are dropped too.
    """
    cls = runner_class(name)
    params = inspect.signature(cls).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    accepted = {k: v for k, v in options.items()
                if v is not None and (takes_any or k in params)}
    return cls(**accepted)



def _options_from_args(args) -> dict:
    """CLI namespace -> runner keyword options (one vocabulary for all runners)."""
    return {
        "threads": args.threads,
        "min_runs": args.runs,
        "warmup_runs": args.warmup,
        "min_seconds": args.min_seconds,
        "adb": args.adb,
        "serial": args.serial,
        "benchmark_binary": args.benchmark_binary,
        "delegate": args.delegate,
        "nnapi_accelerator": args.nnapi_accelerator,
        "op_profiling": args.op_profiling or None,
        "report_memory": args.memory or None,
    }


def bench(model_path, runner: str = "local", **options) -> BenchResult | list[BenchResult]:
    """Benchmark one model on the named runner (library entry point of `mai-sr bench`)."""
    return get_runner(runner, **options).bench(model_path)


def bench_cli(args) -> int:
    """`mai-sr bench`: run, then print a summary (or `--json`).

    Exit code 0, or 1 when a multi-device run had a device fail (its error is in the output).
    """
    model = model_file(args.model, args.pretrained, "fixed")
    runner = get_runner(args.runner, **_options_from_args(args))
    results = runner.bench(model)
    listed = results if isinstance(results, list) else [results]
    if args.json:
        print(json.dumps(results_to_json(results), indent=2, sort_keys=True))
    else:
        fmt = getattr(runner, "format_result", format_result)
        print("\n\n".join(fmt(r) for r in listed))
    return 1 if any(r.error for r in listed) else 0
