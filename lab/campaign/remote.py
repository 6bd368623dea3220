"""A campaign's cells as tasks for zone workers (``campaign-cells``): planned by the controller,
done by ``lab worker`` with ``lab.campaign.cells`` exactly as in-process, recorded by the controller.

The controller groups the sandboxes with unfinished cells by zone (each sandbox's ``lab_zone``,
default ``lab``), ``parallel`` at a time (one task is one batch: one Ansible run per step over its
sandboxes), with a deterministic id (uuid5 of campaign/cells/batch/attempt), committed as a
dispatch row before it is published. A resumed controller reattaches to the tasks still without
a recorded outcome (``Dispatches.take_up``); only sandboxes none of them covers get new tasks.

A payload names the campaign, each sandbox's suites (as manifests), the build (product, version,
digest, artifact file name), the deploy playbook's sha256 and each sandbox's golden baseline key
(a worker whose own lab differs refuses the task), and the attempt. No credential, no artifact.
The worker leases, resets, baselines, deploys and verifies with its own inventory and secrets,
collecting every step and cell instead of writing the store; the outcome carries them, and the
controller records them as the in-process run records its own (a cell already done stays as it was).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

from lab.campaign.baseline import baseline_vars
from lab.campaign.cells import Baseline, CellWork
from lab.campaign.golden import goldens_for
from lab.config.labfile import LabConfig
from lab.errors import ConfigError
from lab.evidence.store import Store
from lab.executors.base import LAB_ZONE, Executor, Outcome, Task, task_id, zone_chunks, zone_of
from lab.executors.codec import result_from_json, result_to_json, suite_from_json, suite_to_json
from lab.executors.dispatches import Dispatches
from lab.executors.share import sha256_of
from lab.model import Build, Result, SandboxSpec, StepRecord

CELLS = "campaign-cells"
SCOPE = "cells"


def baseline_of(config: LabConfig, specs: list[SandboxSpec]) -> Baseline:
    """The baseline of a campaign run over ``specs``: the baseline tree packed once (every sandbox's
    baseline unpacks it) and each sandbox's golden baseline worked out from it."""
    if config.baseline is None:
        return Baseline({}, {})
    variables = baseline_vars(config.baseline, config.state_dir)
    return Baseline(variables, goldens_for(config, variables, specs))


class CellPlanner:
    """The ``campaign-cells`` tasks of one campaign run."""

    def __init__(self, config: LabConfig, executor: Executor, store: Store, campaign_id: str, build: Build,
                 baseline: Baseline) -> None:
        self.config = config
        self.executor = executor
        self.campaign_id = campaign_id
        self.build = build
        self.baseline = baseline
        self.dispatches = Dispatches(store)

    def tasks(self, pending: Mapping[str, list[str]]) -> list[Task]:
        """The tasks still to be done: those published before without a recorded outcome, then new
        ones (committed before this returns) for the sandboxes none of them covers."""
        self.executor.share(self.build.artifact, self.build.digest)

        def fresh(covered: set[str], attempt: int) -> list[Task]:
            todo = [name for name in sorted(pending) if name not in covered]
            batches = zone_chunks(todo, self.zone, self.config.parallel)
            return [self.task(index, attempt, zone, {name: pending[name] for name in names})
                    for index, (zone, names) in enumerate(batches)]

        return self.dispatches.take_up(self.campaign_id, SCOPE, lambda task: task.payload["cells"], fresh)

    def zone(self, sandbox: str) -> str:
        return zone_of(self.config.sandbox(sandbox).host_vars, LAB_ZONE)

    def task(self, index: int, attempt: int, zone: str, cells: dict[str, list[str]]) -> Task:
        """Batch ``index`` of ``attempt``: the cells of ``cells`` (sandbox -> suites), on ``zone``'s workers."""
        build = self.build
        suites = sorted({name for names in cells.values() for name in names})
        payload: dict[str, Any] = {
            "campaign": self.campaign_id, "batch": index, "attempt": attempt, "epoch": attempt, "cells": cells,
            "build": {"product": build.product, "version": build.version, "digest": build.digest,
                      "artifact": build.artifact.name},
            "playbook_sha256": sha256_of(self.config.products[build.product].deploy_playbook),
            "goldens": {name: self.baseline.goldens[name].key for name in cells if name in self.baseline.goldens},
            "suites": {name: suite_to_json(self.config.suites[name]) for name in suites}}
        return Task(CELLS, task_id("campaign", self.campaign_id, "cells", index, "attempt", attempt), zone,
                    self.campaign_id, payload)


