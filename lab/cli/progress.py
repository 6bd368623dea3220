"""Progress of a running campaign: a live status line in a terminal, plain lines elsewhere (or in CI)."""

from __future__ import annotations

import os
import shutil
import sys
import threading
from typing import TextIO

from lab.api import CampaignStarting, RunEvent


def wants_live(stream: TextIO) -> bool:
    """Live display only on a terminal and never when ``CI`` is set."""
    return stream.isatty() and not os.environ.get("CI")


class ProgressPrinter:
    """Prints campaign progress; thread-safe, since sandboxes report from worker threads."""

    def __init__(self, stream: TextIO | None = None, live: bool | None = None) -> None:
        self.stream = stream or sys.stderr
        self.live = wants_live(self.stream) if live is None else live
        self.lock = threading.Lock()
        self.status: dict[str, str] = {}

    def __call__(self, event: RunEvent) -> None:
        if isinstance(event, CampaignStarting):
            with self.lock:
                self.stream.write(f"campaign of {event.build_ref} (sha256 {event.digest[:12]}…) on {event.sandboxes} "
                                  f"sandbox(es), {event.parallel} at a time\n")
                self.stream.flush()
            return
        mark = "ok" if event.ok else ("FAIL" if event.what == "cell" else "FAILED")
        where = f"[{event.cells_done}/{event.cells_total}] {event.sandbox}"
        line = f"{where}: {event.what} {event.name}: {mark} ({event.detail})"
        with self.lock:
            if not self.live:
                self.stream.write(line + "\n")
                self.stream.flush()
                return
            self.status[event.sandbox] = f"{event.name} {mark}"
            if not event.ok:
                self.clear()
                self.stream.write(line + "\n")
            width = shutil.get_terminal_size((100, 20)).columns
            summary = f"[{event.cells_done}/{event.cells_total} cells] " + " | ".join(
                f"{name}: {state}" for name, state in sorted(self.status.items())
            )
            self.stream.write("\r\x1b[2K" + summary[: width - 1])
            self.stream.flush()

    def clear(self) -> None:
        if self.live:
            self.stream.write("\r\x1b[2K")
            self.stream.flush()

    def finish(self) -> None:
        with self.lock:
            self.clear()
