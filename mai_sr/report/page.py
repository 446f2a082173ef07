"""`index.html`: one self-contained page (inline CSS, PNGs as base64 data URIs, no script)."""

from __future__ import annotations

import base64
import html
import json

import pandas as pd

from mai_sr.report.table import is_number_text

_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
table { border-collapse: collapse; font-size: 13px; }
th, td { border-bottom: 1px solid #ddd; padding: 4px 8px; text-align: right; }
th { background: #f4f4f4; position: sticky; top: 0; }
td.text { text-align: left; }
tr.published td { color: #777; font-style: italic; }
tr.error td { background: #fff0f0; }
figure { margin: 1.5em 0; }
figure img { max-width: 100%; border: 1px solid #eee; }
figcaption, .note { color: #555; font-size: 13px; }
pre { background: #f8f8f8; padding: 1em; overflow-x: auto; font-size: 12px; }
"""


def _table_html(shown: pd.DataFrame, sources: list[str], statuses: list[str]) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in shown.columns)
    rows = []
    for values, source, status in zip(shown.itertuples(index=False), sources, statuses):
        cls = "published" if source.startswith("published") else \
            "error" if status == "error" else "measured"
        cells = "".join(
            f'<td class="{"num" if is_number_text(v) else "text"}">{html.escape(str(v))}</td>'
            for v in values)
        rows.append(f'<tr class="{cls}">{cells}</tr>')
    return (f'<table id="leaderboard"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table>')


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def render_page(*, title: str, intro: list[str], shown: pd.DataFrame, sources: list[str],
                statuses: list[str], notes: list[str], figures: list[dict],
                cards: list[dict]) -> str:
    """The report page.

    shown: the display frame of the leaderboard (strings); sources/statuses: per row, to
    style published and failed rows. figures: {"title", "caption", "png"} in page order.
    cards: the model cards, shown as JSON.
    """
    parts = [f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
             f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
             f"<h1>{html.escape(title)}</h1>"]
    parts += [f'<p class="note">{html.escape(line)}</p>' for line in intro]
    parts += ["<h2>Leaderboard</h2>", _table_html(shown, sources, statuses)]
    parts += ["<ul>"] + [f'<li class="note">{html.escape(n)}</li>' for n in notes] + ["</ul>"]
    for fig in figures:
        parts.append(f'<figure><h2>{html.escape(fig["title"])}</h2>'
                     f'<img src="{data_uri(fig["png"])}" alt="{html.escape(fig["title"])}">'
                     f'<figcaption>{html.escape(fig["caption"])}</figcaption></figure>')
    parts.append("<h2>Model cards</h2>")
    for card in cards:
        parts.append(f"<details><summary>{html.escape(card['name'])}</summary><pre>"
                     f"{html.escape(json.dumps(card, indent=2, sort_keys=True))}</pre></details>")
    parts.append("</body></html>\n")
    return "\n".join(parts)
