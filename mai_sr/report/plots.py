"""Report figures as PNG bytes (matplotlib, Agg canvas; pyplot's global state is not touched).

Every function takes plain data (lists of dicts / arrays) and returns PNG bytes, so the
report can cache a figure by the hash of its inputs and embed it in HTML.
"""

from __future__ import annotations

import io
import math

import numpy as np

MEASURED_COLOUR = "tab:blue"
PUBLISHED_COLOUR = "tab:gray"


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _png(fig) -> bytes:
    buf = io.BytesIO()
    # No "Software" metadata: same inputs give the same bytes.
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()


def iso_score_levels(scores: list[float], count: int = 5) -> list[float]:
    """Round score levels (1, 2 or 5 x 10^k) spread over the span of `scores`."""
    scores = [s for s in scores if s and s > 0 and math.isfinite(s)]
    if not scores:
        return [1.0]
    lo, hi = math.log10(min(scores)) - 0.5, math.log10(max(scores)) + 0.5
    levels = []
    for k in np.linspace(lo, hi, count):
        exp = math.floor(k)
        mant = min((1, 2, 5, 10), key=lambda m: abs(math.log10(m) - (k - exp)))
        levels.append(mant * 10.0 ** exp)
    return sorted(set(levels))


def iso_score_psnr(score: float, runtime_ms, C: float):
    """PSNR at which `runtime_ms` gives `score`: solves score = 2^(2*PSNR) / (C*runtime)."""
    return np.log2(score * C * np.asarray(runtime_ms, dtype=float)) / 2


def psnr_runtime_png(points: list[dict], C: float) -> bytes:
    """PSNR vs runtime (log scale) with iso-score curves of 2^(2*PSNR) / (C*runtime).

    points: {"label", "psnr", "runtime_ms", "score", "kind": "measured"|"published",
    "simulated": bool}. Curves: :func:`iso_score_psnr`.
    """
    fig = _figure(10, 4.8)
    ax = fig.add_subplot()
    pts = [p for p in points if p.get("psnr") is not None and p.get("runtime_ms")]
    times = [p["runtime_ms"] for p in pts] or [10.0, 100.0]
    t = np.geomspace(min(times) / 2, max(times) * 2, 100)
    for level in iso_score_levels([p.get("score") for p in pts]) if pts else ():
        psnr_line = iso_score_psnr(level, t, C)
        ax.plot(t, psnr_line, color="0.8", lw=1, zorder=1)
        ax.annotate(f"score {level:g}", (t[-1], psnr_line[-1]), fontsize=7, color="0.5",
                    ha="right", va="bottom")
    for kind, colour, marker in (("measured", MEASURED_COLOUR, "o"),
                                 ("published", PUBLISHED_COLOUR, "s")):
        group = [p for p in pts if p["kind"] == kind]
        if not group:
            continue
        label = "published (seed 004 Table 1, VS680 NPU)" if kind == "published" else \
            "measured here" + (" (NPU time simulated)" if any(p.get("simulated") for p in group)
                               else "")
        ax.scatter([p["runtime_ms"] for p in group], [p["psnr"] for p in group], c=colour,
                   marker=marker, label=label, zorder=3)
        for p in group:
            ax.annotate(p["label"], (p["runtime_ms"], p["psnr"]), fontsize=7,
                        xytext=(4, 3), textcoords="offset points")
    if pts:
        ys = [p["psnr"] for p in pts]
        ax.set_ylim(min(ys) - 0.5, max(ys) + 0.5)
        # Beside the axes, so it never hides a point.
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    else:
        ax.text(0.5, 0.5, "no model has both a PSNR and an NPU runtime", ha="center",
                transform=ax.transAxes)
    ax.set_xscale("log")
    ax.set_xlabel("NPU runtime, ms (log scale)")
    ax.set_ylabel("PSNR, dB")
    ax.set_title("PSNR vs runtime; grey curves: equal final score")
    ax.grid(True, which="both", alpha=0.2)
    fig.tight_layout()
    return _png(fig)


def delta_psnr_png(bars: list[dict]) -> bytes:
    """Bar per model of the FP32 -> INT8 PSNR drop; 'n.a.' where it is unknown.

    bars: {"label", "delta" (dB or None), "kind": "measured"|"published"}.
    """
    fig = _figure(max(6.0, 0.9 * len(bars) + 1.5), 3.8)
    ax = fig.add_subplot()
    x = np.arange(len(bars))
    values = [b["delta"] if b["delta"] is not None else 0.0 for b in bars]
    colours = [MEASURED_COLOUR if b["kind"] == "measured" else PUBLISHED_COLOUR for b in bars]
    ax.bar(x, values, color=colours)
    for i, b in enumerate(bars):
        text = "n.a." if b["delta"] is None else f"{b['delta']:.2f}"
        ax.annotate(text, (i, values[i]), ha="center", va="bottom", fontsize=8,
                    xytext=(0, 2), textcoords="offset points")
    ax.set_xticks(x, [b["label"] for b in bars], rotation=30, ha="right", fontsize=8)
    ax.axhline(0, color="black", lw=0.8)
    ax.set_ylabel("PSNR drop FP32 -> INT8, dB")
    ax.set_title("Quantization loss (grey: published)")
    fig.tight_layout()
    return _png(fig)


def training_curves_png(curves: list[dict]) -> bytes:
    """Training loss (left, log scale when positive) and validation PSNR (right) vs step.

    curves: {"label", "x": [steps], "y": [values or None], "axis": "loss" | "psnr"}.
    """
    fig = _figure(10, 3.8)
    axes = {"loss": fig.add_subplot(1, 2, 1), "psnr": fig.add_subplot(1, 2, 2)}
    for curve in curves:
        pairs = [(x, y) for x, y in zip(curve["x"], curve["y"])
                 if y is not None and math.isfinite(y)]
        if pairs:
            xs, ys = zip(*pairs)
            axes[curve["axis"]].plot(xs, ys, label=curve["label"], lw=1,
                                     marker="." if len(xs) < 30 else None)
    for name, title in (("loss", "training loss"), ("psnr", "validation PSNR, dB")):
        ax = axes[name]
        ax.set_xlabel("step (stages one after another)")
        ax.set_title(title)
        ax.grid(True, alpha=0.2)
        if ax.get_lines():
            ax.legend(fontsize=7)
    if axes["loss"].get_lines() and all(min(line.get_ydata()) > 0
                                        for line in axes["loss"].get_lines()):
        axes["loss"].set_yscale("log")
    fig.tight_layout()
    return _png(fig)


def comparison_grid_png(rows: list[dict]) -> bytes:
    """Crops side by side: one row per image, one column per method (HR, bicubic, models).

    rows: {"title": image name, "tiles": [(column label, uint8 HxWx3 array)]}.
    """
    n_cols = max(len(r["tiles"]) for r in rows)
    fig = _figure(1.9 * n_cols, 2.0 * len(rows) + 0.3)
    for i, row in enumerate(rows):
        for j, (label, tile) in enumerate(row["tiles"]):
            ax = fig.add_subplot(len(rows), n_cols, i * n_cols + j + 1)
            ax.imshow(tile, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(label, fontsize=8)
            if j == 0:
                ax.set_ylabel(row["title"], fontsize=8)
    fig.tight_layout()
    return _png(fig)
