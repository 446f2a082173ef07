"""`index.html`: one self-contained page (inline CSS, PNGs as base64 data URIs, no script).

Laid out for a 1280 px window and for a 390 px phone: the leaderboard of the models measured
here (Table 1's columns; a score that is not a challenge score says so in its own cell), the
published Table 1 rows in a table of their own headed with their test set and device, an
expandable details table (per-dataset quality, complexity, runner, errors), the figures and
the model cards as small tables.

Every table sits in a scroll container of its own: on a phone a wide table scrolls inside it
(its first column, the model's name, pinned by ``position: sticky``) and the page never
scrolls sideways. Figures come in two renderings, the page's and a phone's with larger text
(``<picture>`` picks one by the window's width); the comparison grid of crops scrolls in its
container at a size where the crops can be seen.
"""

from __future__ import annotations

import base64
import html

import pandas as pd

from mai_sr.report.table import ESTIMATES_HEADING, header, is_number_text

# Below this window width the phone layout applies (figures' phone renderings, tighter text).
NARROW_PX = 700

_CSS = f"""
body {{ font-family: system-ui, sans-serif; margin: 1.5em auto; max-width: 1200px;
       padding: 0 16px; color: #222; }}
.scroll {{ overflow-x: auto; max-width: 100%; }}
table {{ border-collapse: separate; border-spacing: 0; font-size: 13px; width: 100%; }}
th, td {{ border-bottom: 1px solid #ddd; padding: 4px 6px; text-align: right;
         vertical-align: top; background: #fff; }}
th {{ background: #f4f4f4; font-weight: 600; }}
td.num {{ white-space: nowrap; }}
td.text {{ text-align: left; overflow-wrap: break-word; }}
/* Names and errors may be one long word: they may break anywhere, short words never. */
th:first-child, td:first-child {{ text-align: left; overflow-wrap: anywhere; min-width: 7em; }}
/* The model's name stays in view while a wide table scrolls in its container. */
table.board th:first-child, table.board td:first-child {{ position: sticky; left: 0;
       z-index: 1; box-shadow: 1px 0 0 #ddd; }}
#details-table td.text {{ overflow-wrap: anywhere; }}
.caveat {{ color: #9a5b00; font-size: 11px; font-style: normal; white-space: normal;
          min-width: 11em; text-align: left; }}
tr.published td {{ color: #555; }}
tr.error td {{ background: #fff0f0; }}
details {{ margin: 1em 0; }}
summary {{ cursor: pointer; font-weight: 600; }}
figure {{ margin: 1.5em 0; }}
figure img {{ max-width: 100%; height: auto; border: 1px solid #eee; }}
figcaption, .note {{ color: #555; font-size: 13px; overflow-wrap: anywhere; }}
table.card {{ width: auto; min-width: 50%; margin: 0.4em 0 0.8em; font-size: 12px; }}
table.card caption {{ text-align: left; font-weight: 600; padding: 2px 0; }}
.card-body {{ padding-left: 1em; }}
.phone-only {{ display: none; }}
@media (max-width: {NARROW_PX}px) {{
  body {{ margin: 0.8em auto; padding: 0 8px; }}
  h1 {{ font-size: 1.3em; }}
  table {{ font-size: 12px; }}
  th:first-child, td:first-child {{ min-width: 6em; max-width: 9em; }}
  .caveat {{ min-width: 15em; }}  /* two lines, not four: the row stays short */
  table.card {{ min-width: 100%; }}
  .card-body {{ padding-left: 0; }}
  .phone-only {{ display: block; }}
  /* The crops: at the page's width each would be a few pixels; scroll them instead. */
  figure.grid img {{ max-width: none; width: 720px; }}
}}
"""


def _cell(value, numeric_column: bool, extra: str = "") -> str:
    number = is_number_text(value) or (numeric_column and value == "n.a.")
    return f'<td class="{"num" if number else "text"}">{html.escape(str(value))}{extra}</td>'


