"""report.html: self-contained, well-formed, the warnings and counts a user needs, and it renders in a real browser.

The browser test drives Debian's chromium through the DevTools protocol over a pipe (``--remote-debugging-pipe``,
no extra Python package): it fails on any page exception, console or log error, or any request besides the report
itself (the page must work offline). It is skipped only where no chromium is installed; CI installs it (.ci/run).
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import queue
import shutil
import subprocess
import threading
from html.parser import HTMLParser
from pathlib import Path

import pytest

from conftest import CLASSIFIER_PTH, DNABERT_DIR, ESM_PT, INPUT_FA
from test_summary import PROVIRUS, PROVIRUS_WINDOWS, _dna, build_sample
from virnucpro.cli import main
from virnucpro.summarize import OUTPUT_FILES

CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)
VOID = {"meta", "link", "br", "hr", "img", "input"}


class _Balance(HTMLParser):
    """Fails on a closing tag that does not match the open one; records every external reference."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.external: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.tags.append(tag)
        for name, value in attrs:
            if name in ("src", "href", "xlink:href") or (value and "url(" in value):
                self.external.append(f"{tag} {name}={value}")
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list) -> None:
        self.tags.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
        else:
            self.stack.pop()


def _parse(html: str) -> _Balance:
    parser = _Balance()
    parser.feed(html)
    parser.close()
    return parser


