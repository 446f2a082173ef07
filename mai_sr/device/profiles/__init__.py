"""Device profiles for the latency estimator: one JSON file per device/runtime pair.

A profile is data, not code: what the accelerator pads channels to, which activations it
fuses into a convolution, which ops it leaves to the CPU (and the measurement that says
so), the fitted cost coefficients and the record of that fit (data source, date,
leave-one-architecture-out errors). :mod:`mai_sr.device.estimate` prices a TFLite graph
with a profile; ``benchmarks/phone_estimates.py`` fits the phone profiles and writes their
``coefficients`` and ``fit`` back into these files.

Five profiles ship:

* ``vs680-synap``: the SyNAP VS680 simulator (:mod:`mai_sr.device.synap`), unchanged, fitted
  on Table 1 of the MAI 2022 challenge report;
* ``dimensity8100-nnapi``, ``dimensity8100-neuron``, ``snapdragon888-qnn-gpu``,
  ``snapdragon8gen1-nnapi``: fitted on the INT8 latencies of Table 2 of J. Chao, Z. Zhou,
  H. Gao, J. Gong, Z. Yang, Z. Zeng, L. Dehbi, "Equivalent Transformation and Dual Stream
  Network Construction for Mobile Image Super-Resolution", CVPR 2023.

No TensorFlow here: profiles are read by ``bench`` and ``lint``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from mai_sr.errors import MaiSrError

PROFILE_DIR = Path(__file__).resolve().parent
ETDS_PAPER = ("J. Chao, Z. Zhou, H. Gao, J. Gong, Z. Yang, Z. Zeng, L. Dehbi, \"Equivalent "
              "Transformation and Dual Stream Network Construction for Mobile Image "
              "Super-Resolution\", CVPR 2023")
ETDS_TABLE = f"Table 2 of {ETDS_PAPER}"


@dataclass(frozen=True)
class PlacementRule:
    """An op the device's runtime leaves to the CPU, and the timing that shows it.

    Matches ops of type `op` whose stride is `stride` (any stride when None), whose
    output has at least `min_channels` channels (when set) and, when `constant_inputs` is
    set, one of whose inputs at those positions is computed in the graph rather than
    constant (a runtime that validates e.g. a transposed convolution's output shape as a
    constant rejects a batch-dynamic conversion's). `unit` is where the op runs:
    "CPU" for a measured fallback; "NPU" for a rule that only warns (a measured cost whose
    cause the timings do not pin down). `row` names the table row(s) the rule comes from;
    `measured_ms` is that row's latency on this device, `reference_ms` the latency of a
    comparable graph (`reference`) without the op."""

    id: str
    op: str
    unit: str
    why: str
    row: str
    stride: tuple[int, int] | None = None
    min_channels: int | None = None
    constant_inputs: tuple[int, ...] | None = None
    measured_ms: float | str | None = None
    reference_ms: float | str | None = None
    reference: str | None = None

    def matches(self, op, graph=None) -> bool:
        if op.type != self.op:
            return False
        if self.min_channels is not None:
            outs = graph.op_outputs(op) if graph is not None else []
            if not outs or (outs[0].channels or 0) < self.min_channels:
                return False
        if self.constant_inputs is not None:
            if graph is None or all(
                    graph.tensors[op.inputs[i]].is_constant for i in self.constant_inputs
                    if i < len(op.inputs) and op.inputs[i] >= 0):
                return False
        return self.stride is None or tuple(op.stride or ()) == self.stride

    def reason(self, source: str) -> str:
        """One line: what runs where, the measured cost and the row it comes from."""
        cost = f"; measured {self.measured_ms} ms" if self.measured_ms is not None else ""
        ref = (f" against {self.reference_ms} ms on {self.reference}"
               if self.reference_ms is not None else "")
        return f"{self.why}{cost}{ref} ({source}, row {self.row}) [{self.id}]"


@dataclass(frozen=True)
class Profile:
    """One device/runtime pair (see module docstring); `data` is the JSON file as read."""

    name: str
    title: str
    engine: str                    # "synap" (the VS680 simulator) or "graph" (estimate.py)
    path: Path
    data: dict = field(repr=False, default_factory=dict)

    @property
    def runtime(self) -> str:
        return self.data.get("runtime", "")

    @property
    def accelerator(self) -> str:
        return self.data.get("accelerator", "")

    @property
    def source(self) -> str:
        return self.data.get("source", "")

    @property
    def coefficients(self) -> dict[str, float] | None:
        return self.data.get("coefficients")

    @property
    def fit(self) -> dict | None:
        return self.data.get("fit")

    @property
    def fitted(self) -> bool:
        return bool(self.coefficients) and bool(self.fit)

    @property
    def rules(self) -> tuple[PlacementRule, ...]:
        return tuple(PlacementRule(**{
            **r, "stride": tuple(r["stride"]) if r.get("stride") else None,
            "constant_inputs": tuple(r["constant_inputs"]) if r.get("constant_inputs") else None})
            for r in self.data.get("placement_rules", []))

    def rule_for(self, op, graph=None) -> PlacementRule | None:
        return next((r for r in self.rules if r.matches(op, graph)), None)

    def validation_text(self) -> str:
        """One line: how the profile was validated (or that it is not fitted yet)."""
        fit = self.fit or {}
        v = fit.get("validation")
        if not v:
            return "not fitted yet"
        sel = v.get("selection_aware")
        return (f"{v['method']}: median |error| {v['median_abs_pct']:.1f}%, max "
                f"{v['max_abs_pct']:.1f}%, Spearman {v['spearman']:.2f} over {v['rows']} rows"
                + (f" ({v['excluded']})" if v.get("excluded") else "")
                + (f"; with the structure also chosen inside each fold: median "
                   f"{sel['median_abs_pct']:.1f}%, max {sel['max_abs_pct']:.1f}%, Spearman "
                   f"{sel['spearman']:.2f}" if sel else ""))

    def summary(self) -> dict[str, Any]:
        """What a BenchResult's `device` records about the profile (flat, JSON scalars)."""
        fit = self.fit or {}
        v = fit.get("validation") or {}
        return {"name": self.title, "profile": self.name, "soc": self.data.get("soc", ""),
                "runtime": self.runtime, "npu": self.accelerator, "simulated": True,
                "fitted_on": self.source, "fit_date": fit.get("date"),
                "validation": v.get("method"),
                "median_abs_error_pct": v.get("median_abs_pct"),
                "max_abs_error_pct": v.get("max_abs_pct"), "spearman": v.get("spearman")}


def profile_names() -> tuple[str, ...]:
    """Names `load_profile` accepts, VS680 first."""
    names = sorted(p.stem for p in PROFILE_DIR.glob("*.json"))
    return tuple(sorted(names, key=lambda n: (not n.startswith("vs680"), n)))


def unknown_profile(name: str, what: str = "--device") -> MaiSrError:
    return MaiSrError(f"{what} {name}: unknown device profile; known: "
                      f"{', '.join(profile_names())}")


@cache
def _read(path: Path, mtime: float) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise MaiSrError(f"{path}: cannot read device profile ({exc})") from None


def load_profile(name: str) -> Profile:
    """The profile called `name`; an unknown name raises one line listing the known ones."""
    path = PROFILE_DIR / f"{name}.json"
    if not name or "/" in name or not path.is_file():
        raise unknown_profile(name)
    data = _read(path, path.stat().st_mtime)
    return Profile(name=name, title=data["title"], engine=data.get("engine", "graph"),
                   path=path, data=data)


def save_profile(profile: Profile, data: dict) -> Path:
    """Write `data` as the profile's JSON file (used by the fitting script)."""
    from mai_sr.fileio import write_json

    return write_json(profile.path, data)


__all__ = ["ETDS_PAPER", "ETDS_TABLE", "PlacementRule", "Profile", "load_profile",
           "profile_names", "save_profile", "unknown_profile"]
