"""A model card (:mod:`mai_sr.report.cards`) as the page shows it: a few small tables
(the model, its files, quality per data set, runtimes, lint), not the raw JSON, which stays
in ``cards/<model>.json``.
"""

from __future__ import annotations

import html

from mai_sr.report.cards import SIM_RUNNER
from mai_sr.report.inputs import card_file_name


def _number(value, decimals: int = 2) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.{decimals}f}"
    return str(value)


def _small_table(caption: str, head: list[str] | None, rows: list[list]) -> str:
    """A captioned table of text cells (already formatted), in its own scroll container;
    numbers right-aligned in tables with a header row (columns of like values)."""
    def cell(tag: str, value, i: int) -> str:
        text = str(value)
        align = ' style="text-align:right"' if head and i and text and text.replace(
            ",", "").replace(".", "", 1).lstrip("+-").isdigit() else ' style="text-align:left"'
        return f"<{tag}{align}>{html.escape(text)}</{tag}>"

    parts = [f'<div class="scroll"><table class="card"><caption>{html.escape(caption)}'
             "</caption>"]
    if head:
        parts.append("<thead><tr>" + "".join(cell("th", h, i) for i, h in enumerate(head))
                     + "</tr></thead>")
    parts.append("<tbody>" + "".join("<tr>" + "".join(cell("td", v, i) for i, v in enumerate(r))
                                      + "</tr>" for r in rows) + "</tbody></table></div>")
    return "".join(parts)


def _summary_line(card: dict) -> str:
    """The card's one-line summary: name, status, score, and Vela's estimate when there is one."""
    line = card["name"]
    score = card["score"]
    if score["value"] is not None:
        line += f" - score {_number(score['value'])}"
    if card["status"] == "error":
        line += " - error"
    vela = card.get("vela")
    if vela:  # Vela's estimate lives in the card, not as leaderboard columns (width)
        line += (f" - Vela {vela['npu']}: {vela['ms']:.1f} ms (estimated), "
                 f"{vela['npu_op_percent']:g}% of ops on the NPU"
                 + ("" if vela["complete"] else f"; CPU: {vela['cpu_ops']}"))
    return line


def _model_rows(card: dict) -> list[list]:
    cx = card["complexity"]
    hw = cx["input_hw"]
    rows = [["architecture", card["architecture"] or "unknown"], ["scale", f"x{card['scale']}"],
            ["precision", card["precision"] or "unknown"],
            ["size KB", _number(card["size_kb"], 1)], ["params", _number(cx["params"])],
            ["MACs" + (f" at {hw[0]}x{hw[1]}" if hw else ""), _number(cx["macs"])],
            ["activations", _number(cx["activations"])], ["conv ops", _number(cx["convs"])],
            ["status", card["status"]], ["toolkit", card["toolkit_version"]]]
    if card["run_config_hash"]:
        rows.append(["run config sha256", card["run_config_hash"][:16] + "..."])
    score = card["score"]
    if score["value"] is not None:
        rows.append(["final score", f"{_number(score['value'])} (PSNR {_number(score['psnr'])} "
                                    f"on {score['dataset']}, {_number(score['runtime_ms'], 1)} ms "
                                    f"{score['runner']}"
                                    + (", simulated)" if score["simulated"] else ")")])
    return rows


def estimate_line(est: dict) -> list[str]:
    """One device's line of a card: device, estimate, profile, its validation's error."""
    check = (f"median {est['median_abs_error_pct']}%, max {est['max_abs_error_pct']}%, "
             f"Spearman {est['spearman']} ({est['validation']})" if est["validation"]
             else "not validated")
    return [est["device"], _number(est["estimate_ms"], 1), est["profile"], check,
            est["error"] or ""]


def card_html(card: dict) -> str:
    """One model card as an expandable block of small tables."""
    parts = [f"<details><summary>{html.escape(_summary_line(card))}</summary>"
             '<div class="card-body">',
             _small_table("Model", None, _model_rows(card))]
    parts.append(_small_table(
        "Files", ["file", "bytes", "input", "precision", "sha256"],
        [[f["name"], _number(f["bytes"]),
          "x".join("?" if d < 0 else str(d) for d in f["input_shape"]) if f["input_shape"]
          else "", f["precision"] or "", f["sha256"][:12] + "..."] for f in card["files"]]))
    if card["quality"]:
        parts.append(_small_table(
            "Quality (RGB PSNR, dB)", ["data", "network", "PSNR", "SSIM", "bicubic PSNR",
                                       "images"],
            [[q["dataset"], ("Keras FP32" if q["source"] == "keras" else
                             f"TFLite {q['precision'] or ''}".strip())
              + (f" (from its card {q['from_card']})" if q.get("from_card") else ""),
              _number(q["psnr"]), _number(q["ssim"], 4), _number(q["bicubic_psnr"]),
              _number(q["images"])] for q in card["quality"]]))
    # the sim runner's rows are the estimates' table, one line per device
    runtimes = [r for r in card["runtimes"] if r["runner"] != SIM_RUNNER]
    if runtimes:
        parts.append(_small_table(
            "Runtimes", ["runner", "ms", "device", "timed on", "error"],
            [[r["runner"], _number(r["avg_ms"], 1),
              (r["device"].get("name") or r["device"].get("cpu") or "")
              + (" (simulated)" if r["simulated"] and "simulated" not in
                 str(r["device"].get("name", "")) else ""),
              r.get("timed_on") or "", r["error"] or ""] for r in runtimes]))
    if card.get("estimates"):
        parts.append(_small_table(
            "Latency estimates per device (fitted cost models, not measurements)",
            ["device", "estimated ms", "profile", "validation error", "error"],
            [estimate_line(e) for e in card["estimates"]]))
    lint = card["lint"]
    if lint:
        rows = [[f] for f in lint["findings"]] or [["no errors or warnings"]]
        parts.append(_small_table(f"Lint: {lint['errors']} error(s), {lint['warnings']} "
                                  "warning(s)", None, rows))
    if card["errors"]:
        parts.append(_small_table("Errors", None, [[e] for e in card["errors"]]))
    link = f"cards/{card_file_name(card['name'])}"
    parts.append(f'<p class="note">Whole card (JSON): <a href="{html.escape(link)}">'
                 f"{html.escape(link)}</a></p></div></details>")
    return "".join(parts)
