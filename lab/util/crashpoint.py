"""A fault-injection seam for crash tests: ``$LAB_CRASH_AFTER_COMMIT=N`` makes this process kill
itself with SIGKILL (what ``kill -9`` does: no ``finally``, no flush, no cleanup) right after its
Nth committed store transaction.

Every step of a campaign or rollout is committed before the next one starts, so "after the Nth
commit" names each step boundary in turn, without a named point in the code per step; a test
walks N up to kill a controller at every boundary and checks that ``resume`` finishes the work.
Unset, empty or not a positive integer: nothing happens (the default, and what production runs).
"""

from __future__ import annotations

import os
import signal
import threading

ENV = "LAB_CRASH_AFTER_COMMIT"

_lock = threading.Lock()
_commits = 0


def committed() -> None:
    """Count one committed store transaction of this process; SIGKILL itself when that is the Nth
    that ``$LAB_CRASH_AFTER_COMMIT`` names."""
    raw = os.environ.get(ENV, "")
    if not raw.isdigit():
        return
    global _commits
    with _lock:
        _commits += 1
        reached = _commits == int(raw)
    if reached:
        os.kill(os.getpid(), signal.SIGKILL)
