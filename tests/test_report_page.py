"""The report page in a real browser: headless Chromium at 1280 px.

One report over a training run (seen through a `latest` link, as `runs/latest` is) and two
shipped models, plus a failing float model: the page must show the whole leaderboard and
its details without horizontal scrolling, name every model for what it is, and label every
score that is not a challenge score in its own cell. A screenshot at 1280x2400 is written to
$MAI_SR_TEST_ARTIFACTS (CI keeps it), else to the test's temporary folder.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from conftest import link_images
from mai_sr.pretrained import PRETRAINED_DIR
from mai_sr.report import make_report
from mai_sr.report.table import SUMMARY
from tflite_factory import float_sr_model, int8_sr_model

pytestmark = pytest.mark.tf  # the report over a run directory loads its FP32 Keras weights

CHROMIUM = shutil.which("chromium")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium not installed (.ci/run installs the Debian package; "
                             "apt-get install chromium); cannot render the page")
WIDTH, HEIGHT = 1280, 2400
FAST = {"local": {"min_runs": 2, "min_seconds": 0.01, "warmup_runs": 1,
                  "warmup_min_seconds": 0.0}}

# Added to a copy of the page: opens every <details> (so the details table counts too), then
# writes what the browser laid out into the DOM, which --dump-dom prints.
PROBE = """<script>
window.addEventListener("load", () => {
  document.querySelectorAll("details").forEach(d => d.open = true);
  const right = sel => Math.ceil(document.querySelector(sel).getBoundingClientRect().right);
  const probe = document.createElement("pre");
  probe.id = "probe";
  probe.textContent = JSON.stringify({
    viewport: document.documentElement.clientWidth,
    scroll_width: document.documentElement.scrollWidth,
    leaderboard_right: right("#leaderboard"),
    details_right: right("#details-table"),
    rows: [...document.querySelectorAll("#leaderboard tbody tr")].map(
      tr => [...tr.cells].map(td => td.innerText.trim())),
    caveats: [...document.querySelectorAll("#leaderboard .caveat")].map(d => d.innerText),
    images: [...document.images].map(i => [i.naturalWidth, i.naturalHeight,
                                           Math.ceil(i.getBoundingClientRect().right)]),
  });
  document.body.appendChild(probe);
});
</script>"""


def _chromium(*args: str, profile: Path) -> str:
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
           "--no-first-run", "--disable-background-networking", "--disable-component-update",
           "--disable-sync", "--hide-scrollbars", f"--user-data-dir={profile}",
           f"--window-size={WIDTH},{HEIGHT}", "--virtual-time-budget=5000", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120).stdout


def _probe(page: Path, tmp_path: Path) -> dict:
    """Layout facts of `page` at 1280 px, measured by Chromium."""
    probed = tmp_path / f"probe-{page.name}"
    probed.write_text(page.read_text().replace("</body>", PROBE + "</body>"))
    dom = _chromium("--dump-dom", probed.as_uri(), profile=tmp_path / "profile")
    start = dom.index('<pre id="probe">') + len('<pre id="probe">')
    text = dom[start:dom.index("</pre>", start)]
    return json.loads(text.replace("&quot;", '"').replace("&lt;", "<").replace("&gt;", ">")
                      .replace("&amp;", "&"))


@pytest.fixture(scope="module")
def page_report(shared_data, tmp_path_factory) -> Path:
    """`mai-sr report` over runs/latest (a link to a run with its export and FP32 weights),
    the shipped abpn and scsrn, and a float model that fails lint and the simulator."""
    from mai_sr.models import create_model
    from mai_sr.runs import FP32_DEPLOY_WEIGHTS

    base = tmp_path_factory.mktemp("page")
    (base / "Set5").mkdir()
    images = link_images(base / "Set5", shared_data, ("Set5/bird.png", "Set5/butterfly.png"))
    run = base / "runs" / "abpn-20260101-120000"
    (run / "fp32").mkdir(parents=True)
    (run / "export").mkdir()
    (run / "config.json").write_text(json.dumps({"model": "abpn", "scale": 3, "steps": 2,
                                                 "val": str(shared_data / "Set14")}))
    (run / "metrics.csv").write_text("step,stage,loss,lr,val_psnr,time\n1,fp32,9.0,0.001,,0.1\n"
                                     "2,fp32,7.0,0.001,24.0,0.2\n1,qat,6.5,1e-05,24.5,0.3\n")
    create_model("abpn", deploy=True).save_weights(str(run / FP32_DEPLOY_WEIGHTS))
    int8_sr_model(run / "export" / "abpn.tflite", shape=(24, 32))
    int8_sr_model(run / "export" / "abpn_none.tflite", shape=None)
    (base / "runs" / "latest").symlink_to(run)
    float_sr_model(base / "floaty.tflite", shape=(24, 32))
    inputs = [str(base / "runs" / "latest"), str(PRETRAINED_DIR / "abpn.tflite"),
              str(PRETRAINED_DIR / "scsrn.tflite"), str(base / "floaty.tflite")]
    return make_report(inputs, data=[str(images)], runners=["local", "synap"],
                       out_dir=base / "report", quiet=True, runner_options=FAST)


def test_models_are_named_for_what_they_are(page_report):
    table = pd.read_csv(page_report / "leaderboard.csv")
    measured = table[table.source == "measured"].set_index("model")
    assert set(measured.index) == {"abpn-20260101-120000", "abpn (shipped)", "scsrn (shipped)",
                                   "floaty"}
    # The shipped files have no sidecar: the architecture comes from their embedded
    # provenance, which matches the cards shipped beside them.
    for name in ("abpn", "scsrn"):
        shipped_card = json.loads((PRETRAINED_DIR / f"{name}.json").read_text())
        assert measured.loc[f"{name} (shipped)"].architecture == shipped_card["architecture"]
    published = table[table.source == "published"]
    assert set(published.architecture) == {"abpn", "scsrn"}  # ABPN baseline and Z6
    cards = sorted(p.name for p in (page_report / "cards").glob("*.json"))
    assert cards == ["abpn-20260101-120000.json", "abpn-shipped.json", "floaty.json",
                     "scsrn-shipped.json"]
    page = (page_report / "index.html").read_text()
    assert "latest" not in page and "seed" not in page.lower()


@needs_chromium
def test_page_fits_1280_px_and_labels_scores_in_their_cells(page_report, tmp_path):
    page = page_report / "index.html"
    probe = _probe(page, tmp_path)
    assert probe["viewport"] == WIDTH  # the window really is 1280 px wide
    assert probe["scroll_width"] <= WIDTH, probe["scroll_width"]
    assert probe["leaderboard_right"] <= WIDTH and probe["details_right"] <= WIDTH
    assert all(right <= WIDTH and w > 200 and h > 100 for w, h, right in probe["images"])
    table = pd.read_csv(page_report / "leaderboard.csv")
    assert len(probe["rows"]) == len(table)
    # Every score that is not a challenge score carries its reasons in its own cell; the
    # published rows' scores (challenge scores) carry none.
    scored = table[table.score.notna()]
    expected = [c for c in scored.score_caveat if isinstance(c, str)]
    assert expected and probe["caveats"] == expected
    assert all(c.startswith("not a challenge score: PSNR on Set5") for c in expected)
    score = SUMMARY.index("score")
    shipped = [row for row in probe["rows"] if row[0].endswith("(shipped)")]
    assert len(shipped) == 2
    for row in shipped:  # the value and its label, in the one cell
        value, label = row[score].split("\n", 1)
        assert float(value) > 0 and label.startswith("not a challenge score")


@needs_chromium
def test_the_width_probe_can_fail(page_report, tmp_path):
    """The same probe on the page plus one over-wide element reports the overflow."""
    wide = tmp_path / "wide.html"
    wide.write_text((page_report / "index.html").read_text().replace(
        "<h2>Leaderboard</h2>", '<h2>Leaderboard</h2><div style="width:1500px">x</div>'))
    assert _probe(wide, tmp_path)["scroll_width"] > WIDTH


@needs_chromium
def test_screenshot_at_1280_px(page_report, tmp_path):
    from PIL import Image

    folder = Path(os.environ.get("MAI_SR_TEST_ARTIFACTS", tmp_path))
    folder.mkdir(parents=True, exist_ok=True)
    shot = folder / "report_page_1280.png"
    shot.unlink(missing_ok=True)
    _chromium(f"--screenshot={shot}", (page_report / "index.html").as_uri(),
              profile=tmp_path / "profile")
    with Image.open(shot) as im:
        assert im.size == (WIDTH, HEIGHT)
        # Not blank: the leaderboard's text and the figures are drawn.
        assert len(im.convert("L").getcolors(1 << 16) or []) > 50
