"""Parse LiteRT's CompiledModel `benchmark_model` output, and decide whether an NPU run
really ran on the NPU.

The CompiledModel tool (`litert/tools/benchmark_litert_model.h`, built as
`//litert/tools:benchmark_model`) shares the classic tool's name but not its output. Its
`BenchmarkLoggingListener::OnBenchmarkEnd` prints one block through LITERT_LOG:

    INFO: [benchmark_litert_model.h:94]
    ========== BENCHMARK RESULTS ==========
    INFO: [benchmark_litert_model.h:95] Model initialization: 412.30 ms
    INFO: [benchmark_litert_model.h:96] Warmup (first):       9.87 ms
    INFO: [benchmark_litert_model.h:98] Warmup (avg):         3.52 ms (57 runs)
    INFO: [benchmark_litert_model.h:100] Inference (avg):      3.41 ms (294 runs)
    INFO: [benchmark_litert_model.h:104] Inference (min):      3.22 ms
    INFO: [benchmark_litert_model.h:106] Inference (max):      4.05 ms
    INFO: [benchmark_litert_model.h:108] Inference (std):      0.11          (no unit: ms)
    INFO: [benchmark_litert_model.h:115] Throughput:           202.61 MB/s
    Memory Usage: / Init footprint: / Overall footprint: / Peak memory:  (MB, when supported)
    INFO: [benchmark_litert_model.h:135] ======================================

Which unit ran the graph is only in the TFLite partitioner's lines ("Replacing 1 out of 1
node(s) with delegate (DispatchDelegate) node, ..."; XNNPACK's name means the CPU) and in the
dispatch/compiler-plugin errors LiteRT logs when the NPU runtime cannot be used, after which
the tool still runs, on the CPU. :mod:`mai_sr.device.placement` turns those into the one
fallback verdict every accelerator delegate gets.
"""

from __future__ import annotations

import re

from mai_sr.device.benchmark_output import (_DELEGATE_UNITS, NUM, BenchmarkOutput, RunStats,
                                            _strip, output_tail, parse_benchmark_output)
from mai_sr.errors import MaiSrError

RESULTS_HEADER = "========== BENCHMARK RESULTS =========="
# "[benchmark_litert_model.h:100] " after the level prefix
_SOURCE = re.compile(r"^\[[\w./-]+:\d+\]\s?")
_VALUE_MS = re.compile(rf"^({NUM}) ms(?: \((\d+) runs\))?$")
_PLAIN = re.compile(rf"^({NUM})(?: (?:ms|MB|MB/s))?$")

# LiteRT's messages when the NPU runtime is missing or unusable; the tool then carries on
# on the CPU (google-ai-edge/LiteRT#5592, #5594, #6059; dispatch_delegate.cc, compiler_plugin.cc).
# MediaTek's dispatch logs "Failed to load NeuronAdapter shared library" when no NeuroPilot
# adapter loads (litert/vendors/mediatek/neuron_adapter_api.cc).
NPU_FAILURE_MARKERS = ("No compiler plugin found", "Failed to initialize Dispatch API",
                       "No usable Dispatch runtime found", "No dispatch library found",
                       "Failed to load NeuronAdapter shared library")
# Flags mai-sr adds for itself that an older build may not know; its warning then only
# means "no proto file", and the text is parsed instead.
OPTIONAL_FLAGS = ("--result_file_path",)


def _message(raw: str) -> str:
    return _SOURCE.sub("", _strip(raw), count=1)


def parse_litert_output(text: str, source: str = "benchmark_model") -> BenchmarkOutput:
    """Parse the CompiledModel tool's output (the BENCHMARK RESULTS block, delegation and
    warning lines). Raises MaiSrError quoting the last lines if there is no result block."""
    # The classic parser reads the lines both tools share (Replacing..., WARN:, Unconsumed
    # cmdline flags, ERROR:); the timings come from the block below.
    out = parse_benchmark_output(text, source=source, require_timings=False)
    values: dict[str, str] = {}
    in_block = False
    for raw in text.splitlines():
        line = _message(raw)
        if line == RESULTS_HEADER:
            in_block = True
            continue
        if in_block and re.fullmatch(r"=+", line):
            in_block = False
        elif in_block and ":" in line:
            key, _, value = line.partition(":")
            values[key.strip()] = value.strip()
    if "Inference (avg)" not in values:
        raise MaiSrError(f"{source}: no '{RESULTS_HEADER}' block with 'Inference (avg)' in "
                         f"the output; it ended with: {output_tail(text)}")

    def ms(key):
        m = _VALUE_MS.match(values.get(key, ""))
        return (float(m.group(1)), int(m.group(2)) if m.group(2) else None) if m else (None, None)

    def plain(key):
        m = _PLAIN.match(values.get(key, ""))
        return float(m.group(1)) if m else None

    avg, runs = ms("Inference (avg)")
    warm_avg, warm_runs = ms("Warmup (avg)")
    first, _ = ms("Warmup (first)")
    init, _ = ms("Model initialization")
    to_us = (lambda v: None if v is None else v * 1000.0)
    out.avg_us, out.init_us = to_us(avg), to_us(init)
    out.first_us, out.warmup_avg_us = to_us(first), to_us(warm_avg)
    out.regular = RunStats(count=runs or 0, avg=to_us(avg), min=to_us(ms("Inference (min)")[0]),
                           max=to_us(ms("Inference (max)")[0]),
                           std=to_us(plain("Inference (std)")))  # printed in ms, no unit
    out.warmup = RunStats(count=warm_runs or 0, first=to_us(first), avg=to_us(warm_avg))
    if plain("Init footprint") is not None and plain("Overall footprint") is not None:
        out.memory_delta_mb = (plain("Init footprint"), plain("Overall footprint"))
    out.peak_memory_mb = plain("Peak memory")
    return out
