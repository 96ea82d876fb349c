"""report.html in a real browser: headless Chromium loads the page and every figure decodes (non-zero
natural size). A deliberately broken image on the same page proves the check can fail."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess

import pytest

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--virtual-time-budget=15000",
)
# After load: record every image's natural width, the control's apart, on <body data-check="...">.
PROBE = """<img id="control" alt="broken on purpose" src="data:image/png;base64,AAAA">
<script>
window.addEventListener("load", () => {
  const figures = [...document.images].filter((img) => img.id !== "control");
  document.body.setAttribute("data-check", JSON.stringify({
    title: document.title,
    widths: figures.map((img) => img.naturalWidth),
    heights: figures.map((img) => img.naturalHeight),
    control: document.getElementById("control").naturalWidth,
  }));
});
</script>"""


def _chromium() -> str:
    for name in CHROMIUM_NAMES:
        if path := shutil.which(name):
            return path
    message = (
        "chromium is not installed (apt-get install -y chromium; scripts/setup.sh --dev installs it as root)"
    )
    if os.environ.get("TRANSFERLAB_REQUIRE_DATA") == "1":
        pytest.fail(message)
    pytest.skip(message)


def test_every_figure_is_displayed_in_headless_chromium(full_study, tmp_path):
    browser = _chromium()
    directory, _ = full_study
    page = (directory / "report" / "report.html").read_text(encoding="utf-8")
    expected = len(list((directory / "report").glob("*.png")))
    probe = tmp_path / "probe.html"
    probe.write_text(page.replace("</body>", PROBE + "</body>"), encoding="utf-8")
    profile = tmp_path / "profile"
    proc = subprocess.run(
        [browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--dump-dom", probe.as_uri()],
        capture_output=True,
        text=True,
        timeout=90,
    )
    found = re.search(r'data-check="([^"]*)"', proc.stdout)
    assert found, f"the page did not finish loading (exit {proc.returncode}): {proc.stderr[-2000:]}"
    check = json.loads(html.unescape(found.group(1)))
    assert check["title"].startswith("transferlab report: synthetic-fashion")
    assert len(check["widths"]) == expected >= 8
    assert all(w > 0 for w in check["widths"]) and all(h > 0 for h in check["heights"]), check
    assert check["control"] == 0  # a broken image is caught by the same measurement
