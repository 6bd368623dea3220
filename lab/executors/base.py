"""The executor contract: campaigns and rollouts hand their work to an ``Executor`` and record what
comes back; nothing else in their logic depends on which executor runs it.

A unit of work is a ``Task``: a kind (``rollout-shard``, ``campaign-cell``), a deterministic id
(``task_id``: uuid5 of what it is, e.g. rollout/wave/shard/attempt, so a resumed controller names
the same task the same way), the zone whose workers may run it (the hosts' ``lab_zone``), the
subject it belongs to (the rollout or campaign: its halt flag) and a JSON payload of ids, hosts,
the build digest, suite manifests and a lease epoch. A payload never holds a credential (a worker
reads its zone's secrets from its own inventory, environment or vault) nor an artifact (workers
fetch it by sha256 from the share). Its outcome is JSON too, recorded by the controller: workers
never write the store, which stays the workflow's truth.

``run(tasks, here, each)``: the in-process executor calls ``here()``, the caller's own way of doing
these tasks in this process (today's threads: one Ansible run per campaign step over every
sandbox, a rollout's shards deployed one after another with each shard's health checked while
the next deploys); a remote executor publishes the tasks and hands each task's outcome to
``each`` in the caller's thread as it arrives.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

# Task ids are uuid5 names in this namespace (a fixed, random uuid4 of lab's own).
NAMESPACE = uuid.UUID("0b6f3f0e-5c3a-4d59-9a57-2f7b0d3e51c4")
LAB_ZONE = "lab"  # sandboxes without lab_zone
PRODUCTION_ZONE = "production"  # production hosts without lab_zone
ZONE_VARIABLE = "lab_zone"

Outcome = dict[str, Any]
ROLLBACK = "rollout-rollback"  # a task kind that undoes: a halt stops deploys, never the rollback it calls for
UNSTOPPABLE = frozenset({ROLLBACK})


def task_id(*parts: str | int) -> str:
    """The deterministic id of the task named by ``parts`` (same parts, same id, on any machine)."""
    return str(uuid.uuid5(NAMESPACE, "/".join(str(p) for p in parts)))


def zone_of(host_vars: dict[str, Any], default: str) -> str:
    """The zone a host names in the inventory (``lab_zone``), else ``default``."""
    zone = host_vars.get(ZONE_VARIABLE)
    return str(zone) if isinstance(zone, str) and zone else default


def zone_chunks(items: Sequence[str], zone: Callable[[str], str], size: int) -> list[tuple[str, list[str]]]:
    """``items`` grouped by ``zone`` (zones in order of first appearance, items in their order) and
    cut into chunks of at most ``size``: (zone, chunk) for each task a zone's workers will get."""
    zones: dict[str, list[str]] = {}
    for item in items:
        zones.setdefault(zone(item), []).append(item)
    step = max(1, size)
    return [(name, members[i:i + step]) for name, members in zones.items() for i in range(0, len(members), step)]


@dataclass(frozen=True)
class Task:
    """One unit of work, as published: JSON all through, never a secret or an artifact."""

    kind: str
    id: str
    zone: str
    subject: str  # the rollout or campaign it belongs to (whose halt flag stops it)
    payload: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "id": self.id, "zone": self.zone, "subject": self.subject,
                "payload": self.payload}

    @staticmethod
    def from_json(data: dict[str, Any]) -> Task:
        return Task(str(data["kind"]), str(data["id"]), str(data["zone"]), str(data["subject"]),
                    dict(data["payload"]))


class Executor(Protocol):
    """Runs tasks: here (``inprocess``) or on zone workers (``celery``)."""

    kind: str

    @property
    def remote(self) -> bool:
        """Whether tasks leave this process (the caller then builds ``Task`` payloads)."""
        ...

    def run(self, tasks: Sequence[Task], here: Callable[[], None], each: Callable[[Task, Outcome], None]) -> None:
        """Do every task: ``here()`` in this process, or each published and its outcome handed to
        ``each`` (in the caller's thread) as it arrives. Returns when every task has its outcome."""
        ...

    def halt(self, subject: str) -> None:
        """Stop ``subject``'s tasks: none of them starts from now on, queued ones are revoked."""
        ...

    def share(self, artifact: Path, digest: str) -> None:
        """Make the build ``digest`` reachable by the workers (the artifact share) before a task needs it."""
        ...

    def close(self) -> None:
        """Release connections (a no-op for ``inprocess``)."""
        ...


class InProcess:
    """Today's threads: the caller does its tasks itself, in this process."""

    kind = "inprocess"
    remote = False

    def run(self, tasks: Sequence[Task], here: Callable[[], None], each: Callable[[Task, Outcome], None]) -> None:
        here()

    def halt(self, subject: str) -> None:
        """Nothing to tell: the caller's own threads see its recorded state."""

    def share(self, artifact: Path, digest: str) -> None:
        """Nothing to share: this process reads the artifact where it is."""

    def close(self) -> None:
        """Nothing held."""


HERE = InProcess()
