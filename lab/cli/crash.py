"""An unexpected exception never shows a traceback: one line, and the trace kept in a log file.

The log goes to ``$LAB_CRASH_DIR``, else ``$XDG_STATE_HOME/lab/crashes`` (``~/.local/state``),
else the system's temporary directory; its name carries the time and process id.
"""

from __future__ import annotations

import os
import sys
import tempfile
import traceback
from datetime import UTC, datetime
from pathlib import Path

CRASH_EXIT = 3


def crash_dirs() -> list[Path]:
    """Where a crash log may go, in order of preference."""
    chosen = os.environ.get("LAB_CRASH_DIR")
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return [Path(p) for p in (chosen, str(Path(state) / "lab" / "crashes"), tempfile.gettempdir()) if p]


def write_crash_log(error: BaseException, argv: list[str]) -> Path | None:
    """Write ``error``'s trace (and the command line's option names, never its values) to a new
    file; its path, or None when no directory would take it."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    text = (f"lab crashed at {stamp}\ncommand: lab {' '.join(a for a in argv if a.startswith('-'))} ...\n\n"
            + "".join(traceback.format_exception(error)))
    for directory in crash_dirs():
        try:
            directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            path = directory / f"lab-crash-{stamp}-{os.getpid()}.log"
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
                handle.write(text)
            return path
        except OSError:
            continue
    return None


def report_crash(error: BaseException, argv: list[str]) -> int:
    """Print one line about ``error`` on stderr with the log's path; the exit code (3)."""
    log = write_crash_log(error, argv)
    where = f"the trace is in {log}" if log is not None else "no log could be written"
    summary = str(error).splitlines()[0][:200] if str(error) else ""
    print(f"lab: internal error ({type(error).__name__}{': ' + summary if summary else ''}); {where}; "
          "please report it with that file", file=sys.stderr)
    return CRASH_EXIT
