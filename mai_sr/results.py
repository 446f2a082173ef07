"""Shared value types that cross module boundaries and turn into JSON.

`BenchResult` is what every runner returns (local LiteRT, adb + benchmark_model, SyNAP
simulator); `EvalResult` is what `mai_sr.evaluate` returns. Both are frozen dataclasses with
`to_dict()` / `from_dict()` so reports can cache them as JSON.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

# 2: `command` and `raw_output` (what a device runner ran and what the tool printed)
BENCH_SCHEMA_VERSION = 2


def _clean(value):
    """JSON-safe: NaN/inf become None, tuples lists."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    return value


@dataclass(frozen=True)
class BenchResult:
    """One benchmark of one model on one runner/device. Times in milliseconds.

    `avg_ms` is the figure used for scoring. Fields a runner cannot measure are None.
    `delegate` describes acceleration coverage, e.g. {"name": "NNAPI", "fully_delegated": True,
    "delegated_nodes": 9, "total_nodes": 9}. `layers` holds per-op timing rows when available
    ({"name", "op", "unit", "ms"}). `simulated` is True for estimates (SyNAP stub).
    `command` is the exact command line a device runner ran (for adb: what the device's sh
    executed) and `raw_output` what the tool printed, so a run can be repeated or reported.
    """

    runner: str
    model: str
    avg_ms: float
    device: dict = field(default_factory=dict)
    init_ms: float | None = None
    first_ms: float | None = None
    warmup_avg_ms: float | None = None
    median_ms: float | None = None
    min_ms: float | None = None
    max_ms: float | None = None
    std_ms: float | None = None
    count: int | None = None
    peak_memory_mb: float | None = None
    delegate: dict = field(default_factory=dict)
    layers: list = field(default_factory=list)
    simulated: bool = False
    error: str | None = None
    notes: list = field(default_factory=list)
    command: str | None = None
    raw_output: str | None = None
    schema_version: int = BENCH_SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        return _clean(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, data: dict) -> "BenchResult":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass(frozen=True)
class ImageScore:
    """PSNR/SSIM of one image, with the bicubic baseline beside it."""

    name: str
    psnr: float
    ssim: float
    bicubic_psnr: float
    bicubic_ssim: float
    height: int
    width: int


@dataclass(frozen=True)
class EvalResult:
    """Evaluation of one model on one dataset: a row per image and the means.

    `precision` is what the model computes in ("int8", "fp16", "fp32"; None when not
    recorded); `notes` are lines the scores must be read with (the images are training
    images, ...)."""

    model: str
    dataset: str
    images: tuple[ImageScore, ...]
    y_channel: bool = False
    crop: int = 3
    precision: str | None = None
    notes: tuple[str, ...] = ()

    @property
    def psnr(self) -> float:
        return sum(i.psnr for i in self.images) / len(self.images)

    @property
    def ssim(self) -> float:
        return sum(i.ssim for i in self.images) / len(self.images)

    @property
    def bicubic_psnr(self) -> float:
        return sum(i.bicubic_psnr for i in self.images) / len(self.images)

    @property
    def bicubic_ssim(self) -> float:
        return sum(i.bicubic_ssim for i in self.images) / len(self.images)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["mean"] = {"psnr": self.psnr, "ssim": self.ssim,
                     "bicubic_psnr": self.bicubic_psnr, "bicubic_ssim": self.bicubic_ssim}
        return _clean(d)

    @classmethod
    def from_dict(cls, data: dict) -> "EvalResult":
        # to_dict stores an infinite PSNR (output identical to HR) as null: read it back as inf.
        def score(row):
            return ImageScore(**{k: (math.inf if v is None and k.endswith("psnr") else v)
                                 for k, v in row.items()})

        images = tuple(score(row) for row in data["images"])
        return cls(model=data["model"], dataset=data["dataset"], images=images,
                   y_channel=data.get("y_channel", False), crop=data.get("crop", 3),
                   precision=data.get("precision"), notes=tuple(data.get("notes") or ()))
