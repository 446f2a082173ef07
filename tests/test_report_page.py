"""The report page in a real browser: headless Chromium at 1280 px and at 390 px (a phone).

One report over a training run (seen through a `latest` link, as `runs/latest` is) and two
shipped models, plus a failing float model: the page must show the whole leaderboard and
its details without horizontal scrolling, name every model for what it is, and label every
score that is not a challenge score in its own cell. At 390 px the page itself never scrolls
sideways: each row's model name and final score are in view once the leaderboard's own
scroll container is scrolled to the score (the name is pinned), and the figures are their
phone renderings, shown near their natural size. Screenshots at 1280x2400 and 390x2400 are
written to $MAI_SR_TEST_ARTIFACTS (CI keeps them), else to the test's temporary folder.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from conftest import link_images
from mai_sr.pretrained import pretrained_path
from mai_sr.report import make_report
from tflite_factory import float_sr_model, int8_sr_model

# The page's report holds a training run (a Keras ABPN's FP32 network is scored).
pytestmark = [pytest.mark.tf, pytest.mark.slow]

CHROMIUM = shutil.which("chromium")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium not installed (.ci/run installs the Debian package; "
                             "apt-get install chromium); cannot render the page")
WIDTH, HEIGHT = 1280, 2400
PHONE = 390  # an iPhone 12-15's CSS width
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
  const facts = {
    viewport: document.documentElement.clientWidth,
    scroll_width: document.documentElement.scrollWidth,
    leaderboard_right: right("#leaderboard"),
    details_right: right("#details-table"),
    estimates_right: right("#estimates"),
    estimate_headers: [...document.querySelectorAll("#estimates th")].map(
      th => th.innerText.trim()),
    headers: [...document.querySelectorAll("#leaderboard th")].map(th => th.innerText.trim()),
    rows: [...document.querySelectorAll("#leaderboard tbody tr")].map(
      tr => [...tr.cells].map(td => td.innerText.trim())),
    published: [...document.querySelectorAll("#published tbody tr")].map(
      tr => [...tr.cells].map(td => td.innerText.trim())),
    caveats: [...document.querySelectorAll("#leaderboard .caveat")].map(d => d.innerText),
    images: [...document.images].map(i => [i.naturalWidth, i.naturalHeight,
                                           Math.ceil(i.getBoundingClientRect().right),
                                           i.getBoundingClientRect().width]),
    // Each leaderboard row: its name and score cells' boxes once the table's own scroll
    // container is scrolled to the score, with the container's box and the window's width.
    visible: [...document.querySelectorAll("#leaderboard tbody tr")].map(tr => {
      const score = tr.cells[[...document.querySelectorAll("#leaderboard th")]
                             .findIndex(th => th.innerText.trim() === "Final score")];
      const box = score.closest(".scroll") || document.scrollingElement;
      box.scrollLeft = score.offsetLeft + score.offsetWidth - box.clientWidth;
      const rect = el => { const r = el.getBoundingClientRect();
                           return [r.left, r.right, r.top, r.bottom]; };
      const out = {name: rect(tr.cells[0]), score: rect(score), box: rect(box),
                   scroll_left: box.scrollLeft};
      box.scrollLeft = 0;
      return out;
    }),
  };
  if (window.parent !== window) {  // in a phone-width frame: the frame's page prints it
    window.parent.postMessage(JSON.stringify(facts), "*");
    return;
  }
  probe.textContent = JSON.stringify(facts);
  document.body.appendChild(probe);
});
</script>"""
# Headless Chromium's window is at least 500 px wide: a phone's 390 px is a frame of that
# width (its own viewport: media queries and layout see 390 px), which posts its facts here.
PHONE_FRAME = """<!DOCTYPE html><html><head><style>body {{ margin: 0; }}
iframe {{ border: 0; display: block; }}</style></head><body>
<iframe src="{src}" width="{width}" height="{height}"></iframe>
<script>
window.addEventListener("message", e => {{
  const probe = document.createElement("pre");
  probe.id = "probe";
  probe.textContent = e.data;
  document.body.appendChild(probe);
}});
</script></body></html>"""
CHROMIUM_MIN_WIDTH = 500


