"""Where benchmark scripts put what they measured.

Each script writes its JSON to ``benchmarks/results/<name>.json`` and regenerates its README
table between ``<!-- bench:<name> -->`` and ``<!-- /bench:<name> -->``, so the README's
figures are always the last measured ones, never typed by hand.
"""

from __future__ import annotations

import re
from pathlib import Path

from mai_sr.fileio import write_json, write_text

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
RESULTS = ROOT / "benchmarks" / "results"


def result_path(name: str) -> Path:
    return RESULTS / f"{name}.json"


def update_readme(name: str, body: str) -> bool:
    """Replace the README block of benchmark `name` with `body`; False if it has no markers."""
    begin, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    text = README.read_text()
    if begin not in text or end not in text:
        print(f"README has no {begin} block; table not written")
        return False
    pattern = re.compile(re.escape(begin) + ".*?" + re.escape(end), re.S)
    write_text(README, pattern.sub(lambda _: f"{begin}\n{body.strip()}\n{end}", text, count=1))
    return True


def publish(name: str, result: dict, readme_body: str | None = None) -> None:
    """Write the JSON result and, when given, the README table of benchmark `name`."""
    write_json(result_path(name), result)
    written = readme_body is not None and update_readme(name, readme_body)
    print(f"wrote {result_path(name).relative_to(ROOT)}" + (" and its README table" if written else ""))
