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
    # bbox "tight": long model names and rotated labels are never cut at the canvas edge.
    fig.savefig(buf, format="png", metadata={"Software": None}, bbox_inches="tight",
                pad_inches=0.1)
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


# Figure widths, inches: the page's (about 1000 px) and a phone's (shown about 360 px wide,
# where 9 pt text is about 10 px: the page picks it on narrow screens).
WIDE_IN, NARROW_IN = 10.0, 4.6


def psnr_runtime_png(points: list[dict], C: float, narrow: bool = False) -> bytes:
    """PSNR vs runtime (log scale) with iso-score curves of 2^(2*PSNR) / (C*runtime).

    points: {"label", "psnr", "runtime_ms", "score", "kind": "measured"|"published",
    "challenge": bool (a challenge score; hollow marker when not)}. Curves:
    :func:`iso_score_psnr`. The runtime axis reads in ms (10 ms, 20 ms, 50 ms). Labels are
    moved apart by adjustText (a thin line joins a moved label to its point); `narrow`: the
    phone layout (legend under the axes, larger text).
    """
    font = 9 if narrow else 8
    fig = _figure(NARROW_IN if narrow else WIDE_IN, 5.2 if narrow else 4.8)
    ax = fig.add_subplot()
    pts = [p for p in points if p.get("psnr") is not None and p.get("runtime_ms")]
    times = [p["runtime_ms"] for p in pts] or [10.0, 100.0]
    t = np.geomspace(min(times) / 2, max(times) * 2, 100)
    curve_labels = []
    for level in iso_score_levels([p.get("score") for p in pts]) if pts else ():
        psnr_line = iso_score_psnr(level, t, C)
        ax.plot(t, psnr_line, color="0.8", lw=1, zorder=1)
        curve_labels.append(ax.annotate(f"score {level:g}", (t[-1], psnr_line[-1]),
                                        fontsize=font - 1, color="0.5", ha="right",
                                        va="bottom", annotation_clip=True))
    for kind, colour, marker in (("measured", MEASURED_COLOUR, "o"),
                                 ("published", PUBLISHED_COLOUR, "s")):
        for challenge in (True, False):
            group = [p for p in pts if p["kind"] == kind and bool(p.get("challenge")) == challenge]
            if not group:
                continue
            label = ("published: challenge test set, real VS680 NPU" if kind == "published"
                     else "measured here") + ("" if challenge else ": not a challenge score")
            ax.scatter([p["runtime_ms"] for p in group], [p["psnr"] for p in group],
                       marker=marker, label=label, zorder=3, edgecolors=colour,
                       facecolors=colour if challenge else "none", linewidths=1.5)
    if pts:
        ys = [p["psnr"] for p in pts]
        ax.set_ylim(min(ys) - 0.5, max(ys) + (1.0 if narrow else 0.5))  # room for labels
        if narrow:  # under the axes: the phone's width is the plot's
            ax.legend(fontsize=font - 1, loc="upper left", bbox_to_anchor=(0.0, -0.14))
        else:  # beside the axes, so it never hides a point
            ax.legend(fontsize=font, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    else:
        ax.text(0.5, 0.5, "no model has both a PSNR and an NPU runtime", ha="center",
                transform=ax.transAxes)
    ax.set_xscale("log")
    # 1-2-5 ticks over a span of a few decades; over more (or a phone's width), decades only
    decades = math.log10(t[-1] / t[0])
    _ms_axis(ax.xaxis, dense=decades <= (1.8 if narrow else 3.5))
    ax.tick_params(labelsize=font)
    ax.set_xlabel("NPU runtime (log scale)", fontsize=font + 1)
    ax.set_ylabel("PSNR, dB", fontsize=font + 1)
    ax.set_title("PSNR vs runtime; grey curves:\nequal final score" if narrow else
                 "PSNR vs runtime; grey curves: equal final score", fontsize=font + 2)
    ax.grid(True, which="both", alpha=0.2)
    fig.tight_layout()
    key = _place_labels(ax, pts, font, curve_labels)
    if key:  # numbered points: their names under the axes, one per line
        fig.text(0.01, 0.0, "\n".join(key), fontsize=font - 1, va="top", ha="left")
    return _png(fig)


def _overlapping(texts, points, renderer) -> bool:
    """True when two of `texts` overlap, one covers a marker at `points` (display
    coordinates), or one leaves the axes."""
    from matplotlib.transforms import Bbox

    boxes = [t.get_window_extent(renderer) for t in texts]
    ax_box = texts[0].axes.bbox
    if any(b.x0 < ax_box.x0 - 1 or b.x1 > ax_box.x1 + 1 or b.y0 < ax_box.y0 - 1
           or b.y1 > ax_box.y1 + 1 for b in boxes):
        return True
    half = 3  # px: the middle of a marker, which a label may touch but not cover
    markers = [Bbox([[x - half, y - half], [x + half, y + half]]) for x, y in points]
    return any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:] + markers)


