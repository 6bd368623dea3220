"""Progress of a running campaign or rollout, for the lab engineer watching it.

In a terminal (and ``CI`` not set): a live table drawn by rich, one row per sandbox (campaign) or
wave (rollout) with the step running now, how long it has run and what is done; every failure is
printed above the table and stays there. Elsewhere: plain lines, each with a timestamp.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TextIO

from lab.api import CampaignStarting, RolloutEvent, RunEvent
from lab.reports.data import visible

if TYPE_CHECKING:  # rich is imported only when a live table is drawn: `lab --help` and plain output never load it
    from rich.live import Live
    from rich.table import Table


def wants_live(stream: TextIO) -> bool:
    """Live display only on a terminal and never when ``CI`` is set."""
    return stream.isatty() and not os.environ.get("CI")


def elapsed(since: float) -> str:
    seconds = int(time.monotonic() - since)
    return f"{seconds // 60}:{seconds % 60:02d}"


@dataclass
class Row:
    """One sandbox or wave: what it does now, since when, what it has done."""

    now: str = "waiting"
    since: float = field(default_factory=time.monotonic)
    done: int = 0
    failed: int = 0
    total: int = 0
    ok: bool = True

    def start(self, what: str) -> None:
        self.now, self.since = what, time.monotonic()


class LiveLines:
    """Shared by both views: a rich Live table in a terminal, timestamped lines elsewhere."""

    def __init__(self, stream: TextIO | None, live: bool | None, columns: tuple[str, ...]) -> None:
        self.stream = stream or sys.stderr
        self.live = wants_live(self.stream) if live is None else live
        self.lock = threading.RLock()
        self.rows: dict[str, Row] = {}
        self.columns = columns
        self.title = ""
        self.display: Live | None = None
        if self.live:
            from rich.console import Console
            from rich.live import Live

            console = Console(file=self.stream, force_terminal=True, highlight=False)
            self.display = Live(self, console=console, refresh_per_second=4, transient=True)
            self.display.start()

    def line(self, text: str, keep: bool = False, style: str = "bold red") -> None:
        """A plain line with its time (not live); above the live table, in ``style``, when ``keep``
        (failures, and what the engineer must know, such as a wait for another campaign)."""
        with self.lock:
            if self.display is None:
                self.stream.write(f"{time.strftime('%H:%M:%S')} {text}\n")
                self.stream.flush()
            elif keep:
                from rich.text import Text

                self.display.console.print(Text(f"{time.strftime('%H:%M:%S')} {text}", style=style))

    def cells(self, name: str, row: Row) -> list[str]:
        raise NotImplementedError

    def __rich__(self) -> Table:
        from rich.table import Table

        table = Table(title=self.title, title_justify="left", expand=False)
        for column in self.columns:
            table.add_column(column)
        with self.lock:
            for name, row in sorted(self.rows.items()):
                table.add_row(*self.cells(name, row), style=None if row.ok else "red")
        return table

    def finish(self) -> None:
        """Stop the live table and print it once more as it ended (nothing in plain mode)."""
        with self.lock:
            if self.display is not None:
                self.display.stop()
                self.display.console.print(self.__rich__())
                self.display = None


class ProgressPrinter(LiveLines):
    """A campaign's progress; thread-safe, since sandboxes report from worker threads."""

    def __init__(self, stream: TextIO | None = None, live: bool | None = None) -> None:
        super().__init__(stream, live, ("sandbox", "now", "for", "cells done", "failed"))
        self.done = self.total = 0

    def cells(self, name: str, row: Row) -> list[str]:
        return [name, row.now, elapsed(row.since), f"{row.done}", f"{row.failed}"]

    def __call__(self, event: RunEvent) -> None:
        if isinstance(event, CampaignStarting):
            self.title = f"campaign of {event.build_ref} (sha256 {event.digest[:12]}…)"
            self.line(f"campaign of {event.build_ref} (sha256 {event.digest[:12]}…) on {event.sandboxes} "
                      f"sandbox(es), {event.parallel} at a time")
            return
        with self.lock:
            row = self.rows.setdefault(event.sandbox, Row())
            self.done, self.total = event.cells_done, event.cells_total
            self.title = self.title.split(" [")[0] + f" [{self.done}/{self.total} cells]"
            if event.what == "start":
                row.start(event.name)
                self.line(f"[{event.cells_done}/{event.cells_total}] {event.sandbox}: {event.name} started")
                return
            if event.what == "wait":  # another holds the sandbox: said once, and kept above a live table
                row.start(f"waiting for its {event.name}")
                self.line(f"[{event.cells_done}/{event.cells_total}] {visible(event.detail)}", keep=True,
                          style="bold yellow")
                return
            if event.what == "cell":
                row.done += 1
                row.failed += 0 if event.ok else 1
            row.ok = row.ok and event.ok
            row.start(f"{event.name} {'ok' if event.ok else 'FAILED'}")
        mark = "ok" if event.ok else ("FAIL" if event.what == "cell" else "FAILED")
        self.line(f"[{event.cells_done}/{event.cells_total}] {event.sandbox}: {event.what} {event.name}: {mark} "
                  f"({visible(event.detail)})", keep=not event.ok)


class RolloutPrinter(LiveLines):
    """A rollout's progress: one row per wave with its step now, its time and its hosts judged
    (lines on stdout, where ``lab rollout`` always said them)."""

    def __init__(self, stream: TextIO | None = None, live: bool | None = None) -> None:
        super().__init__(stream or sys.stdout, live, ("wave", "now", "for", "healthy", "failed"))

    def cells(self, name: str, row: Row) -> list[str]:
        return [name, row.now, elapsed(row.since), f"{row.done}" + (f" of {row.total}" if row.total else ""),
                f"{row.failed}"]

    def __call__(self, event: RolloutEvent) -> None:
        where = f"[wave {event.wave}/{event.waves}]" if event.wave else "[rollout]"
        text = f"{where} {'' if event.ok else '! '}{visible(event.detail)}"
        if event.wave == 0:
            self.title = f"rollout {event.rollout_id}"
            self.line(text, keep=not event.ok)
            return
        with self.lock:
            row = self.rows.setdefault(f"{event.wave:>2}/{event.waves}", Row())
            if event.what == "host":
                row.done += 1 if event.ok else 0
                row.failed += 0 if event.ok else 1
            else:
                row.start(event.what)
                row.total = event.hosts or row.total
            row.ok = row.ok and event.ok
        if event.what != "host" or not event.ok:  # a healthy host only counts in its wave's row
            self.line(text, keep=not event.ok)
