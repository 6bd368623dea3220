"""Per-endpoint counters that tests and benchmarks read (round trips, shells, commands)."""

from __future__ import annotations

import dataclasses
import threading


@dataclasses.dataclass(frozen=True)
class Counters:
    """What one endpoint has served since start (or the last :meth:`WinRMEndpoint.reset_counters`)."""

    http_requests: int = 0
    connections: int = 0
    shells_created: int = 0
    shells_deleted: int = 0
    commands_run: int = 0
    faults: int = 0
    auth_rejections: int = 0
    encrypted_messages: int = 0
    logons_ntlm: int = 0
    logons_spnego: int = 0
    logons_basic: int = 0


class CounterStore:
    """Thread-safe named counters; :meth:`snapshot` freezes them into :class:`Counters`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values = dataclasses.asdict(Counters())

    def add(self, name: str, amount: int = 1) -> None:
        with self._lock:
            self._values[name] += amount

    def snapshot(self) -> Counters:
        with self._lock:
            return Counters(**self._values)

    def reset(self) -> None:
        with self._lock:
            self._values = dataclasses.asdict(Counters())
