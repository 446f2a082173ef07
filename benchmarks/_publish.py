"""Where benchmark scripts put what they measured.

Each script writes its JSON to ``benchmarks/results/<name>.json``. Only when run with
``--write-readme`` does it also regenerate its table in the README and docs/, between ``<!-- bench:<name> -->``
and ``<!-- /bench:<name> -->``: a user's run never rewrites the README by surprise, and the
README's figures are always generated, never typed by hand. Every result records its date
and the machine load it was measured under, so every README figure can say both.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import tempfile
from pathlib import Path

from mai_sr.fileio import write_json, write_text

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
RESULTS = ROOT / "benchmarks" / "results"


def result_path(name: str) -> Path:
    return RESULTS / f"{name}.json"


DOCS = ROOT / "docs"


def recorded(name: str) -> dict:
    """The JSON result benchmark `name` wrote last, or {} before its first run (scripts that
    merge new measurements into their earlier ones)."""
    path = result_path(name)
    return json.loads(path.read_text()) if path.exists() else {}


def update_readme(name: str, body: str) -> bool:
    """Replace the block of benchmark `name` with `body` in the README and in every page of
    docs/ that holds it (the README repeats some, e.g. the shipped models' table); False if
    none has its markers."""
    begin, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    pattern = re.compile(re.escape(begin) + ".*?" + re.escape(end), re.S)
    written = False
    for page in [README, *sorted(DOCS.glob("*.md"))]:
        text = page.read_text()
        if begin in text and end in text:
            write_text(page, pattern.sub(lambda _: f"{begin}\n{body.strip()}\n{end}", text))
            written = True
    if not written:
        print(f"neither README.md nor docs/ has a {begin} block; table not written")
    return written


def add_write_readme(parser: argparse.ArgumentParser) -> None:
    """The `--write-readme` flag every benchmark script takes."""
    parser.add_argument("--write-readme", action="store_true",
                        help="also regenerate this benchmark's README table (default: JSON only)")


def measured_under() -> dict:
    """When and under what load a figure was measured (recorded in every result)."""
    return {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "load_avg_1min": round(os.getloadavg()[0], 2), "cpus": os.cpu_count()}


def without_local_paths(value):
    """`value` (JSON-like) with every absolute local path made shareable: paths inside the
    checkout relative to it, paths beside it as ``../...``, temporary files by their name.
    Results and README tables are committed, and a user's folders mean nothing to others."""
    if isinstance(value, dict):
        return {k: without_local_paths(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [without_local_paths(v) for v in value]
    if not isinstance(value, str):
        return value
    temp = re.escape(tempfile.gettempdir().rstrip("/")) + r"/(?:[^/\s\"'`|]+/)*"
    value = re.sub(temp, "", value)
    return value.replace(f"{ROOT}/", "").replace(str(ROOT), ".") \
        .replace(f"{ROOT.parent}/", "../")


def publish(name: str, result: dict, readme_body: str | None = None, *,
            write_readme: bool = False) -> None:
    """Write the JSON result of benchmark `name` (with its date and machine load when the
    script has not recorded them), and its README table only when `write_readme`."""
    result.setdefault("measured_under", measured_under())
    result = without_local_paths(result)
    readme_body = without_local_paths(readme_body)
    write_json(result_path(name), result)
    written = write_readme and readme_body is not None and update_readme(name, readme_body)
    print(f"wrote {result_path(name).relative_to(ROOT)}" + (" and its README table" if written else ""))
