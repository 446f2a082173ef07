"""Parse the text that TFLite's `benchmark_model` prints, into numbers.

The formats come from the TFLite sources (tensorflow/lite/tools/benchmark/benchmark_model.cc,
benchmark_tflite_model.cc, tensorflow/core/util/stats_calculator.{h,cc},
tensorflow/lite/profiling/profile_summary_formatter.cc) and from transcripts pasted in
public bug-tracker threads; `tests/fake_adb/transcripts/` holds examples with their sources.
Lines vary across versions and launchers, so each line is first stripped of its log
prefix (`INFO: `, `VERBOSE: `, or an Android logcat prefix) and then matched:

    Inference timings in us: Init: 66002, First inference: 637079, Warmup (avg): 1.59906e+06, Inference (avg): 1885.74
    count=520 first=2531 curr=2793 min=1171 max=9925 avg=1885.74 std=870 [p5=.. median=.. p95=..]
    count=1 curr=637079                                   (all runs the same)
    Memory footprint delta from the start of the tool (MB): init=7.40234 overall=7.83203
    Overall peak memory footprint (MB) via periodic monitoring: 12.3
    Peak memory footprint (MB): init=4.92969 overall=138.809      (older builds: max RSS)
    NNAPI accelerators available: [synap-npu,nnapi-reference]
    Replacing 31 out of 31 node(s) with delegate (TfLiteNnapiDelegate) node, yielding 1 partitions ...
    Explicitly applied NNAPI delegate, and the model graph will be completely executed by the delegate.
    Explicitly applied NNAPI delegate, and the model graph will be partially executed by the delegate w/ 2 delegate kernels.
    Though NNAPI delegate is explicitly applied, the model graph will not be executed by the delegate.

plus the op-profiling tables after "Operator-wise Profiling Info for Regular Benchmark Runs:"
(tab- or space-separated, with or without the older `[start]` column).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from mai_sr.errors import MaiSrError
from mai_sr.results import BenchResult

# nan and inf are matched too, so that a broken timing is seen and refused, not skipped
NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|[-+]?(?:nan|inf)"

# "05-31 10:31:13.022 21767 21767 I tflite  : " (logcat) or "INFO: " / "VERBOSE: " ...
_PREFIX = re.compile(r"^(?:\d\d-\d\d \d\d:\d\d:\d\d\.\d+\s+\d+\s+\d+\s+[VDIWEF]\s+[^:]*:\s?)?"
                     r"(?:(?:INFO|VERBOSE|WARNING|WARN|ERROR|DEBUG):\s)?")
_TIMINGS = re.compile(rf"^Inference timings in us: Init: ({NUM}), First inference: ({NUM}), "
                      rf"Warmup \(avg\): ({NUM}), Inference \(avg\): ({NUM})")
_COUNT = re.compile(r"^count=(\d+)(.*)$")
_KEYVAL = re.compile(rf"(\w+)=({NUM})")
_MEM_DELTA = re.compile(rf"^Memory footprint delta from the start of the tool \(MB\): "
                        rf"init=({NUM}) overall=({NUM})")
_PEAK_PERIODIC = re.compile(rf"^Overall peak memory footprint \(MB\) via periodic "
                            rf"monitoring: ({NUM})")
_PEAK_OLD = re.compile(rf"^Peak memory footprint \(MB\): init=({NUM}) overall=({NUM})")
_MODEL_SIZE = re.compile(rf"^The input model file size \(MB\): ({NUM})")
_SESSION = re.compile(rf"^Initialized session in ({NUM})\s*ms")
_AVAILABLE = re.compile(r"^NNAPI accelerators available: \[(.*)\]", re.I)
_ACCEL_NAME = re.compile(r"^NNAPI accelerator name: \[([^\]]*)\]", re.I)
_REPLACING = re.compile(r"Replacing (\d+)(?: out of (\d+))? node\(s\) with delegate \(([^)]+)\)"
                        r"(?: node(?:, yielding (\d+) partitions)?)?")
_FULL = re.compile(r"^Explicitly applied (\S+) delegate, and the model graph will be "
                   r"completely executed by the delegate")
_PARTIAL = re.compile(r"^Explicitly applied (\S+) delegate, and the model graph will be "
                      r"partially executed by the delegate w/ (\d+) delegate kernels")
_NONE = re.compile(r"^Though (\S+) delegate is explicitly applied, the model graph will not "
                   r"be executed by the delegate")
# The QNN TFLite delegate's own count (tensorflow/tensorflow#83344):
# "TfLiteQnnDelegate delegate: 0 nodes delegated out of 31 nodes with 0 partitions."
_QNN_COUNT = re.compile(r"^(\w+) delegate: (\d+) nodes delegated out of (\d+) nodes with (\d+) "
                        r"partitions")
# benchmark_model.cc ParseFlags: flags it does not know are logged and ignored, never refused.
_UNCONSUMED = re.compile(r"Unconsumed cmdline flags:\s*(.*\S)")
_TABLE_TITLE = re.compile(r"^=+ (.+?) =+$")
_REGULAR_PROFILE = "Operator-wise Profiling Info for Regular Benchmark Runs:"

# Kernel names of delegate nodes in the op-profiling table -> the unit they run on.
_DELEGATE_UNITS = {"TfLiteNnapiDelegate": "NNAPI", "TfLiteGpuDelegateV2": "GPU",
                   "TfLiteGpuDelegate": "GPU", "TfLiteXNNPackDelegate": "CPU",
                   "TfLiteHexagonDelegate": "DSP", "Vx Delegate": "NPU",
                   "TfLiteQnnDelegate": "QNN", "DispatchDelegate": "NPU", "LITERT_CL": "GPU"}
# Delegates that run on the CPU: nodes they take are a CPU fallback for an NPU run.
CPU_DELEGATE_KERNELS = ("TfLiteXNNPackDelegate",)


def _strip(line: str) -> str:
    return _PREFIX.sub("", line.rstrip("\r\n"), count=1).strip()


@dataclass
class RunStats:
    """One `count=... first=... avg=... std=...` line; times in microseconds."""

    count: int
    first: float | None = None
    curr: float | None = None
    min: float | None = None
    max: float | None = None
    avg: float | None = None
    std: float | None = None
    median: float | None = None

    @classmethod
    def parse(cls, count: int, rest: str) -> "RunStats":
        values = {k: float(v) for k, v in _KEYVAL.findall(rest)}
        stats = cls(count=count, **{k: values.get(k) for k in
                                    ("first", "curr", "min", "max", "avg", "std", "median")})
        if stats.avg is None and stats.curr is not None:
            # "count=1 curr=637079" / "count=5 curr=X(all same)": every run took `curr`
            stats.first = stats.first if stats.first is not None else stats.curr
            stats.min = stats.max = stats.avg = stats.curr
            stats.std = 0.0
        return stats


@dataclass
class BenchmarkOutput:
    """Everything `parse_benchmark_output` found. Times in microseconds unless named _ms."""

    init_us: float | None = None
    first_us: float | None = None
    warmup_avg_us: float | None = None
    avg_us: float | None = None
    warmup: RunStats | None = None
    regular: RunStats | None = None
    model_size_mb: float | None = None
    session_init_ms: float | None = None
    memory_delta_mb: tuple[float, float] | None = None  # (init, overall)
    peak_memory_mb: float | None = None
    available_accelerators: list[str] = field(default_factory=list)
    accelerator: str | None = None
    delegate_name: str | None = None       # as benchmark_model names it: NNAPI, GPU, XNNPACK
    delegate_kernel: str | None = None     # as the partitioner names it: TfLiteNnapiDelegate
    coverage: str | None = None            # "full" | "partial" | "none"
    delegate_kernels: int | None = None
    replaced_nodes: int | None = None
    total_nodes: int | None = None
    partitions: int | None = None
    # every "Replacing N out of M node(s) with delegate (K)" line, in order:
    # {"kernel": K, "replaced": N, "total": M or None, "partitions": P, "line": text}
    delegations: list[dict] = field(default_factory=list)
    unconsumed_flags: list[str] = field(default_factory=list)
    unconsumed_line: str | None = None
    run_order: list[dict] = field(default_factory=list)
    by_node_type: list[dict] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def to_bench_result(self, *, runner: str, model: str, device: dict | None = None,
                        requested_delegate: str | None = None) -> BenchResult:
        """A BenchResult in milliseconds; notes say when the requested delegate did not run.
        An average that is not a finite, positive time (nan, inf, 0, negative) is refused:
        scoring it would divide by it."""
        def ms(us):
            return None if us is None else us / 1000.0

        if self.avg_us is not None and not (math.isfinite(self.avg_us) and self.avg_us > 0):
            raise MaiSrError(f"benchmark_model reported an average of {self.avg_us:g} us, not "
                             "a time: the run is unusable (rerun it; check the tool's output)")

        regular = self.regular or RunStats(count=0)
        notes = list(self.warnings) + [f"benchmark_model logged: {e}" for e in self.errors]
        if self.memory_delta_mb:
            notes.append("memory footprint delta from the start of the tool (MB): "
                         f"init={self.memory_delta_mb[0]:g} overall={self.memory_delta_mb[1]:g}")
        if requested_delegate and not self.delegate_ran:
            notes.append(f"the {requested_delegate} delegate did not run the graph: "
                         "these timings are the CPU's")
        elif self.coverage == "partial":
            notes.append(f"the {self.delegate_name} delegate runs {self.delegate_kernels} "
                         "partition(s); the other ops fall back to TFLite's CPU kernels")
        return BenchResult(
            runner=runner, model=model, avg_ms=ms(self.avg_us), device=dict(device or {}),
            init_ms=ms(self.init_us), first_ms=ms(self.first_us),
            warmup_avg_ms=ms(self.warmup_avg_us), median_ms=ms(regular.median),
            min_ms=ms(regular.min), max_ms=ms(regular.max), std_ms=ms(regular.std),
            count=regular.count or None, peak_memory_mb=self.peak_memory_mb,
            delegate=self.delegate_dict(requested_delegate), layers=self.layers(), notes=notes)

    @property
    def delegate_ran(self) -> bool:
        """Whether a delegate took part of the graph (older builds say so only by the
        "Replacing N node(s)" line)."""
        if self.coverage is not None:
            return self.coverage != "none"
        return bool(self.replaced_nodes)

    def delegate_dict(self, requested: str | None = None) -> dict:
        """BenchResult.delegate: which delegate ran how much of the graph."""
        name = self.delegate_name or self.delegate_kernel or requested
        if name is None:
            return {}
        fully = self.coverage == "full"
        if self.coverage is None and self.total_nodes:  # only the "Replacing" line to go by
            fully = self.replaced_nodes == self.total_nodes and self.partitions == 1
        elif self.coverage is None and self.replaced_nodes:
            fully = None  # delegated, but out of how many nodes is not printed
        ran = self.delegate_ran
        return {"name": name, "fully_delegated": fully,
                "delegated_nodes": self.replaced_nodes if ran else 0,
                "total_nodes": self.total_nodes,
                "kernels": self.delegate_kernels if ran else 0,
                "partitions": self.partitions, "accelerator": self.accelerator,
                "available_accelerators": list(self.available_accelerators)}

    def layers(self) -> list[dict]:
        """Run-order rows as BenchResult layers; delegate nodes carry the unit they run on."""
        return [{"name": r["name"], "op": r["op"],
                 "unit": _DELEGATE_UNITS.get(r["op"], "CPU"), "ms": r["avg_ms"],
                 "first_ms": r["first_ms"], "percent": r["percent"],
                 "cdf_percent": r["cdf_percent"], "mem_kb": r["mem_kb"],
                 "times_called": r["times_called"]} for r in self.run_order]


def _row_pattern(header: str) -> re.Pattern | None:
    """A regex for the data rows of the table whose column header line is `header`.

    Node types may contain spaces ("Convolution (NHWC, QC8) GEMM"), so rows are matched by
    their numeric columns; the older format has an extra `[start]` column.
    """
    if "[node type]" in header and "[Name]" in header:
        start = rf"({NUM})\s+" if "[start]" in header else "()"
        return re.compile(rf"^(.+?)\s+{start}({NUM})\s+({NUM})\s+({NUM})%\s+({NUM})%\s+"
                          rf"({NUM})\s+(\d+)\s+(.*)$")
    if "[Node type]" in header and "[count]" in header:
        return re.compile(rf"^(.+?)\s+(\d+)\s+({NUM})\s+({NUM})%\s+({NUM})%\s+({NUM})\s+(\d+)\s*$")
    return None


def _parse_row(title: str, match: re.Match) -> dict:
    g = match.groups()
    if title == "Summary by node type":
        return {"op": g[0].strip(), "count": int(g[1]), "avg_ms": float(g[2]),
                "percent": float(g[3]), "cdf_percent": float(g[4]), "mem_kb": float(g[5]),
                "times_called": int(g[6])}
    return {"op": g[0].strip(), "first_ms": float(g[2]), "avg_ms": float(g[3]),
            "percent": float(g[4]), "cdf_percent": float(g[5]), "mem_kb": float(g[6]),
            "times_called": int(g[7]), "name": g[8].strip()}


def _parse_profile(lines: list[str], out: BenchmarkOutput) -> None:
    """The tables after the regular-runs header (the initialization tables come before it)."""
    title, pattern = None, None
    for raw in lines:
        line = _strip(raw)
        if line.startswith("Delegate internal:"):
            return  # the delegate's own internals are not the graph's ops
        if heading := _TABLE_TITLE.match(line):
            title, pattern = heading.group(1), None
        elif title and line.startswith("["):
            pattern = _row_pattern(line)
        elif pattern and (m := pattern.match(line)):
            row = _parse_row(title, m)
            if title == "Run Order":
                out.run_order.append(row)
            elif title == "Summary by node type":
                out.by_node_type.append(row)


def parse_benchmark_output(text: str, source: str = "benchmark_model", *,
                           require_timings: bool = True) -> BenchmarkOutput:
    """Parse `benchmark_model` output. Raises MaiSrError quoting the last lines if it holds
    no timing (the tool failed or printed something else), unless `require_timings` is
    False (to read the delegation and warning lines of output in another format)."""
    out = BenchmarkOutput()
    raw_lines = text.splitlines()
    counts: list[RunStats] = []
    profile_at = None
    for i, raw in enumerate(raw_lines):
        line = _strip(raw)
        if profile_at is None and line.startswith(_REGULAR_PROFILE):
            profile_at = i
        if m := _TIMINGS.match(line):
            out.init_us, out.first_us, out.warmup_avg_us, out.avg_us = map(float, m.groups())
        elif m := _COUNT.match(line):
            counts.append(RunStats.parse(int(m.group(1)), m.group(2)))
        elif m := _MEM_DELTA.match(line):
            out.memory_delta_mb = (float(m.group(1)), float(m.group(2)))
        elif m := _PEAK_PERIODIC.match(line):
            out.peak_memory_mb = float(m.group(1))
        elif m := _PEAK_OLD.match(line):
            out.peak_memory_mb = float(m.group(2))
        elif m := _MODEL_SIZE.match(line):
            out.model_size_mb = float(m.group(1))
        elif m := _SESSION.match(line):
            out.session_init_ms = float(m.group(1))
        elif m := _AVAILABLE.match(line):
            out.available_accelerators = [a.strip() for a in m.group(1).split(",") if a.strip()]
        elif m := _ACCEL_NAME.match(line):
            out.accelerator = m.group(1) or None
        elif m := _REPLACING.search(line):
            # the partitioner's line supersedes the QNN delegate's own count of the same run
            out.delegations = [d for d in out.delegations
                               if not (d["kernel"] == m.group(3) and d.get("count_line"))]
            out.delegations.append({"kernel": m.group(3), "replaced": int(m.group(1)),
                                    "total": int(m.group(2)) if m.group(2) else None,
                                    "partitions": int(m.group(4)) if m.group(4) else None,
                                    "line": line})
        elif m := _QNN_COUNT.match(line):
            if not any(d["kernel"] == m.group(1) for d in out.delegations):
                out.delegations.append({"kernel": m.group(1), "replaced": int(m.group(2)),
                                        "total": int(m.group(3)),
                                        "partitions": int(m.group(4)), "line": line,
                                        "count_line": True})
        elif m := _FULL.match(line):
            out.delegate_name, out.coverage, out.delegate_kernels = m.group(1), "full", 1
        elif m := _PARTIAL.match(line):
            out.delegate_name, out.coverage = m.group(1), "partial"
            out.delegate_kernels = int(m.group(2))
        elif m := _NONE.match(line):
            out.delegate_name, out.coverage, out.delegate_kernels = m.group(1), "none", 0
        elif m := _UNCONSUMED.search(line):
            out.unconsumed_flags = m.group(1).split()
            out.unconsumed_line = line
            out.warnings.append(line)
        elif (raw.lstrip().startswith(("WARNING:", "WARN:"))
              or "is unsupported on this platform" in line):
            out.warnings.append(line)
        elif raw.lstrip().startswith("ERROR:") or re.search(r"\sE\s+tflite\s*:", raw):
            out.errors.append(line)
    _set_primary_delegation(out)
    if counts:
        out.regular = counts[-1]
        out.warmup = counts[0] if len(counts) > 1 else None
    if out.avg_us is None and out.regular is not None:
        out.avg_us = out.regular.avg  # older builds print only the count lines
    if out.avg_us is None and require_timings:
        raise MaiSrError(f"{source}: no timings in the benchmark_model output "
                         f"(no 'Inference timings in us' or 'count=' line); it ended with: "
                         f"{output_tail(text)}")
    if profile_at is not None:
        _parse_profile(raw_lines[profile_at:], out)
    return out


def _set_primary_delegation(out: BenchmarkOutput) -> None:
    """The delegate the run asked for is the first that is not XNNPACK (which the classic
    tool may also apply by default); its line fills the single-delegate fields."""
    if not out.delegations:
        return
    primary = next((d for d in out.delegations if d["kernel"] not in CPU_DELEGATE_KERNELS),
                   out.delegations[0])
    out.replaced_nodes, out.total_nodes = primary["replaced"], primary["total"]
    out.delegate_kernel, out.partitions = primary["kernel"], primary["partitions"]


def output_tail(text: str, n: int = 5) -> str:
    """The last `n` non-empty lines, joined on one line (for one-line error messages)."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return " | ".join(lines[-n:]) if lines else "(no output)"
