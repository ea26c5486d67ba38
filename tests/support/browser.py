"""Headless Chromium (Debian's `chromium`; CHROMIUM names another) measuring where a page's
tables land: the HTML report's layout tests."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = os.environ.get("CHROMIUM", "chromium")
# The flags of `make report-screenshot`: nothing fetched, no profile of the user's.
FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--force-device-scale-factor=1",
)  # fmt: skip

# Run in the page once it is laid out; the result goes into an attribute --dump-dom prints.
_MEASURE = """<script>
const edge = (el) => Math.ceil(el.getBoundingClientRect().right);
const tables = [...document.querySelectorAll("table")].map((table) => {
  const box = table.parentElement;
  let heading = box;
  while (heading && heading.tagName !== "H2") heading = heading.previousElementSibling;
  return {
    title: heading ? heading.textContent : "",
    right: edge(table),
    headers: [...table.querySelectorAll("th")].map((th) => [th.textContent, edge(th)]),
    box: {right: edge(box), overflow_x: getComputedStyle(box).overflowX,
          client_width: box.clientWidth, scroll_width: box.scrollWidth},
  };
});
document.body.setAttribute("data-layout", JSON.stringify({
  viewport: document.documentElement.clientWidth,
  page_scroll_width: document.documentElement.scrollWidth,
  tables,
}));
</script>"""
_LAYOUT = re.compile(r'data-layout="([^"]*)"')


def chromium() -> str:
    """The browser's path; without one the test is skipped, saying so. (tests/report/
    test_report_htmlpage.py pins the same layout rules in the HTML and CSS, browser or not.)"""
    found = shutil.which(CHROMIUM)
    if found is None:
        pytest.skip(f"no headless browser: {CHROMIUM} not on PATH (apt-get install -y chromium)")
    return found


def layout(page: Path, width: int, height: int, workdir: Path) -> dict[str, Any]:
    """Where the page's tables and their boxes end, laid out in a width x height window.

    A copy of the page with a measuring script is loaded; the page itself has no script.
    """
    probe = workdir / f"probe-{width}x{height}.html"
    probe.write_text(page.read_text().replace("</body>", _MEASURE + "</body>"))
    proc = subprocess.run(
        [chromium(), *FLAGS, f"--user-data-dir={workdir / 'chromium-profile'}",
         f"--window-size={width},{height}", "--dump-dom", probe.as_uri()],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    found = _LAYOUT.search(proc.stdout)
    assert found, f"chromium measured nothing (exit {proc.returncode}): {proc.stderr[-2000:]}"
    measured: dict[str, Any] = json.loads(html.unescape(found.group(1)))
    return measured
