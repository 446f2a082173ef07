"""Runners: time a .tflite model on this machine (LiteRT), on Android devices over adb
(`benchmark_model`), or on the simulated Synaptics VS680 NPU.

    runner = get_runner("local", threads=2)
    result = runner.bench("model.tflite")        # -> BenchResult

Adding a runner means adding a module with a class that follows `Runner` and one line in
`RUNNERS`: `mai-sr bench --runner` and `mai-sr report --runner` take their choices from it,
and the runner's own `add_cli_options(group)` (see `Runner`) puts its options in `mai-sr
bench --help` and `mai-sr report --help` (:mod:`mai_sr.device.options`). Modules are imported only when their runner (or `bench`'s parser) asks for
them, and none imports TensorFlow.
"""

from __future__ import annotations

import importlib
import inspect

from mai_sr.device.base import (BENCH_RESULT_SCHEMA, Runner, format_result,  # noqa: F401
                                results_to_json)
from mai_sr.errors import MaiSrError

# name -> "module:Class"
RUNNERS = {
    "local": "mai_sr.device.local:LocalRunner",
    "adb": "mai_sr.device.adb:AdbRunner",
    "synap": "mai_sr.device.synap:SynapRunner",
    "sim": "mai_sr.device.estimate:SimRunner",
    "vela": "mai_sr.device.vela:VelaRunner",
}


def list_runners() -> list[str]:
    """Names `get_runner` accepts."""
    return sorted(RUNNERS)


def runner_class(name: str) -> type:
    """The class registered under `name` (imported on demand).

    A runner whose module cannot be imported (an optional dependency is missing) raises
    MaiSrError saying so.
    """
    if name not in RUNNERS:
        raise MaiSrError(f"unknown runner {name!r}; choose from {', '.join(list_runners())}")
    module_name, class_name = RUNNERS[name].split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise MaiSrError(f"runner {name!r} is unavailable: {exc}") from None
    return getattr(module, class_name)


def get_runner(name: str, **options) -> Runner:
    """Build the runner `name` with the options its constructor accepts.

    `mai-sr bench` passes all its parsed options (`**vars(args)`): the shared ones (threads,
    min_runs, ...) and every runner's own; each runner takes the keywords its constructor
    accepts, so the others are dropped here rather than failing. Options that are None mean
    "runner default" and are dropped too.
    """
    cls = runner_class(name)
    params = inspect.signature(cls).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    accepted = {k: v for k, v in options.items()
                if v is not None and (takes_any or k in params)}
    return cls(**accepted)
