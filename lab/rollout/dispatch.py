"""A wave's shards as tasks for zone workers: split by zone (each host's ``lab_zone``, default
``production``), in shards of ``forks`` hosts, each with a deterministic id (uuid5 of
rollout/wave/shard/attempt) and committed as a dispatch row before it is published.

On resume the tasks of the wave still without a recorded outcome are taken up again under
their own ids (the executor takes a finished one's outcome, waits for a running one, publishes
a lost one again); only hosts none of them covers get new shards, in a new attempt.

A wave's rollback goes to the same zones' workers (the controller may reach no production host):
``rollbacks`` gives the ``rollout-rollback`` tasks of the hosts to restore, ``forks`` at a time
per zone, under the scope ``wave-N-rollback``; the build each host ran before is put into the
share too, for rollback playbooks that reinstall it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from lab.config.labfile import LabConfig
from lab.config.rollout_plan import RolloutSettings
from lab.evidence.store import Store
from lab.executors.base import PRODUCTION_ZONE, ROLLBACK, Executor, Task, task_id, zone_chunks, zone_of
from lab.executors.codec import suite_to_json
from lab.executors.dispatches import Dispatches
from lab.executors.share import sha256_of
from lab.model import Build
from lab.rollout.endpoints import endpoint
from lab.rollout.records import RolloutRecord, WaveRecord
from lab.rollout.shards import SHARD


def finished(store: Store, task: Task) -> None:
    """``task``'s outcome is recorded: its dispatch row is done."""
    Dispatches(store).finish(task.id)


class ShardPlanner:
    """The shard tasks of one wave of one rollout."""

    def __init__(self, config: LabConfig, settings: RolloutSettings, executor: Executor, store: Store,
                 previous: Callable[[str], dict[str, Any]], record: RolloutRecord, wave: WaveRecord,
                 build: Build) -> None:
        self.config = config
        self.settings = settings
        self.executor = executor
        self.previous = previous  # the build a host ran before, as the rollback's variables
        self.record = record
        self.wave = wave
        self.build = build
        self.scope = f"wave-{wave.index}"
        self.dispatches = Dispatches(store)
        self.shared: set[str] = set()  # digests put into the share by this planner

    def share(self, artifact: Path, digest: str) -> None:
        """Put ``artifact`` into the share, once per digest (the share hashes what it copies)."""
        if digest not in self.shared:
            self.executor.share(artifact, digest)
            self.shared.add(digest)

    def tasks(self, deploy: list[str], check: list[str]) -> list[Task]:
        """The wave's tasks still to be done: those published before without a recorded outcome,
        then new shards (committed before this returns) for the hosts none of them covers."""
        self.share(self.build.artifact, self.build.digest)

        def fresh(covered: set[str], attempt: int) -> list[Task]:
            shards = self.shards([h for h in deploy if h not in covered], [h for h in check if h not in covered])
            return [self.task(index, attempt, zone, hosts, checked)
                    for index, (zone, hosts, checked) in enumerate(shards)]

        return self.dispatches.take_up(self.record.id, self.scope,
                                       lambda task: (*task.payload["deploy"], *task.payload["check"]), fresh)

    def shards(self, deploy: list[str], check: list[str]) -> list[tuple[str, list[str], list[str]]]:
        """(zone, hosts to deploy, hosts only to check) per shard: each zone's hosts in order, ``forks``
        at a time; a zone's hosts only to check go with its first shard."""
        found: list[tuple[str, list[str], list[str]]] = [
            (zone, chunk, []) for zone, chunk in zone_chunks(deploy, self.zone, self.settings.forks)]
        for zone, checked in zone_chunks(check, self.zone, len(check)):
            first = next((i for i, shard in enumerate(found) if shard[0] == zone), None)
            if first is None:
                found.append((zone, [], checked))
            else:
                found[first] = (zone, found[first][1], checked)
        return found

    def rollbacks(self, hosts: list[str], check: list[str]) -> list[Task]:
        """The rollback tasks still to be done for ``hosts`` (reattached, then new ones committed before
        this returns): the rollback playbook over each, then the health suite on those in ``check``
        (hosts that ran an earlier build) that it restored."""
        self.share(self.build.artifact, self.build.digest)
        scope = f"{self.scope}-rollback"

        def fresh(covered: set[str], attempt: int) -> list[Task]:
            chunks = zone_chunks([h for h in hosts if h not in covered], self.zone, self.settings.forks)
            return [self.rollback(index, attempt, zone, chunk, [h for h in chunk if h in check])
                    for index, (zone, chunk) in enumerate(chunks)]

        return self.dispatches.take_up(self.record.id, scope, lambda task: task.payload["hosts"], fresh)

    def rollback(self, index: int, attempt: int, zone: str, hosts: list[str], check: list[str]) -> Task:
        """Rollback task ``index`` of ``attempt``: restore ``hosts``, then check ``check``."""
        record, wave = self.record, self.wave
        previous = {}
        for host in hosts:
            found = dict(self.previous(host))
            artifact = found.pop("lab_previous_artifact", None)
            if artifact is not None:  # a rollback variant may reinstall it: the worker fetches it by digest
                self.share(Path(artifact), str(found["lab_previous_digest"]))
                found["artifact"] = Path(artifact).name
            previous[host] = found
        payload = {**self.common(), "shard": index, "attempt": attempt, "hosts": hosts, "check": check,
                   "previous": previous, "playbook_sha256": sha256_of(self.settings.rollback_playbook)}
        return Task(ROLLBACK, task_id("rollout", record.id, "wave", wave.index, "rollback", index, "attempt", attempt),
                    zone, record.id, payload)

    def common(self) -> dict[str, Any]:
        """What every task of the wave carries: ids, the build, the health suite, limits, the install note."""
        config, settings, record, wave, build = self.config, self.settings, self.record, self.wave, self.build
        return {"rollout": record.id, "wave": wave.index,
                "build": {"product": build.product, "version": build.version, "digest": build.digest,
                          "artifact": build.artifact.name},
                "suite": suite_to_json(config.suites[settings.health_suite]),
                "note": f"rollout={record.id} wave={wave.index}", "forks": settings.forks,
                "timeout": config.timeouts.playbook, "suite_cap": config.timeouts.suite}

    def zone(self, host: str) -> str:
        return zone_of(endpoint(self.config, host).host_vars, PRODUCTION_ZONE)

    def task(self, index: int, attempt: int, zone: str, hosts: list[str], check: list[str]) -> Task:
        """Shard ``index`` of ``attempt``: deploy ``hosts``; check ``check``."""
        record, wave, build = self.record, self.wave, self.build
        previous = {h: {k: v for k, v in self.previous(h).items()
                        if k != "lab_previous_artifact"} for h in hosts}
        payload: dict[str, Any] = {
            **self.common(), "shard": index, "attempt": attempt, "epoch": attempt,
            "deploy": hosts, "check": check, "previous": previous,
            "playbook_sha256": sha256_of(self.config.products[build.product].deploy_playbook)}
        return Task(SHARD, task_id("rollout", record.id, "wave", wave.index, "shard", index, "attempt", attempt),
                    zone, record.id, payload)
