"""`index.html`: one self-contained page (inline CSS, PNGs as base64 data URIs, no script).

Laid out for a 1280 px window: a compact leaderboard (Table 1's columns; a score that is not
a challenge score says so in its own cell), then an expandable details table (per-dataset
quality, complexity, runner, errors), the figures and the model cards. Text cells wrap
anywhere, so no name, path or error can widen the page.
"""

from __future__ import annotations

import base64
import html
import json

import pandas as pd

from mai_sr.report.table import header, is_number_text

_CSS = """
body { font-family: system-ui, sans-serif; margin: 1.5em auto; max-width: 1200px;
       padding: 0 16px; color: #222; }
table { border-collapse: collapse; font-size: 13px; width: 100%; }
th, td { border-bottom: 1px solid #ddd; padding: 4px 6px; text-align: right;
         vertical-align: top; }
th { background: #f4f4f4; position: sticky; top: 0; font-weight: 600; }
td.num { white-space: nowrap; }
td.text { text-align: left; overflow-wrap: break-word; }
/* Names and errors may be one long word: they may break anywhere, short words never. */
th:first-child, td:first-child { text-align: left; overflow-wrap: anywhere; min-width: 7em; }
#details-table td.text { overflow-wrap: anywhere; }
.caveat { color: #9a5b00; font-size: 11px; font-style: normal; white-space: normal;
          min-width: 11em; text-align: left; }
tr.published td { color: #777; font-style: italic; }
tr.error td { background: #fff0f0; }
details { margin: 1em 0; }
summary { cursor: pointer; font-weight: 600; }
figure { margin: 1.5em 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption, .note { color: #555; font-size: 13px; overflow-wrap: anywhere; }
pre { background: #f8f8f8; padding: 1em; overflow-x: auto; font-size: 12px;
      white-space: pre-wrap; overflow-wrap: anywhere; }
"""


def _cell(value, numeric_column: bool, extra: str = "") -> str:
    number = is_number_text(value) or (numeric_column and value == "n.a.")
    return f'<td class="{"num" if number else "text"}">{html.escape(str(value))}{extra}</td>'


def _table_html(shown: pd.DataFrame, sources: list[str], statuses: list[str],
                caveats: list | None = None, table_id: str = "leaderboard") -> str:
    """A table of a display frame; `caveats` (per row) go under the Final score value."""
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in shown.columns)
    score = list(shown.columns).index(header("score")) if header("score") in shown.columns \
        else None
    numeric = [any(is_number_text(v) for v in shown[c]) for c in shown.columns]
    rows = []
    for i, (values, source, status) in enumerate(zip(shown.itertuples(index=False), sources,
                                                     statuses)):
        cls = "published" if source == "published" else \
            "error" if status == "error" else "measured"
        cells = []
        for j, v in enumerate(values):
            caveat = caveats[i] if caveats is not None and j == score else None
            cells.append(_cell(v, numeric[j], f'<div class="caveat">{html.escape(caveat)}</div>'
                               if caveat else ""))
        rows.append(f'<tr class="{cls}">{"".join(cells)}</tr>')
    return (f'<table id="{table_id}"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table>')


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def render_page(*, title: str, intro: list[str], summary: pd.DataFrame,
                details: pd.DataFrame, sources: list[str], statuses: list[str],
                caveats: list, notes: list[str], references: list[tuple[str, str]],
                figures: list[dict], cards: list[dict]) -> str:
    """The report page.

    summary: the compact leaderboard (display frame, strings, scores without their caveat,
    which `caveats` puts under each value); details: the details frame, same rows.
    sources/statuses/caveats: per row, to style published and failed rows and label scores
    that are not challenge scores. references: (citation, link). figures: {"title",
    "caption", "png"} in page order. cards: the model cards, shown as JSON.
    """
    parts = [f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
             f"<meta name=\"viewport\" content=\"width=device-width\">"
             f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
             f"<h1>{html.escape(title)}</h1>"]
    parts += [f'<p class="note">{html.escape(line)}</p>' for line in intro]
    parts += ["<h2>Leaderboard</h2>", _table_html(summary, sources, statuses, caveats)]
    parts += ["<ul>"] + [f'<li class="note">{html.escape(n)}</li>' for n in notes]
    parts += [f'<li class="note">{html.escape(text)}: <a href="{html.escape(url)}">'
              f"{html.escape(url)}</a></li>" for text, url in references] + ["</ul>"]
    parts += ['<details id="details"><summary>Details: quality per data set, complexity, '
              "NPU runner, source, errors</summary>",
              _table_html(details, sources, statuses, table_id="details-table"), "</details>"]
    for fig in figures:
        parts.append(f'<figure><h2>{html.escape(fig["title"])}</h2>'
                     f'<img src="{data_uri(fig["png"])}" alt="{html.escape(fig["title"])}">'
                     f'<figcaption>{html.escape(fig["caption"])}</figcaption></figure>')
    parts.append("<h2>Model cards</h2>")
    for card in cards:
        summary = card["name"]
        vela = card.get("vela")
        if vela:  # Vela's estimate lives in the card, not as leaderboard columns (width)
            summary += (f" - Vela {vela['npu']}: {vela['ms']:.1f} ms (estimated), "
                        f"{vela['npu_op_percent']:g}% of ops on the NPU"
                        + ("" if vela["complete"] else f"; CPU: {vela['cpu_ops']}"))
        parts.append(f"<details><summary>{html.escape(summary)}</summary><pre>"
                     f"{html.escape(json.dumps(card, indent=2, sort_keys=True))}</pre></details>")
    parts.append("</body></html>\n")
    return "\n".join(parts)
