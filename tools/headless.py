"""Headless Chromium for the book's browser tests and benchmarks, over the DevTools protocol.

``Book(html_folder)`` serves a built book (``_build/html``) on 127.0.0.1 from a thread, starts
Chromium headless with an empty profile, and gives one page: ``open(path)`` navigates and
waits for the load event, ``evaluate(js)`` runs an expression (promises awaited) and returns
its JSON value, ``screenshot(path)`` writes a PNG. Every request the page made is in
``requests`` (URL strings), so a test can check that nothing left the book's own files.

Chromium is found as ``chromium`` or ``chromium-browser`` on PATH, or ``$CHROMIUM``; the
Makefile's test target installs the distribution's package when none is there. The protocol
runs over a WebSocket (``websocket-client``, pinned in requirements.txt).
"""
from __future__ import annotations

import base64
import functools
import http.server
import itertools
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import websocket

__all__ = ["Book", "chromium_path"]


def chromium_path() -> str | None:
    """The Chromium executable, or None."""
    if os.environ.get("CHROMIUM"):
        return os.environ["CHROMIUM"]
    return next((p for p in map(shutil.which, ("chromium", "chromium-browser")) if p), None)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


class Book:
    """A built book in headless Chromium (see the module docstring). Use as a context manager."""

    def __init__(self, html_folder, width: int = 1280, height: int = 900, serve: bool = True):
        self.folder = Path(html_folder)
        if not (self.folder / "index.html").is_file():
            raise FileNotFoundError(f"{self.folder} holds no built book (index.html missing)")
        executable = chromium_path()
        if executable is None:
            raise FileNotFoundError("Chromium not found: install the distribution's package "
                                    "(apt-get install chromium) or set $CHROMIUM")
        self.requests: list[str] = []
        self.console: list[str] = []
        self._ids = itertools.count(1)
        self._server = None
        if serve:
            handler = functools.partial(_QuietHandler, directory=str(self.folder))
            self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
            threading.Thread(target=self._server.serve_forever, daemon=True).start()
            self.origin = f"http://127.0.0.1:{self._server.server_address[1]}"
        else:
            self.origin = self.folder.resolve().as_uri()
        self._profile = tempfile.mkdtemp(prefix="d2tl-chromium-")
        self._process = subprocess.Popen(
            [executable, "--headless=new", "--no-sandbox", "--disable-gpu",
             "--disable-dev-shm-usage", "--no-first-run", "--no-default-browser-check",
             "--disable-background-networking", "--disable-component-update",
             "--disable-extensions", "--hide-scrollbars", "--mute-audio",
             f"--window-size={width},{height}", "--remote-debugging-port=0",
             f"--user-data-dir={self._profile}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            self._socket = websocket.create_connection(self._page_socket(), timeout=120,
                                                       suppress_origin=True)
            for domain in ("Page", "Network", "Runtime"):
                self.call(f"{domain}.enable")
            self.call("Emulation.setDeviceMetricsOverride", width=width, height=height,
                      deviceScaleFactor=1, mobile=False)
        except BaseException:
            self.close()
            raise

    def _page_socket(self) -> str:
        port_file = Path(self._profile) / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not port_file.is_file() or not port_file.read_text().strip():
            if self._process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("Chromium did not start its DevTools endpoint")
            time.sleep(0.05)
        port = port_file.read_text().split()[0]
        while True:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
                pages = [t for t in json.load(r) if t.get("type") == "page"]
            if pages:
                return pages[0]["webSocketDebuggerUrl"]
            time.sleep(0.05)

    # -- the protocol ------------------------------------------------------------------------

    def _handle_event(self, message: dict) -> None:
        method, params = message.get("method"), message.get("params", {})
        if method == "Network.requestWillBeSent":
            self.requests.append(params["request"]["url"])
        elif method == "Runtime.consoleAPICalled":
            self.console.append(" ".join(str(a.get("value", a.get("description", "")))
                                         for a in params.get("args", [])))
        elif method == "Runtime.exceptionThrown":
            self.console.append("exception: " + params["exceptionDetails"].get("text", "")
                                + " " + str(params["exceptionDetails"].get("exception", {})
                                            .get("description", "")))

    def call(self, method: str, **params) -> dict:
        """Send one DevTools command and return its result (events seen meanwhile recorded)."""
        ident = next(self._ids)
        self._socket.send(json.dumps({"id": ident, "method": method, "params": params}))
        while True:
            message = json.loads(self._socket.recv())
            if message.get("id") == ident:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            self._handle_event(message)

    def _wait_for(self, event: str, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._socket.settimeout(max(deadline - time.monotonic(), 0.01))
            try:
                message = json.loads(self._socket.recv())
            except websocket.WebSocketTimeoutException:
                break
            finally:
                self._socket.settimeout(120)
            self._handle_event(message)
            if message.get("method") == event:
                return message.get("params", {})
        raise TimeoutError(f"no {event} within {timeout} s")

    # -- what tests use ----------------------------------------------------------------------

    def url(self, path: str) -> str:
        return f"{self.origin}/{path.lstrip('/')}"

    def open(self, path: str, timeout: float = 60) -> None:
        """Navigate to ``path`` (relative to the book's root) and wait until that document has
        loaded (a page that redirects elsewhere, like the book's index.html, never does:
        TimeoutError)."""
        url = self.url(path)
        self.call("Page.navigate", url=url)
        self._wait_for("Page.loadEventFired", timeout)
        self.wait_until(f"document.readyState === 'complete' && location.href.split('#')[0] "
                        f"=== {json.dumps(url)}", timeout)

    def evaluate(self, expression: str, timeout: float = 60):
        """The JSON value of a JavaScript expression in the page (a promise is awaited)."""
        result = self.call("Runtime.evaluate", expression=expression, awaitPromise=True,
                           returnByValue=True, timeout=int(timeout * 1000))
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            raise RuntimeError(f"{expression[:80]!r} threw: "
                               f"{details.get('exception', {}).get('description', details)}")
        return result["result"].get("value")

    def wait_until(self, expression: str, timeout: float = 60, poll: float = 0.05):
        """Poll ``expression`` until it is truthy; its value."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                value = self.evaluate(expression)
            except RuntimeError as err:  # the document was replaced while it was asked
                if "context" not in str(err).lower() or time.monotonic() > deadline:
                    raise
                value = None
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"{expression!r} stayed falsy for {timeout} s")
            time.sleep(poll)

    def screenshot(self, path, full_page: bool = True) -> Path:
        """A PNG of the page (the whole page by default) at ``path``."""
        params = {"format": "png"}
        if full_page:
            params["captureBeyondViewport"] = True
            size = self.call("Page.getLayoutMetrics")["cssContentSize"]
            params["clip"] = {"x": 0, "y": 0, "width": size["width"],
                              "height": min(size["height"], 16000), "scale": 1}
        data = self.call("Page.captureScreenshot", **params)["data"]
        Path(path).write_bytes(base64.b64decode(data))
        return Path(path)

    def cpu_times(self) -> tuple[float, float]:
        """(user, system) CPU seconds of Chromium and every process it started, so far."""
        import psutil

        try:
            browser = psutil.Process(self._process.pid)
            processes = [browser, *browser.children(recursive=True)]
        except psutil.NoSuchProcess:
            return 0.0, 0.0
        user = system = 0.0
        for process in processes:
            try:
                times = process.cpu_times()
            except psutil.NoSuchProcess:
                continue
            user += times.user + times.children_user
            system += times.system + times.children_system
        return user, system

    def close(self) -> None:
        try:
            if getattr(self, "_socket", None) is not None:
                self._socket.close()
        finally:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
            if self._server is not None:
                self._server.shutdown()
                self._server.server_close()
            shutil.rmtree(self._profile, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