def _chromium(*args: str, profile: Path, width: int = WIDTH) -> str:
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
           "--no-first-run", "--disable-background-networking", "--disable-component-update",
           "--disable-sync", "--hide-scrollbars", f"--user-data-dir={profile}",
           f"--window-size={max(width, CHROMIUM_MIN_WIDTH)},{HEIGHT}",
           "--virtual-time-budget=5000", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120).stdout


def _at_width(page: Path, width: int) -> Path:
    """`page` itself, or for a width under Chromium's minimum a page framing it at `width`."""
    if width >= CHROMIUM_MIN_WIDTH:
        return page
    framed = page.with_name(f"frame{width}-{page.name}")
    framed.write_text(PHONE_FRAME.format(src=page.name, width=width, height=HEIGHT))
    return framed


def _probe(page: Path, tmp_path: Path, width: int = WIDTH) -> dict:
    """Layout facts of `page` in a window `width` px wide, measured by Chromium."""
    probed = tmp_path / f"probe-{page.name}"
    probed.write_text(page.read_text().replace("</body>", PROBE + "</body>"))
    dom = _chromium("--dump-dom", _at_width(probed, width).as_uri(),
                    profile=tmp_path / "profile", width=width)
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
    inputs = [str(base / "runs" / "latest"), str(pretrained_path("abpn.mai_builtin", "fixed")),
              str(pretrained_path("scsrn", "fixed")), str(base / "floaty.tflite")]
    return make_report(inputs, data=[str(images)], runners=["local", "synap", "sim"],
                       out_dir=base / "report", quiet=True, runner_options=FAST)


def test_models_are_named_for_what_they_are(page_report):
    table = pd.read_csv(page_report / "leaderboard.csv")
    measured = table[table.source == "measured"].set_index("model")
    assert set(measured.index) == {"abpn-20260101-120000", "abpn.mai_builtin (shipped)",
                                   "scsrn.mai_builtin (shipped)",
                                   "floaty"}
    # The shipped files have no sidecar: the architecture comes from their embedded
    # provenance, which matches the cards shipped beside them.
    for name in ("abpn.mai_builtin", "scsrn.mai_builtin"):
        shipped_card = json.loads(pretrained_path(name, "card").read_text())
        assert measured.loc[f"{name} (shipped)"].architecture == shipped_card["architecture"]
    published = table[table.source == "published"]
    assert set(published.architecture) == {"abpn", "scsrn"}  # ABPN baseline and Z6
    cards = sorted(p.name for p in (page_report / "cards").glob("*.json"))
    assert cards == ["abpn-20260101-120000.json", "abpn.mai_builtin-shipped.json", "floaty.json",
                     "scsrn.mai_builtin-shipped.json"]
    page = (page_report / "index.html").read_text()
    text = re.sub(r"data:[a-z/+]+;base64,[A-Za-z0-9+/=]+", "", page)  # the plots' bytes
    assert "latest" not in text and "seed" not in text.lower()
    # Two of Set5's images under the name "Set5": the shipped cards' INT8 PSNRs on all five
    # differ from these, so their FP32 PSNRs are not put beside them (no drop).
    assert measured.loc[["abpn.mai_builtin (shipped)",
                         "scsrn.mai_builtin (shipped)"]].delta_psnr.isna().all()
    # Published PSNRs are on other images, in a table of their own that says so.
    assert set(table[table.source == "published"].psnr_data) == {
        "the MAI 2022 challenge's test images (DIV2K)"}
    published_heading = page.index('id="published-heading"')
    assert page.index('id="published"') > published_heading > page.index('id="leaderboard"')
    assert "PSNR, DIV2K test" in page and "times on a real Synaptics VS680" in page


