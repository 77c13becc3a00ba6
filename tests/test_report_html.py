"""The HTML report is one self-contained file that a real browser renders: headless Chromium
loads it with networking off, the table rows and the inline SVG plot are in the DOM."""
import re
import shutil
import subprocess

import pytest

import onnx2mil
from test_validation import small_net

CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium not installed (CI: apt-get update && apt-get install -y chromium)")


@pytest.fixture(scope="module")
def report_html(tmp_path_factory):
    report = onnx2mil.validate(small_net(), source=small_net({"b1": 0.3}))
    path = tmp_path_factory.mktemp("html") / "report.html"
    report.to_html(path)
    return report, path


def chromium(tmp_path, *args):
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={tmp_path / 'profile'}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=90)


def test_html_is_self_contained(report_html):
    report, path = report_html
    text = path.read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", text)  # no external assets
    assert "<svg" in text and text.count("<tr class=") == len(report.layers)
    assert "first divergence at node &#x27;up&#x27;" in text


@needs_chromium
def test_chromium_renders_table_rows_and_plot(report_html, tmp_path):
    report, path = report_html
    proc = chromium(tmp_path, "--dump-dom", path.as_uri())
    assert proc.returncode == 0, proc.stderr[-2000:]
    dom = proc.stdout
    body = dom[dom.index('<tbody>'):dom.index('</tbody>')]
    assert body.count("<tr") == len(report.layers)
    for layer in report.layers:
        assert f"<td>{layer.tensor}</td>" in body
    assert 'class="fail first"' in body and 'id="error-plot"' in dom


@needs_chromium
def test_chromium_screenshot_is_not_empty(report_html, tmp_path):
    _, path = report_html
    png = tmp_path / "shot.png"
    proc = chromium(tmp_path, "--window-size=1200,900", f"--screenshot={png}", path.as_uri())
    assert png.is_file(), proc.stderr[-2000:]
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000


def test_terminal_table_marks_the_first_divergence(report_html):
    from rich.console import Console

    report, _ = report_html
    console = Console(record=True, width=200)
    report.print(console)
    text = console.export_text()
    assert "DIVERGES" in text and "◀ first" in text
    assert "first divergence at node 'up' (ConvTranspose)" in text
    shown = report.worst_rows()
    assert all(layer.node in text for layer in shown) and "--all for every row" in text
    everything = Console(record=True, width=200)
    report.print(everything, all_rows=True)
    full = everything.export_text()
    assert all(layer.node in full for layer in report.layers)