class Collected:
    """A worker's recorder: every step and cell kept in memory, in order, for the task's outcome."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._steps: list[StepRecord] = []
        self._cells: dict[tuple[str, str], list[Result]] = {}

    def record_step(self, step: StepRecord) -> None:
        with self._lock:
            self._steps = [s for s in self._steps if (s.sandbox, s.step) != (step.sandbox, step.step)] + [step]

    def steps(self, campaign_id: str) -> list[StepRecord]:
        with self._lock:
            return list(self._steps)

    def start_cell(self, campaign_id: str, sandbox: str, suite: str) -> None:
        """Nothing to keep: the controller records the cell's start with its results."""

    def finish_cell(self, campaign_id: str, sandbox: str, suite: str, results: list[Result]) -> bool:
        with self._lock:
            if (sandbox, suite) in self._cells:
                return False
            self._cells[(sandbox, suite)] = list(results)
            return True

    def outcome(self) -> Outcome:
        """Every step and cell collected, as JSON."""
        with self._lock:
            return {"steps": [asdict(step) for step in self._steps],
                    "cells": [{"sandbox": sandbox, "suite": suite, "results": [result_to_json(r) for r in results]}
                              for (sandbox, suite), results in self._cells.items()]}


def run_cells(config: LabConfig, payload: dict[str, Any], artifact: Path) -> Outcome:
    """Do a ``campaign-cells`` task on this machine, with this machine's lab (inventory, secrets,
    vault, leases): ``artifact`` is the build fetched from the share and checked. ConfigError when
    this lab's deploy playbook or golden baselines differ from the controller's."""
    build = payload["build"]
    playbook = config.products[build["product"]].deploy_playbook
    if sha256_of(playbook) != payload["playbook_sha256"]:
        raise ConfigError(f"this worker's {playbook} differs from the controller's (sha256 "
                          f"{payload['playbook_sha256'][:12]}…); deploy the same lab to every zone")
    cells = {str(name): [str(s) for s in suites] for name, suites in payload["cells"].items()}
    baseline = baseline_of(config, [config.sandbox(name) for name in sorted(cells)])
    differ = sorted(name for name, key in payload["goldens"].items()
                    if name not in baseline.goldens or baseline.goldens[name].key != key)
    if differ:
        raise ConfigError(f"this worker's baseline of {', '.join(differ)} differs from the controller's (its golden "
                          "baseline key); deploy the same lab (baseline playbook and tree) to every zone")
    suites = {name: suite_from_json(data, config.suites[name].path.parent if name in config.suites else config.root)
              for name, data in payload["suites"].items()}
    collected = Collected()
    CellWork(config, collected, str(payload["campaign"]), baseline, suites, command="lab worker").run(
        Build(build["product"], build["version"], artifact, build["digest"], ""), cells)
    return collected.outcome()


def record_cells(work: CellWork, dispatches: Dispatches, task: Task, outcome: Outcome) -> None:
    """A ``campaign-cells`` outcome, recorded as ``work`` records its own steps and cells; then the
    task's dispatch row is done. Recording it twice (a controller that died half-way) changes nothing."""
    for step in outcome["steps"]:
        work.record_step(StepRecord(**step))
    for cell in outcome["cells"]:
        work.records.start_cell(work.campaign_id, cell["sandbox"], cell["suite"])
        work.finish(cell["sandbox"], cell["suite"], [result_from_json(r) for r in cell["results"]])
    dispatches.finish(task.id)
