"""Health of production hosts: a suite run on each host through the same transport and runner as
a campaign (one session per host, one round trip for the suite), judged host by host.

A host is healthy when no check of the suite failed or errored: ``error`` (unreachable,
timeout, runner crash) is never healthy, ``flaky`` (failed, then passed on retry) is.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any

from lab.checks.manifest import error_results, run_suite
from lab.errors import InfrastructureError, LabError
from lab.model import Result, Status, Suite
from lab.rollout.endpoints import Endpoint
from lab.transports.base import transport_for
from lab.util.clipping import shorten

FAILING = (Status.FAIL, Status.ERROR)


@dataclass(frozen=True)
class HostHealth:
    """The suite's results on one host and the judgement drawn from them."""

    host: str
    suite: str
    results: tuple[Result, ...]

    @property
    def healthy(self) -> bool:
        return bool(self.results) and not any(r.status in FAILING for r in self.results)

    def counts(self) -> dict[str, int]:
        found: dict[str, int] = {}
        for result in self.results:
            found[result.status.value] = found.get(result.status.value, 0) + 1
        return dict(sorted(found.items()))

    def summary(self) -> dict[str, object]:
        """What the store keeps: the suite, counts per status, and each failing check with its
        message and its evidence (each output kept to its first 6 and last 2 KiB, with its true
        size and sha256)."""
        return {"suite": self.suite, "counts": self.counts(),
                "failed": [[r.check_id, r.status.value, r.message[:500], kept_evidence(r.evidence)]
                           for r in self.results if r.status in FAILING]}

    def detail(self) -> str:
        """One line: healthy with the count, or the failing checks and why."""
        if self.healthy:
            return f"healthy: {len(self.results)} check(s) of {self.suite} passed"
        bad = [f"{r.check_id} {r.status.value}: {r.message[:160]}" for r in self.results if r.status in FAILING]
        return f"unhealthy: {'; '.join(bad)}"[:1000]


def kept_evidence(evidence: dict[str, Any]) -> dict[str, Any]:
    """``evidence`` with every string shortened to its first 6 and last 2 KiB (``lab.util.clipping``)."""
    return {key: shorten(value, 6 * 1024, 2 * 1024) if isinstance(value, str) else value
            for key, value in evidence.items()}


def check_host(item: Endpoint, suite: Suite, cap: float) -> HostHealth:
    """Run ``suite`` on ``item`` and return every check's result (an unreachable host: all ``error``)."""
    variables = item.variables()
    try:
        transport = transport_for(item.name, variables)
        transport.open()
    except (LabError, OSError) as exc:
        return HostHealth(item.name, suite.name, tuple(error_results(suite, f"could not connect: {exc}")))
    try:
        return HostHealth(item.name, suite.name, tuple(run_suite(transport, suite, item.root, variables, cap)))
    except (InfrastructureError, OSError) as exc:
        return HostHealth(item.name, suite.name, tuple(error_results(suite, f"transport failed: {exc}")))
    finally:
        transport.close()


def check_hosts(items: Iterable[Endpoint], suite: Suite, cap: float, workers: int,
                each: Callable[[HostHealth], None]) -> list[HostHealth]:
    """Check every host, up to ``workers`` at once; ``each`` is called (in this thread) as each
    host's health is known, so the caller can record it before the next one finishes."""
    chosen = list(items)
    if not chosen:
        return []
    found: list[HostHealth] = []
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(chosen))), thread_name_prefix="health") as pool:
        futures = [pool.submit(check_host, item, suite, cap) for item in chosen]
        for future in as_completed(futures):
            health = future.result()
            each(health)
            found.append(health)
    return found