def _place_labels(ax, pts: list[dict], font: int, minor=()) -> list[str]:
    """Each point's label, moved by adjustText until no two labels (nor a label and a
    point) overlap; a moved label keeps a thin line to its point. A `minor` text (a curve's
    level) that a label would overprint is hidden: the points' names come first.

    Where adjustText cannot part the labels (points packed in a corner), the points are
    numbered instead and the returned key ("1  abpn (shipped)", ...) names them; else []
    is returned.
    """
    from adjustText import adjust_text

    if not pts:
        return []
    renderer = ax.figure.canvas.get_renderer()
    for numbered in (False, True):
        texts = [ax.text(p["runtime_ms"], p["psnr"], str(i + 1) if numbered else p["label"],
                         fontsize=font, zorder=4) for i, p in enumerate(pts)]
        _, lines = adjust_text(texts, x=[p["runtime_ms"] for p in pts],
                               y=[p["psnr"] for p in pts], ax=ax, expand=(1.1, 1.3),
                               arrowprops={"arrowstyle": "-", "color": "0.5", "lw": 0.5})
        points = ax.transData.transform([(p["runtime_ms"], p["psnr"]) for p in pts])
        if numbered or not _overlapping(texts, points, renderer):
            break
        for artist in texts + list(lines):
            artist.remove()
    boxes = [t.get_window_extent(renderer) for t in texts]
    for text in minor:
        if any(text.get_window_extent(renderer).overlaps(b) for b in boxes):
            text.set_visible(False)
    return [f"{i + 1}  {p['label']}" for i, p in enumerate(pts)] if numbered else []