@needs_chromium
def test_page_fits_1280_px_and_labels_scores_in_their_cells(page_report, tmp_path):
    page = page_report / "index.html"
    probe = _probe(page, tmp_path)
    assert probe["viewport"] == WIDTH  # the window really is 1280 px wide
    assert probe["scroll_width"] <= WIDTH, probe["scroll_width"]
    assert probe["leaderboard_right"] <= WIDTH and probe["details_right"] <= WIDTH
    # The per-device estimates: one column per profile, each phone's headed as an estimate.
    from mai_sr.device.profiles import profile_names

    assert probe["estimates_right"] <= WIDTH
    assert probe["estimate_headers"][2:] == [f"{name} ms, estimated"
                                             for name in profile_names()[1:]]
    assert all(right <= WIDTH and w > 200 and h > 100 for w, h, right, _ in probe["images"])
    table = pd.read_csv(page_report / "leaderboard.csv")
    assert len(probe["rows"]) == (table.source == "measured").sum()  # published: own table
    assert len(probe["published"]) == (table.source == "published").sum() == 2
    # Every score that is not a challenge score carries its reasons in its own cell; the
    # published rows' scores (challenge scores) carry none.
    scored = table[table.score.notna()]
    expected = [c for c in scored.score_caveat if isinstance(c, str)]
    assert expected and probe["caveats"] == expected
    assert all(c.startswith("not a challenge score: PSNR on Set5") for c in expected)
    score = probe["headers"].index("Final score")
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


def _inside(inner, outer) -> bool:
    """Box `inner` (left, right, top, bottom) lies within `outer` horizontally (1 px slack)."""
    return inner[0] >= outer[0] - 1 and inner[1] <= outer[1] + 1


@needs_chromium
def test_page_reads_at_390_px(page_report, tmp_path):
    probe = _probe(page_report / "index.html", tmp_path, width=PHONE)
    assert probe["viewport"] == PHONE  # the window really is a phone's width
    assert probe["scroll_width"] <= PHONE, probe["scroll_width"]  # no sideways page scroll
    table = pd.read_csv(page_report / "leaderboard.csv")
    assert len(probe["visible"]) == (table.source == "measured").sum()
    window = [0, PHONE]
    # The leaderboard is wider than the phone: it scrolls in its own container...
    assert any(row["scroll_left"] > 0 for row in probe["visible"])
    for row in probe["visible"]:
        # ...and with the container scrolled to the score, the name (pinned) and the score
        # are both in view, side by side, inside the container and the window.
        for cell in (row["name"], row["score"]):
            assert _inside(cell, row["box"]) and _inside(cell, window), row
        assert row["name"][1] <= row["score"][0] + 1, row  # the pinned name hides no score
    # Figures: the phone renderings (narrower than the page's), shown at 80% of their
    # natural width or more, so their 9 pt text stays about 10 px; the crops grid scrolls.
    figures = [(w, shown) for w, _h, _right, shown in probe["images"]]
    plots = [(w, shown) for w, shown in figures if w < 700]
    assert len(plots) == 3  # PSNR vs runtime, drop, training curves
    assert all(shown >= 0.8 * min(w, PHONE - 16) for w, shown in plots), plots


@needs_chromium
def test_the_phone_probe_can_fail(page_report, tmp_path):
    """Without the leaderboard's scroll container the page itself overflows at 390 px."""
    bare = tmp_path / "bare.html"
    bare.write_text((page_report / "index.html").read_text().replace(
        '<div class="scroll"><table id="leaderboard"', '<div><table id="leaderboard"'))
    assert _probe(bare, tmp_path, width=PHONE)["scroll_width"] > PHONE


@needs_chromium
@pytest.mark.parametrize("width", [WIDTH, PHONE])
def test_screenshot(page_report, tmp_path, width):
    from PIL import Image

    folder = Path(os.environ.get("MAI_SR_TEST_ARTIFACTS", tmp_path))
    folder.mkdir(parents=True, exist_ok=True)
    shot = folder / f"report_page_{width}.png"
    shot.unlink(missing_ok=True)
    page = tmp_path / "index.html"  # beside its phone frame
    shutil.copy(page_report / "index.html", page)
    _chromium(f"--screenshot={shot}", _at_width(page, width).as_uri(),
              profile=tmp_path / "profile", width=width)
    with Image.open(shot) as im:
        if im.width > width:  # the window around a phone frame: keep the frame
            im.crop((0, 0, width, HEIGHT)).save(shot)
    with Image.open(shot) as im:
        assert im.size == (width, HEIGHT)
        # Not blank: the leaderboard's text and the figures are drawn.
        assert len(im.convert("L").getcolors(1 << 16) or []) > 50