def _table_html(shown: pd.DataFrame, row_classes: list[str], caveats: list | None = None,
                table_id: str = "leaderboard", css: str = "board") -> str:
    """A table of a display frame in its own scroll container; `caveats` (per row) go
    under the Final score value."""
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in shown.columns)
    score = list(shown.columns).index(header("score")) if header("score") in shown.columns \
        else None
    numeric = [any(is_number_text(v) for v in shown[c]) for c in shown.columns]
    rows = []
    for i, (values, cls) in enumerate(zip(shown.itertuples(index=False), row_classes)):
        cells = []
        for j, v in enumerate(values):
            caveat = caveats[i] if caveats is not None and j == score else None
            cells.append(_cell(v, numeric[j], f'<div class="caveat">{html.escape(caveat)}</div>'
                               if caveat else ""))
        rows.append(f'<tr class="{cls}">{"".join(cells)}</tr>')
    return (f'<div class="scroll"><table id="{table_id}" class="{css}"><thead><tr>{head}</tr>'
            f'</thead><tbody>{"".join(rows)}</tbody></table></div>')


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _figure_html(fig: dict) -> str:
    title = html.escape(fig["title"])
    img = f'<img src="{data_uri(fig["png"])}" alt="{title}">'
    if fig.get("narrow_png"):
        img = (f'<picture><source media="(max-width: {NARROW_PX}px)" '
               f'srcset="{data_uri(fig["narrow_png"])}">{img}</picture>')
    else:
        img = f'<div class="scroll">{img}</div>'
    css = "" if fig.get("narrow_png") else ' class="grid"'
    return (f'<figure{css}><h2>{title}</h2>{img}'
            f'<figcaption>{html.escape(fig["caption"])}</figcaption></figure>')


def render_page(*, title: str, intro: list[str], headings: dict[str, str],
                summary: pd.DataFrame, details: pd.DataFrame, statuses: list[str],
                caveats: list, published: pd.DataFrame, notes: list[str],
                references: list[tuple[str, str]], figures: list[dict],
                cards: list[dict], estimates: pd.DataFrame | None = None,
                estimate_notes: list[str] = ()) -> str:
    """The report page.

    summary: the leaderboard of the models measured here (display frame, strings, scores
    without their caveat, which `caveats` puts under each value); details: the details
    frame, same rows; statuses: per row, to mark failed rows. published: the published rows
    (:func:`mai_sr.report.table.published_frame`), shown under ``headings["published"]``
    (the measured table under ``headings["measured"]``). references: (citation, link).
    figures: {"title", "caption", "png", "narrow_png" (optional: the phone's rendering)} in
    page order. cards: the model cards, shown as small tables. estimates: the per-device
    latency estimates (:func:`mai_sr.report.table.estimates_frame`; none when empty), shown
    under their own heading with `estimate_notes`.
    """
    from mai_sr.report.card_html import card_html

    classes = ["error" if status == "error" else "measured" for status in statuses]
    parts = [f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
             f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
             f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
             f"<h1>{html.escape(title)}</h1>"]
    parts += [f'<p class="note">{html.escape(line)}</p>' for line in intro]
    parts += ["<h2>Leaderboard</h2>", f'<p class="note">{html.escape(headings["measured"])}</p>',
              '<p class="note phone-only">The table scrolls sideways (the model stays in '
              "view): runtimes and the final score are on the right.</p>",
              _table_html(summary, classes, caveats)]
    parts += ["<ul>"] + [f'<li class="note">{html.escape(n)}</li>' for n in notes] + ["</ul>"]
    if estimates is not None and not estimates.empty:
        parts += [f'<h2 id="estimates-heading">{html.escape(ESTIMATES_HEADING)}</h2>',
                  _table_html(estimates, classes, table_id="estimates")]
        parts += ["<ul>"] + [f'<li class="note">{html.escape(n)}</li>'
                             for n in estimate_notes] + ["</ul>"]
    if not published.empty:
        parts += ['<h2 id="published-heading">Published results, for reference</h2>',
                  f'<p class="note">{html.escape(headings["published"])}</p>',
                  _table_html(published, ["published"] * len(published),
                              table_id="published")]
    parts += ["<ul>"] + [f'<li class="note">{html.escape(text)}: <a href="{html.escape(url)}">'
                         f"{html.escape(url)}</a></li>" for text, url in references] + ["</ul>"]
    parts += ['<details id="details"><summary>Details: quality per data set, complexity, '
              "NPU runner, source, errors</summary>",
              _table_html(details, classes, table_id="details-table"), "</details>"]
    parts += [_figure_html(fig) for fig in figures]
    parts.append("<h2>Model cards</h2>")
    parts += [card_html(card) for card in cards]
    parts.append("</body></html>\n")
    return "\n".join(parts)
