"""Time a .tflite model on this machine with the LiteRT interpreter, the way TFLite's
`benchmark_model` does: warm-up runs, then timed runs until at least `min_runs` runs AND
`min_seconds` seconds have passed (but never past `max_seconds`), on random input.

XNNPACK is LiteRT's default CPU delegate; `xnnpack=False` runs the built-in kernels instead.
"""

from __future__ import annotations

import os
import platform
import resource
import statistics
import time
from importlib import metadata
from pathlib import Path

import numpy as np
from ai_edge_litert.interpreter import Interpreter, OpResolverType
from tqdm import tqdm

from mai_sr.challenge import graph_timing_input
from mai_sr.device.base import check_model_file
from mai_sr.errors import MaiSrError, first_line
from mai_sr.results import BenchResult
from mai_sr.tflite.graph import check_builtin_only, read_graph
from mai_sr.tflite.runtime import quiet_delegate_notice


def cpu_model() -> str:
    """CPU name from /proc/cpuinfo ("model name" on x86, "Hardware"/"Processor" on ARM)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine()
    for key in ("model name", "Hardware", "Processor", "cpu model"):
        for line in text.splitlines():
            if line.split(":")[0].strip() == key and ":" in line:
                return line.split(":", 1)[1].strip()
    return platform.machine()


def _status_kb(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak_rss() -> bool:
    """Restart the kernel's peak-RSS counter (VmHWM) so the peak covers only the benchmark.

    Writing "5" to /proc/self/clear_refs does that on Linux >= 4.0; elsewhere the peak is
    the whole process's.
    """
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _peak_rss_mb() -> float:
    hwm = _status_kb("VmHWM")
    if hwm is not None:
        return hwm / 1024.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def _delegate_coverage(interpreter, name: str) -> dict:
    """How much of the graph the delegate took, as benchmark_model reports it.

    LiteRT lists the model's nodes followed by one DELEGATE node per delegated partition,
    but not the execution plan. The plan is recovered by walking back from the graph outputs:
    a tensor is produced by the DELEGATE node that outputs it if there is one, else by its
    original node; original nodes never reached were absorbed into a delegate partition.
    """
    ops = interpreter._get_ops_details()
    kernels = [op for op in ops if op["op_name"] == "DELEGATE"]
    originals = [op for op in ops if op["op_name"] != "DELEGATE"]
    producer = {}
    for op in originals + kernels:  # delegate kernels override the nodes they replaced
        for t in op["outputs"]:
            producer[int(t)] = op["index"]
    by_index = {op["index"]: op for op in ops}
    executed, todo = set(), [int(d["index"]) for d in interpreter.get_output_details()]
    while todo:
        node = producer.get(todo.pop())
        if node is None or node in executed:
            continue
        executed.add(node)
        todo.extend(int(t) for t in by_index[node]["inputs"] if int(t) >= 0)
    delegated = sum(1 for op in originals if op["index"] not in executed)
    fully = bool(kernels) and delegated == len(originals) and len(executed) == 1
    return {"name": name, "fully_delegated": fully, "delegated_nodes": delegated,
            "total_nodes": len(originals), "kernels": len(kernels)}


def _random_input(detail: dict, rng: np.random.Generator) -> np.ndarray:
    dtype, shape = np.dtype(detail["dtype"]), tuple(detail["shape"])
    if dtype == np.uint8:
        return rng.integers(0, 256, shape, dtype=np.uint8)
    if dtype == np.int8:
        return rng.integers(-128, 128, shape, dtype=np.int8)
    return rng.uniform(0, 255, shape).astype(dtype)


class LocalRunner:
    """LiteRT on this machine's CPU. See the module docstring for the timing rules."""

    name = "local"

    def __init__(self, threads: int = 2, min_runs: int = 50, min_seconds: float = 1.0,
                 warmup_runs: int = 1, warmup_min_seconds: float = 0.5,
                 max_seconds: float = 150.0, shape: tuple[int, int] | None = None,
                 xnnpack: bool = True, seed: int = 0):
        """`shape` (LR HxW) is used only for models with a dynamic input size; None: the
        model's scale's timing input (360x640 at x3, :func:`mai_sr.challenge.timing_input`).
        `warmup_runs=0` skips warm-up entirely (benchmark_model would still warm up for
        `warmup_min_seconds`)."""
        if min_runs < 1 or max_seconds <= 0:
            raise MaiSrError(f"the local runner needs at least one timed run (min_runs="
                             f"{min_runs}, max_seconds={max_seconds})")
        self.threads = threads
        self.min_runs = min_runs
        self.min_seconds = min_seconds
        self.warmup_runs = warmup_runs
        self.warmup_min_seconds = warmup_min_seconds if warmup_runs else 0.0
        self.max_seconds = max_seconds
        self.shape = shape
        self.xnnpack = xnnpack
        self.seed = seed

    def _load(self, path: Path):
        resolver = (OpResolverType.AUTO if self.xnnpack
                    else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
        graph = read_graph(path)
        check_builtin_only(graph)
        try:
            interpreter = Interpreter(model_path=str(path), num_threads=self.threads,
                                      experimental_op_resolver_type=resolver)
            for detail in interpreter.get_input_details():
                signature = list(detail["shape_signature"])
                if -1 in signature[1:3]:
                    shape = self.shape or graph_timing_input(graph)
                    interpreter.resize_tensor_input(
                        detail["index"], [1, *shape, signature[3]], strict=False)
            with quiet_delegate_notice():
                interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            reason = first_line(exc)
            raise MaiSrError(f"{path}: LiteRT cannot load this model: {reason}") from None
        rng = np.random.default_rng(self.seed)
        for detail in interpreter.get_input_details():
            interpreter.set_tensor(detail["index"], _random_input(detail, rng))
        return interpreter

    def _run(self, interpreter, min_runs: int, min_seconds: float, label: str) -> list[float]:
        """Invoke until min_runs AND min_seconds are reached (or max_seconds); times in ms."""
        times: list[float] = []
        start = time.perf_counter()
        deadline, limit = start + min_seconds, start + self.max_seconds
        with tqdm(total=min_runs, desc=label, unit="run", leave=False, disable=None) as bar:
            now = start
            while (len(times) < min_runs or now < deadline) and now <= limit:
                t0 = time.perf_counter_ns()
                interpreter.invoke()
                times.append((time.perf_counter_ns() - t0) / 1e6)
                bar.update(1)
                now = time.perf_counter()
        return times

    def bench(self, model_path) -> BenchResult:
        """Benchmark one model; raises MaiSrError if it is missing or LiteRT rejects it."""
        path = check_model_file(model_path)
        peak_is_local = _reset_peak_rss()
        t0 = time.perf_counter()
        interpreter = self._load(path)
        init_ms = (time.perf_counter() - t0) * 1e3
        warmup = self._run(interpreter, self.warmup_runs, self.warmup_min_seconds, "warmup")
        timed = self._run(interpreter, self.min_runs, self.min_seconds, "timed runs")
        first = (warmup or timed)[0]
        inp = interpreter.get_input_details()[0]
        notes = [f"random {np.dtype(inp['dtype']).name} input {'x'.join(map(str, inp['shape']))}"]
        if not peak_is_local:
            notes.append("peak memory is the whole process's (VmHWM could not be reset)")
        delegate = (_delegate_coverage(interpreter, "XNNPACK") if self.xnnpack
                    else {"name": None, "fully_delegated": False, "delegated_nodes": 0,
                          "kernels": 0})
        return BenchResult(
            runner=self.name, model=str(path), avg_ms=statistics.fmean(timed),
            device=self.device_facts(), init_ms=init_ms, first_ms=first,
            warmup_avg_ms=statistics.fmean(warmup) if warmup else None,
            median_ms=statistics.median(timed), min_ms=min(timed), max_ms=max(timed),
            std_ms=statistics.pstdev(timed), count=len(timed), peak_memory_mb=_peak_rss_mb(),
            delegate=delegate, notes=notes)

    def device_facts(self) -> dict:
        try:
            litert = metadata.version("ai-edge-litert")
        except metadata.PackageNotFoundError:  # e.g. a source build: the version is a label
            litert = "unknown"
        return {"hostname": platform.node(), "cpu": cpu_model(), "cores": os.cpu_count(),
                "os": f"{platform.system()} {platform.release()}", "arch": platform.machine(),
                "threads": self.threads, "runtime": f"ai-edge-litert {litert}"}
