"""Headless Chromium driven over the DevTools protocol through a pipe (``--remote-debugging-pipe``):
no driver, no websocket library, only the stdlib. Chromium reads NUL-terminated JSON commands on
its fd 3 and writes replies and events on its fd 4.

A ``Page`` records what a person's browser would show and do while loading a file: console
messages and uncaught exceptions (``errors``), every network request (``requests``), and can
evaluate JavaScript in the page or print it to PDF as Chromium prints it.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import re
import select
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

TIMEOUT = 60.0


def chromium_binary() -> str | None:
    """Debian's chromium (``apt-get install chromium``), if installed."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


def place_fds(reading: int, writing: int) -> None:
    """In the child: ``reading`` becomes fd 3 and ``writing`` fd 4 (copied above both first, so
    neither is overwritten by the other's move)."""
    high_reading, high_writing = fcntl.fcntl(reading, fcntl.F_DUPFD, 10), fcntl.fcntl(writing, fcntl.F_DUPFD, 10)
    os.dup2(high_reading, 3)
    os.dup2(high_writing, 4)


class Browser:
    """One headless Chromium process and its DevTools pipe."""

    def __init__(self, binary: str) -> None:
        self.profile = tempfile.mkdtemp(prefix="lab-chromium-")
        to_chrome_r, self.to_chrome = os.pipe()
        self.from_chrome, from_chrome_w = os.pipe()
        # Chromium takes fd 3 as its input and fd 4 as its output; dup them into place in the child.
        self.process = subprocess.Popen(
            [binary, "--headless", "--remote-debugging-pipe", "--no-sandbox", "--disable-gpu",
             "--no-first-run", "--no-default-browser-check", "--disable-extensions", "--disable-sync",
             "--disable-background-networking", "--disable-component-update", "--hide-scrollbars",
             f"--user-data-dir={self.profile}", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            pass_fds=(3, 4), preexec_fn=lambda: place_fds(to_chrome_r, from_chrome_w))
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self.buffer = b""
        self.next_id = 0
        self.events: list[dict[str, Any]] = []

    def send(self, method: str, params: dict[str, Any] | None = None, session: str | None = None) -> dict[str, Any]:
        """Send one command and wait for its reply (events that arrive meanwhile are kept)."""
        self.next_id += 1
        message: dict[str, Any] = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self.to_chrome, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + TIMEOUT
        while True:
            reply = self.receive(deadline)
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                result: dict[str, Any] = reply.get("result", {})
                return result
            self.events.append(reply)

    def receive(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.from_chrome], [], [], left)[0]:
                raise TimeoutError("no answer from chromium")
            chunk = os.read(self.from_chrome, 1 << 20)
            if not chunk:
                raise RuntimeError("chromium closed its DevTools pipe")
            self.buffer += chunk
        message, self.buffer = self.buffer.split(b"\0", 1)
        parsed: dict[str, Any] = json.loads(message)
        return parsed

    def wait_for(self, method: str, session: str) -> dict[str, Any]:
        """The first event ``method`` of ``session`` (already received or still to come)."""
        deadline = time.monotonic() + TIMEOUT
        while True:
            for event in self.events:
                if event.get("method") == method and event.get("sessionId") == session:
                    self.events.remove(event)
                    return event
            self.events.append(self.receive(deadline))

    def close(self) -> None:
        try:
            self.send("Browser.close")
        except (RuntimeError, TimeoutError, OSError):
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self.to_chrome)
        os.close(self.from_chrome)
        shutil.rmtree(self.profile, ignore_errors=True)


@dataclass
class Page:
    """A page loaded in its own tab at 1280x800, with what it logged and requested."""

    browser: Browser
    session: str
    url: str
    errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)

    def collect(self) -> None:
        """Sort the events received so far into console errors and requests."""
        for event in [e for e in self.browser.events if e.get("sessionId") == self.session]:
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert", "warning"):
                self.errors.append(" ".join(str(a.get("value", a.get("description"))) for a in params["args"]))
            elif method == "Runtime.exceptionThrown":
                self.errors.append(params["exceptionDetails"].get("text", "exception"))
            elif method == "Log.entryAdded" and params["entry"].get("level") in ("error", "warning"):
                self.errors.append(params["entry"].get("text", ""))
            elif method == "Network.requestWillBeSent":
                self.requests.append(params["request"]["url"])
            else:
                continue
            self.browser.events.remove(event)

    def evaluate(self, expression: str) -> Any:
        """The value of ``expression`` evaluated in the page (JSON-serialisable values)."""
        found = self.browser.send("Runtime.evaluate", {"expression": expression, "returnByValue": True},
                                  self.session)
        if "exceptionDetails" in found:
            raise RuntimeError(f"{expression}: {found['exceptionDetails']}")
        return found["result"].get("value")

    def pdf(self) -> bytes:
        """The page printed as Chromium prints it on A4 (the page's own @page rules preferred,
        backgrounds not printed, as a default print dialog does)."""
        printed = self.browser.send("Page.printToPDF", {"paperWidth": 8.27, "paperHeight": 11.69,
                                                         "preferCSSPageSize": True, "printBackground": False},
                                    self.session)
        return base64.b64decode(printed["data"])


def pdf_pages(pdf: bytes) -> int:
    """How many pages a PDF has: its page objects (``/Type /Page``, not ``/Pages``)."""
    return len(re.findall(rb"/Type\s*/Page(?![a-zA-Z])", pdf))


@contextmanager
def browser(binary: str) -> Iterator[Browser]:
    started = Browser(binary)
    try:
        yield started
    finally:
        started.close()


def load(chrome: Browser, url: str) -> Page:
    """Open ``url`` in a new 1280x800 tab and wait until it has loaded."""
    target = chrome.send("Target.createTarget", {"url": "about:blank"})["targetId"]
    session = chrome.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
    for domain in ("Page", "Runtime", "Log", "Network"):
        chrome.send(f"{domain}.enable", {}, session)
    chrome.send("Emulation.setDeviceMetricsOverride",
                {"width": 1280, "height": 800, "deviceScaleFactor": 1, "mobile": False}, session)
    chrome.send("Page.navigate", {"url": url}, session)
    chrome.wait_for("Page.loadEventFired", session)
    page = Page(chrome, session, url)
    page.evaluate("document.readyState")  # a round trip, so events of the load have all arrived
    page.collect()
    return page
