"""Fixtures of the browser tests: Debian's Chromium through Playwright, and a live city to show.

The city is real: a Mosquitto of the module's own, the gateway as a subprocess (so a test can
stop and start it like an operator would) and all 235 simulated controllers in a harness process
that takes fault commands (``tests/browser/sim_harness.py``). Map tiles are blocked, as on a
machine without internet: the page must work without them.

Without /usr/bin/chromium, Mosquitto or the npm packages the tests skip, saying why; with
``CI=true`` they fail instead, so CI cannot pass by skipping them.
"""

from __future__ import annotations

import contextlib
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, Playwright, sync_playwright

from tests.support.mosquitto import MOSQUITTO, MosquittoProcess, free_port

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = Path("/usr/bin/chromium")
LEAFLET = REPO / "web" / "node_modules" / "leaflet" / "dist" / "leaflet.js"
LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1366, "height": 850}
STALE_AFTER_S = 2.5  # the gateway's default stale_after_s
NO_CHROMIUM = f"Debian's Chromium is missing at {CHROMIUM} (apt-get install chromium)"


def require(ok: bool, reason: str) -> None:
    """Skip with ``reason`` unless ``ok``; under CI=true fail instead."""
    if ok:
        return
    if os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}:
        pytest.fail(f"{reason} (CI is set: failing instead of skipping)", pytrace=False)
    pytest.skip(reason)


def _wait_ready(url: str, process: subprocess.Popen[bytes], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gateway exited with {process.returncode} during start-up")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url + "readyz", timeout=1.0).status_code == 200:
                return
        time.sleep(0.05)
    raise TimeoutError(f"gateway at {url} not ready after {timeout_s} s")


class GatewayProcess:
    """``python -m signal_gateway serve`` on a fixed free port, restartable."""

    def __init__(self, broker_url: str, workdir: Path) -> None:
        self.broker_url = broker_url
        self.workdir = workdir
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        """The page's URL."""
        return f"http://127.0.0.1:{self.port}/"

    def start(self) -> None:
        """Start and wait for /readyz."""
        env = {
            **os.environ,
            "SIGNAL_GATEWAY_INTERSECTIONS": str(REPO / "intersections.yaml"),
            "SIGNAL_GATEWAY_EVENT_DB": str(self.workdir / "events.sqlite3"),
        }
        self.log = (self.workdir / "gateway.log").open("ab")
        self.process = subprocess.Popen(
            [
                *(sys.executable, "-m", "signal_gateway", "serve", "--broker", self.broker_url),
                *("--host", "127.0.0.1", "--port", str(self.port)),
            ],
            cwd=REPO,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        _wait_ready(self.url, self.process)

    def stop(self) -> None:
        """SIGTERM (clients get 1001), then wait."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self.process = None
        if self.log is not None:
            self.log.close()
            self.log = None


class SimulatorProcess:
    """The fault-injecting simulator harness (see sim_harness.py)."""

    def __init__(self, broker_url: str, workdir: Path) -> None:
        self.lines: queue.Queue[str] = queue.Queue()
        self.log = (workdir / "simulator.log").open("ab")
        self.process = subprocess.Popen(
            [
                *(sys.executable, "-m", "tests.browser.sim_harness", "--broker", broker_url),
                *("--seed", "1", "--intersections", str(REPO / "intersections.yaml")),
            ],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
        )
        threading.Thread(target=self._read, daemon=True).start()
        self._expect("ready", timeout_s=60)

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.strip())

    def _expect(self, word: str, timeout_s: float = 10.0) -> None:
        try:
            line = self.lines.get(timeout=timeout_s)
        except queue.Empty:
            raise TimeoutError(f"simulator harness: no {word!r} in {timeout_s} s") from None
        if line != word:
            raise RuntimeError(f"simulator harness answered {line!r}, expected {word!r}")

    def command(self, line: str) -> None:
        """Send one command and wait for its ``ok``."""
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()
        self._expect("ok")

    def stop(self) -> None:
        """Quit (controllers announce offline), or kill after 10 s."""
        with contextlib.suppress(BrokenPipeError, OSError):
            assert self.process.stdin is not None
            self.process.stdin.write("quit\n")
            self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)
        if self.process.stdout is not None:
            self.process.stdout.close()
        self.log.close()


class City:
    """Broker, gateway and simulator of one test module."""

    def __init__(self, gateway: GatewayProcess, sim: SimulatorProcess) -> None:
        self.gateway = gateway
        self.sim = sim

    @property
    def url(self) -> str:
        """The page's URL."""
        return self.gateway.url


@pytest.fixture(scope="module")
def city() -> Iterator[City]:
    """A live city: Mosquitto, the gateway (subprocess) and 235 simulated controllers."""
    require(CHROMIUM.exists(), NO_CHROMIUM)
    require(Path(MOSQUITTO).exists(), "Mosquitto is missing (apt-get install mosquitto)")
    require(LEAFLET.exists(), "Leaflet is not installed in web/ (run: npm ci --prefix web)")
    workdir = Path(tempfile.mkdtemp(prefix="sg-browser-"))
    with MosquittoProcess("max_connections -1\n") as broker:
        gateway = GatewayProcess(broker.url, workdir)
        gateway.start()
        try:
            sim = SimulatorProcess(broker.url, workdir)
            try:
                yield City(gateway, sim)
            finally:
                sim.stop()
        finally:
            gateway.stop()
    shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="module")
def playwright_instance() -> Iterator[Playwright]:
    """Playwright's driver, per module: while it runs, its event loop is this thread's, and
    the asyncio tests of other modules could not run their own."""
    require(CHROMIUM.exists(), NO_CHROMIUM)
    with sync_playwright() as playwright:
        yield playwright


@pytest.fixture(scope="module")
def browser(playwright_instance: Playwright) -> Iterator[Browser]:
    """Debian's Chromium, headless."""
    chromium = playwright_instance.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
    yield chromium
    chromium.close()


class PageOpener:
    """Opens pages on the city; collects uncaught JavaScript errors for the test to check."""

    def __init__(self, browser: Browser, city: City) -> None:
        self.browser = browser
        self.city = city
        self.errors: list[str] = []
        self.pages: list[Page] = []

    def open(self, viewport: dict[str, int] = PHONE, query: str = "", **options: Any) -> Page:
        """A new page showing the live map, waited until live with its clock synced."""
        page = self.browser.new_page(viewport=viewport, **options)  # type: ignore[arg-type]
        self.pages.append(page)
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        page.route("**/tile.openstreetmap.org/**", lambda route: route.abort())
        page.goto(self.city.url + query)
        wait_live(page)
        return page

    def close(self) -> None:
        """Close every page opened."""
        for page in self.pages:
            page.close()


def wait_live(page: Page, timeout_ms: float = 20_000) -> None:
    """Until the page is connected, has its snapshot and a synced clock."""
    page.wait_for_function(
        "() => window.signalApp && signalApp.state === 'live' && signalApp.clock.synced",
        timeout=timeout_ms,
    )


@pytest.fixture
def pages(browser: Browser, city: City) -> Iterator[PageOpener]:
    """Opens pages; fails the test if any of them threw an uncaught error."""
    opener = PageOpener(browser, city)
    yield opener
    opener.close()
    assert not opener.errors, f"uncaught errors in the page: {opener.errors}"


def artifact(name: str) -> Path:
    """A path under test-artifacts/ (git-ignored) for screenshots and measurements."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS / name