def _ms_axis(axis, dense: bool = True) -> None:
    """Log-scale ticks at 1, 2, 5 x 10^k (only 10^k when not `dense`) labelled "20 ms" (not
    matplotlib's 2x10^1)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0) if dense else (1.0,)))
    axis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g} ms"))
    axis.set_minor_formatter(NullFormatter())


# The drop axis spans at least this much, so a drop of a few hundredths of a dB draws as
# the small bar it is, not as a full-height one on an autoscaled axis.
MIN_DROP_SPAN_DB = 0.3


def delta_psnr_png(bars: list[dict], narrow: bool = False) -> bytes:
    """Horizontal bar per model of the FP32 -> INT8 PSNR drop; 'n.a.' where it is unknown.

    bars: {"label", "delta" (dB or None), "kind": "measured"|"published"}. Horizontal bars
    keep every model name level and whole; the axis always includes 0 and spans at least
    :data:`MIN_DROP_SPAN_DB`. `narrow`: the phone layout (larger text).
    """
    font = 9 if narrow else 8
    fig = _figure(NARROW_IN if narrow else 9, 1.1 + 0.36 * max(1, len(bars)))
    ax = fig.add_subplot()
    y = np.arange(len(bars))
    known = [b["delta"] for b in bars if b["delta"] is not None and math.isfinite(b["delta"])]
    lo, hi = min([0.0, *known]), max([0.0, *known])
    if hi - lo < MIN_DROP_SPAN_DB:  # widen on the side the values lie (drops: the right)
        if hi > 0 or lo == 0:
            hi = lo + MIN_DROP_SPAN_DB
        else:
            lo = hi - MIN_DROP_SPAN_DB
    margin = 0.2 * (hi - lo)  # room for the value labels
    ax.set_xlim(lo - (margin if lo < 0 else 0.02 * margin), hi + margin)
    for i, b in enumerate(bars):
        colour = MEASURED_COLOUR if b["kind"] == "measured" else PUBLISHED_COLOUR
        if b["delta"] is None or not math.isfinite(b["delta"]):
            ax.annotate("n.a.", (0, i), xytext=(4, 0), textcoords="offset points",
                        va="center", fontsize=font, color="0.45")
            continue
        ax.barh(i, b["delta"], color=colour, height=0.6)
        # Right of the bar's end, or of zero for a gain: never over the model names.
        ax.annotate(f"{b['delta']:+.3f} dB", (max(b["delta"], 0.0), i), xytext=(4, 0),
                    textcoords="offset points", va="center", ha="left", fontsize=font)
    ax.set_yticks(y, [b["label"] for b in bars], fontsize=font)
    ax.tick_params(axis="x", labelsize=font)
    ax.set_ylim(len(bars) - 0.5, -0.5)  # every row, in leaderboard order top to bottom
    ax.axvline(0, color="black", lw=0.8)
    ax.set_xlabel("PSNR drop FP32 -> INT8, dB\n(positive: INT8 is worse)" if narrow else
                  "PSNR drop FP32 -> INT8, dB (positive: INT8 is worse)", fontsize=font + 1)
    ax.set_title("Quantization loss (grey: published)", fontsize=font + 2)
    ax.grid(True, axis="x", alpha=0.2)
    fig.tight_layout()
    return _png(fig)


def training_curves_png(curves: list[dict], narrow: bool = False) -> bytes:
    """Training loss (left, log scale when positive) and validation PSNR (right) vs step;
    `narrow`: one above the other, for a phone.

    curves: {"label", "x": [steps], "y": [values or None], "axis": "loss" | "psnr",
    "val_set" (psnr curves: the images validated on)}. When the runs validated on different
    images, each PSNR curve names its set and the panel says they do not compare.
    """
    val_sets = sorted({c["val_set"] for c in curves if c["axis"] == "psnr" and c.get("val_set")})
    psnr_title = "validation PSNR, dB" + (f" (on {val_sets[0]})" if len(val_sets) == 1 else
                                          "\ndifferent validation sets: not comparable"
                                          if val_sets else "")
    fig = _figure(NARROW_IN, 7.2) if narrow else _figure(10, 3.8)
    grid = (2, 1) if narrow else (1, 2)
    axes = {"loss": fig.add_subplot(*grid, 1), "psnr": fig.add_subplot(*grid, 2)}
    for curve in curves:
        pairs = [(x, y) for x, y in zip(curve["x"], curve["y"])
                 if y is not None and math.isfinite(y)]
        if pairs:
            xs, ys = zip(*pairs)
            label = curve["label"] + (f" (on {curve['val_set']})" if len(val_sets) > 1 and
                                      curve.get("val_set") else "")
            axes[curve["axis"]].plot(xs, ys, label=label, lw=1,
                                     marker="." if len(xs) < 30 else None)
    for name, title in (("loss", "training loss"), ("psnr", psnr_title)):
        ax = axes[name]
        ax.set_xlabel("step (stages one after another)")
        ax.set_title(title)
        ax.grid(True, alpha=0.2)
        if ax.get_lines():
            ax.legend(fontsize=7)
    if axes["loss"].get_lines() and all(min(line.get_ydata()) > 0
                                        for line in axes["loss"].get_lines()):
        from matplotlib.ticker import FuncFormatter

        axes["loss"].set_yscale("log")
        # Plain numbers ("0.02"), not matplotlib's 2x10^-2 on a log axis; the minor ticks
        # are labelled only when the curves span less than a decade (no major tick then).
        plain = FuncFormatter(lambda v, _pos: f"{v:g}")
        axes["loss"].yaxis.set_major_formatter(plain)
        low, high = axes["loss"].get_ylim()
        if high / low < 10:
            axes["loss"].yaxis.set_minor_formatter(plain)
    for ax in axes.values():
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
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