@pytest.fixture(scope="module")
def constructed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Mostly 150 bp reads (short for a 500 bp window), a duplicate id, a provirus-like contig, a hostile id."""
    folder = tmp_path_factory.mktemp("report")
    reads = [(f"short{i}", _dna(150, 100 + i), [[0.3 + 0.05 * i]]) for i in range(8)]
    reads += [
        ("short3", _dna(150, 99), [], "duplicate_id"),
        ("provirus_host", PROVIRUS, PROVIRUS_WINDOWS),
        ('<b>&"odd"', _dna(1200, 5), [[0.9], [0.8], [0.95]]),
    ]
    args = build_sample(folder, reads)
    args.remove("-q")
    folder.joinpath("args.json").write_text(json.dumps(args))
    return folder


def test_report_content_and_warnings(constructed: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(json.loads((constructed / "args.json").read_text())) == 0
    err = capsys.readouterr().err
    assert "8 reads are shorter than half the 500 bp window (< 250 bp): confidence low at most — that is 73%" in err
    assert "53% accuracy on 150 bp reads" in err
    assert "1 read repeats an id" in err and "(e.g. short3)" in err
    html = (constructed / "out" / "report.html").read_text()
    parsed = _parse(html)
    assert not parsed.errors and not parsed.stack, (parsed.errors, parsed.stack)
    assert not parsed.external and "<script" not in html and "@import" not in html
    assert "8 reads are shorter than half the 500 bp window" in html and "Duplicate ids: 1." in html
    assert "<tr><td>duplicate_id</td><td class=\"n\">1</td></tr>" in html
    # both contigs longer than one window are drawn (both have a region); the hostile id is escaped
    assert html.count('class="track"') == 2
    assert "&lt;b&gt;&amp;&quot;odd&quot;" in html and '<b>&"odd"' not in html
    assert html.index("provirus_host · 6321 bp") < html.index("&lt;b&gt;&amp;&quot;odd&quot; · 1200 bp")  # longest first
    assert "provirus_host · 6321 bp · call others (low) · 13 windows scored of 13 · 1 region<" in html


def test_report_without_warnings_says_so(tmp_path: Path) -> None:
    args = build_sample(tmp_path, [("long", _dna(1000, 1), [[0.9], [0.9]])])
    assert main(args) == 0
    html = (tmp_path / "out" / "report.html").read_text()
    assert '<section id="warnings"><h2>Warnings</h2>\n<p>None.</p>' in html


@pytest.fixture(scope="module")
def run_output(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("run300")
    args = ["run", str(INPUT_FA), "--outdir", str(out), "--chunk-length", "300", "--dnabert", str(DNABERT_DIR),
            "--esm", str(ESM_PT), "--classifier", str(CLASSIFIER_PTH), "--device", "cpu", "--precision", "fp32", "-q"]
    assert main(args) == 0
    return out


def test_run_writes_every_output_and_lists_it_in_the_manifest(run_output: Path) -> None:
    manifest = json.loads((run_output / "manifest.json").read_text())
    assert sorted(manifest["outputs"]) == sorted(OUTPUT_FILES)
    assert all((run_output / name).stat().st_size > 0 for name in OUTPUT_FILES)
    assert manifest["models"]["classifier"]["published"] is None  # the tiny test classifier is not a published one
    summary = (run_output / "virus_summary.tsv").read_text().splitlines()
    assert len(summary) == 61


class _DevTools:
    """Minimal Chrome DevTools protocol client over ``--remote-debugging-pipe`` (NUL-separated JSON on fds 3/4)."""

    def __init__(self, binary: str, profile: Path) -> None:
        cmd_r, self._cmd_w = os.pipe()
        self._evt_r, evt_w = os.pipe()
        cmd_r, evt_w = _above_four(cmd_r), _above_four(evt_w)  # so that moving them to fds 3 and 4 clobbers nothing
        flags = ["--headless", "--no-sandbox", "--disable-gpu", "--remote-debugging-pipe", "--no-first-run",
                 "--disable-extensions", "--disable-background-networking", f"--user-data-dir={profile}"]
        self.proc = subprocess.Popen(
            ["bash", "-c", f'exec "$0" "$@" 3<&{cmd_r} 4>&{evt_w} {cmd_r}<&- {evt_w}>&-', binary, *flags],
            pass_fds=(cmd_r, evt_w), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        os.close(cmd_r)
        os.close(evt_w)
        self.messages: queue.Queue = queue.Queue()
        self.events: list[dict] = []
        self._next = 0
        threading.Thread(target=self._reader, daemon=True).start()

    def _reader(self) -> None:
        buf = b""
        with os.fdopen(self._evt_r, "rb") as fh:
            while chunk := fh.read1(65536):
                buf += chunk
                *done, buf = buf.split(b"\0")
                for raw in done:
                    self.messages.put(json.loads(raw))
        self.messages.put(None)

    def send(self, method: str, params: dict | None = None, session: str | None = None, timeout: float = 30) -> dict:
        self._next += 1
        msg = {"id": self._next, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._cmd_w, json.dumps(msg).encode() + b"\0")
        while True:
            reply = self.messages.get(timeout=timeout)
            assert reply is not None, f"chromium exited while waiting for {method}"
            if reply.get("id") == self._next:
                assert "error" not in reply, (method, reply["error"])
                return reply["result"]
            self.events.append(reply)

    def wait_event(self, method: str, timeout: float = 30) -> dict:
        for event in self.events:
            if event.get("method") == method:
                return event
        while True:
            event = self.messages.get(timeout=timeout)
            assert event is not None, f"chromium exited while waiting for {method}"
            self.events.append(event)
            if event.get("method") == method:
                return event

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout=10)
        except Exception:  # noqa: BLE001 - the browser may close the pipe before answering
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._cmd_w)


def _above_four(fd: int) -> int:
    high = fcntl.fcntl(fd, fcntl.F_DUPFD, 10)
    os.close(fd)
    return high


def render_in_chromium(report: Path, profile: Path, screenshot: Path) -> dict:
    """Open ``report`` in headless chromium; returns problems seen and a few facts about the rendered page."""
    assert CHROMIUM
    browser = _DevTools(CHROMIUM, profile)
    try:
        target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = browser.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Runtime", "Log", "Page", "Network"):
            browser.send(f"{domain}.enable", session=session)
        browser.send("Emulation.setDeviceMetricsOverride", {"width": 1100, "height": 2400, "deviceScaleFactor": 1, "mobile": False}, session=session)
        url = report.resolve().as_uri()
        browser.send("Page.navigate", {"url": url}, session=session)
        browser.wait_event("Page.loadEventFired")
        facts = json.loads(browser.send("Runtime.evaluate", {"returnByValue": True, "expression": """JSON.stringify({
            title: document.title,
            svgs: document.querySelectorAll('svg').length,
            tracks: document.querySelectorAll('svg.track').length,
            drawn: [...document.querySelectorAll('svg')].filter(s => s.getBoundingClientRect().width > 100 && s.getBBox().height > 50).length,
            sections: [...document.querySelectorAll('section')].map(s => s.id),
            resources: performance.getEntriesByType('resource').length,
            height: document.body.scrollHeight})"""}, session=session)["result"]["value"])
        shot = browser.send("Page.captureScreenshot", {"format": "png"}, session=session)["data"]
        screenshot.write_bytes(base64.b64decode(shot))
        problems = []
        for e in browser.events:
            method, params = e.get("method"), e.get("params", {})
            if method == "Runtime.exceptionThrown":
                problems.append(f"exception: {params['exceptionDetails'].get('text')}")
            elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "warning", "assert"):
                problems.append(f"console {params['type']}: {params.get('args')}")
            elif method == "Log.entryAdded" and params["entry"]["level"] in ("error", "warning"):
                problems.append(f"log {params['entry']['level']}: {params['entry']['text']}")
            elif method == "Network.requestWillBeSent" and params["request"]["url"] != url:
                problems.append(f"request: {params['request']['url']}")
            elif method == "Network.loadingFailed":
                problems.append(f"load failed: {params.get('errorText')}")
        return {"problems": problems, **facts}
    finally:
        browser.close()


@pytest.mark.parametrize("which", ["constructed", "run"])
def test_report_renders_in_headless_chromium(which: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    if CHROMIUM is None:
        if os.environ.get("VIRNUCPRO_REQUIRE_CHROMIUM"):
            pytest.fail("chromium is required here (VIRNUCPRO_REQUIRE_CHROMIUM is set) but not installed")
        pytest.skip("chromium not installed (CI installs it: .ci/run)")
    if which == "constructed":
        folder = request.getfixturevalue("constructed")
        assert main(json.loads((folder / "args.json").read_text()) + ["-q"]) == 0
        report, tracks = folder / "out" / "report.html", 2
    else:
        report = request.getfixturevalue("run_output") / "report.html"
        tracks = report.read_text().count('class="track"')
        assert tracks >= 5
    shot = tmp_path / "report.png"
    seen = render_in_chromium(report, tmp_path / "profile", shot)
    assert seen["problems"] == []
    assert seen["title"].startswith("VirNucPro report")
    assert seen["sections"] == ["warnings", "calls", "statuses", "scores", "lengths", "tracks"]
    assert seen["tracks"] == tracks and seen["svgs"] == tracks + 3 and seen["drawn"] == seen["svgs"]
    assert seen["resources"] == 0 and seen["height"] > 1000
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and int.from_bytes(png[16:20], "big") == 1100
