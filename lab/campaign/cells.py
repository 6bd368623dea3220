"""A campaign's cells on a set of sandboxes: lease each -> reset each -> baseline -> deploy -> verify.

Step by step over every sandbox given: lease each -> reset each (side by side, up to ``parallel``;
to its golden baseline where its provider keeps one) -> one baseline run over the sandboxes
without it (one of each golden key is then kept as that image) -> one deploy run over every
sandbox ready for it (``lab.campaign.batch``, Ansible's forks = ``parallel``) -> verify each
sandbox as soon as its own deploy is settled (one transport session; one round trip per suite).

A sandbox another campaign holds is waited for (up to lab.yml's ``timeouts: lease:``); the wait
is said once, as a ``wait`` progress event naming the holder as it describes itself (its campaign,
command, host and pid), so the one waiting sees who it waits for.

Everything is recorded through a ``Recorder`` as it ends: the controller's store when the cells
run in its own process, or a ``lab.campaign.remote`` collector on a zone worker, whose outcome the
controller then records the same way. The work is the same wherever it runs.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Protocol

from lab.campaign.batch import HostStep, StepRun, run_step
from lab.campaign.golden import install_baseline, provider_of
from lab.checks.manifest import error_results, run_suite
from lab.config.labfile import LabConfig
from lab.errors import InfrastructureError, LabError
from lab.evidence.leases import lease
from lab.model import Build, Result, SandboxSpec, Status, StepRecord, Suite
from lab.sandboxes.base import Golden, HostHandle
from lab.sandboxes.lease import this_process, waiting_for
from lab.transports.base import transport_for
from lab.util.clock import now


@dataclass(frozen=True)
class Progress:
    """Something happened in a campaign: a sandbox step, or a cell finished."""

    campaign_id: str
    sandbox: str
    # "start" (a step or a suite begins), "step" (a step ended), "cell" (a suite's results are in), or
    # "wait" (another holds the sandbox's lease; detail names it; said once, when the wait begins)
    what: str
    name: str  # step name or suite name
    ok: bool
    detail: str
    cells_done: int
    cells_total: int


ProgressHandler = Callable[[Progress], None]


class Recorder(Protocol):
    """Where a campaign's steps and cells are recorded (the store, or a worker's collector)."""

    def record_step(self, step: StepRecord) -> None: ...
    def steps(self, campaign_id: str) -> list[StepRecord]: ...
    def start_cell(self, campaign_id: str, sandbox: str, suite: str) -> None: ...
    def finish_cell(self, campaign_id: str, sandbox: str, suite: str, results: list[Result]) -> bool: ...


@dataclass(frozen=True)
class Ready:
    """A sandbox that came through its steps so far, and its handle."""

    spec: SandboxSpec
    handle: HostHandle


@dataclass(frozen=True)
class Baseline:
    """The baseline of this campaign run: the packed baseline's variables and each sandbox's golden
    baseline, by name (both empty when the lab has no baseline playbook)."""

    variables: Mapping[str, str]
    goldens: Mapping[str, Golden]


class CellWork:
    """Does the cells of one campaign on the sandboxes given, recording each step as it ends."""

    def __init__(self, config: LabConfig, records: Recorder, campaign_id: str, baseline: Baseline,
                 suites: Mapping[str, Suite], progress: ProgressHandler | None = None,
                 done: int = 0, total: int = 0, command: str = "lab") -> None:
        self.config = config
        self.records = records
        self.campaign_id = campaign_id
        self.baseline = baseline
        self.suites = suites  # by name: the lab's own, or the manifests a worker was sent
        self.progress = progress or (lambda event: None)
        self.done = done
        self.total = total
        # the lease holder as others are shown it: campaign, command (``lab run REF``), host and pid
        self.holder = f"campaign {campaign_id} ({this_process(command)})"
        self._count_lock = threading.Lock()

    def run(self, build: Build, pending: Mapping[str, list[str]]) -> None:
        """Do every cell of ``pending`` (sandbox -> suites), step by step over all its sandboxes at
        once; every cell ends recorded (with results, or decided from the step that failed)."""
        specs = [self.config.sandbox(name) for name in sorted(pending)]
        with ExitStack() as leases, ThreadPoolExecutor(max_workers=self.workers(len(specs)),
                                                       thread_name_prefix="sandbox") as pool:
            held = [spec for spec in specs if self.take_lease(spec, leases)]
            handles = self.reset_all(held, pool)
            handles = self.baseline_all(handles)
            verifying = self.deploy_all(build, handles, pending, pool)
            for future in verifying:
                future.result()
            for spec in specs:
                if spec.name not in handles:
                    self.decide_unprepared(spec, pending[spec.name])

    def workers(self, sandboxes: int) -> int:
        """How many sandboxes are worked on at once: lab.yml's ``parallel`` (Ansible's forks too)."""
        return max(1, min(self.config.parallel, sandboxes))

    def step_run(self, step: str, hosts: int) -> StepRun:
        return StepRun(self.config.inventory.sources, self.config.state_dir / "runs" / self.campaign_id / step,
                       self.config.timeouts.playbook, self.workers(hosts), self.config.ansible)

    # --- the steps, each over every sandbox at once -------------------------------------------

    def take_lease(self, spec: SandboxSpec, leases: ExitStack) -> bool:
        """Hold the sandbox's lease for the rest of the run; False (recorded) if it cannot be had."""
        timeout = self.config.timeouts.lease

        def waiting(holder: str | None) -> None:
            self.progress(Progress(self.campaign_id, spec.name, "wait", "lease", True,
                                   waiting_for(spec.name, holder, timeout), self.done, self.total))

        try:
            leases.enter_context(lease(self.config, spec.name, self.holder, timeout, waiting))
        except LabError as exc:
            self.step(spec.name, "lease", now(), False, True, str(exc), None)
            return False
        return True

    def reset_all(self, specs: list[SandboxSpec], pool: ThreadPoolExecutor) -> dict[str, Ready]:
        """Reset every sandbox side by side; those that came up, by name."""
        results = list(pool.map(lambda spec: (spec, self.reset(spec)), specs))
        return {spec.name: Ready(spec, handle) for spec, handle in results if handle is not None}

    def reset(self, spec: SandboxSpec) -> HostHandle | None:
        """Reset one sandbox, to its golden baseline when its provider keeps one; None (recorded) on failure."""
        started = now()
        self.starting(spec.name, "reset")
        try:
            provider = provider_of(self.config, spec)
            if self.config.baseline is None:
                handle = provider.reset(spec)
            else:
                handle = provider.reset_from(spec, self.baseline.goldens[spec.name])
        except LabError as exc:
            self.step(spec.name, "reset", started, False, True, str(exc), None)
            return None
        except OSError as exc:
            self.step(spec.name, "reset", started, False, True, f"reset failed: {exc}", None)
            return None
        self.step(spec.name, "reset", started, True, False, handle.note or f"reset to a clean tree at {handle.root}",
                  None)
        return handle

    def baseline_all(self, ready: dict[str, Ready]) -> dict[str, Ready]:
        """The baseline on every sandbox: in place from a golden image, or installed by one baseline
        run over the others (``lab.campaign.golden``); the sandboxes that have it, by name."""
        if self.config.baseline is None:
            return ready
        started = now()
        kept = {name: item for name, item in ready.items() if item.handle.golden is not None}
        for item in kept.values():
            assert item.handle.golden is not None
            self.step(item.spec.name, "baseline", started, True, False,
                      f"in place: reset to golden image {Golden(item.handle.golden).label} "
                      f"({self.config.baseline.name} not run)", item.handle.golden)

        def baselined(step: HostStep, golden: Golden) -> None:
            # A broken baseline is the lab's problem, not the build's: infrastructure.
            self.step(step.host, "baseline", started, step.ok, not step.ok, step.detail,
                      golden.key if step.ok else None)
            if step.ok:
                kept[step.host] = ready[step.host]

        todo = {name: (item.spec, item.handle) for name, item in ready.items() if item.handle.golden is None}
        for name in todo:
            self.starting(name, "baseline")
        install_baseline(self.config, todo, self.baseline.variables, self.baseline.goldens,
                         self.step_run("baseline", len(todo)), baselined)
        return kept

    def deploy_all(self, build: Build, ready: dict[str, Ready], pending: Mapping[str, list[str]],
                   pool: ThreadPoolExecutor) -> list[Future[None]]:
        """One deploy run over every ready sandbox; each one's verification starts as soon as its own
        deploy is settled (the futures of those verifications)."""
        started = now()
        extra = {"lab_artifact": str(build.artifact), "lab_digest": build.digest,
                 "lab_product": build.product, "lab_version": build.version}
        verifying: list[Future[None]] = []

        def deployed(step: HostStep) -> None:
            digest = step.stats.get("deployed_digest")
            self.step(step.host, "deploy", started, step.ok, step.infrastructure_error, step.detail,
                      str(digest) if digest else None)
            item = ready[step.host]
            if step.ok:
                verifying.append(pool.submit(self.verify, item.spec, item.handle, pending[step.host]))
            else:
                verifying.append(pool.submit(self.decide_unprepared, item.spec, pending[step.host]))

        for name in ready:
            self.starting(name, "deploy")
        run_step(self.config.products[build.product].deploy_playbook, {n: r.handle for n, r in ready.items()}, extra,
                 self.step_run("deploy", len(ready)), deployed)
        return verifying

    def decide_unprepared(self, spec: SandboxSpec, suites: list[str]) -> None:
        """The sandbox could not be prepared: its cells are decided from the step that failed, without checks."""
        steps = {s.step: s for s in self.records.steps(self.campaign_id) if s.sandbox == spec.name}
        failed = next((s for s in steps.values() if not s.ok), None)
        infra = failed is None or failed.infrastructure_error
        detail = failed.detail if failed else "sandbox could not be prepared"
        status = Status.ERROR if infra else Status.FAIL
        for suite in suites:
            self.finish(spec.name, suite, [Result(f"({failed.step if failed else 'prepare'})", status,
                                                  detail, {}, 0, 0)])

    def verify(self, spec: SandboxSpec, handle: HostHandle, suites: list[str]) -> None:
        """One transport session for the sandbox; one round trip per suite."""
        variables = {**spec.host_vars, **handle.facts}
        started = now()
        try:
            transport = transport_for(spec.name, variables)
            transport.open()
        except (LabError, OSError) as exc:
            self.step(spec.name, "connect", started, False, True, str(exc), None)
            for name in suites:
                self.finish(spec.name, name, [Result("(connect)", Status.ERROR, str(exc), {}, 0, 0)])
            return
        try:
            for name in suites:
                suite = self.suites[name]
                self.records.start_cell(self.campaign_id, spec.name, name)
                self.starting(spec.name, f"verify {name}")
                try:
                    results = run_suite(transport, suite, handle.root, variables, self.config.timeouts.suite)
                except (InfrastructureError, OSError) as exc:
                    results = error_results(suite, f"transport failed: {exc}")
                    self.step(spec.name, "verify", now(), False, True, f"suite {name}: {exc}", None)
                self.finish(spec.name, name, results)
        finally:
            transport.close()

    # --- recording ----------------------------------------------------------------------------

    def starting(self, sandbox: str, step: str) -> None:
        """Say that ``step`` begins on ``sandbox`` (for a live view; nothing is recorded)."""
        self.progress(Progress(self.campaign_id, sandbox, "start", step, True, "", self.done, self.total))

    def step(self, sandbox: str, step: str, started: str, ok: bool, infra: bool, detail: str,
             digest: str | None) -> None:
        self.record_step(StepRecord(self.campaign_id, sandbox, step, ok, infra, detail, digest, started, now()))

    def record_step(self, step: StepRecord) -> None:
        """Record a step as it ended, and say so."""
        self.records.record_step(step)
        self.progress(Progress(self.campaign_id, step.sandbox, "step", step.step, step.ok, step.detail, self.done,
                               self.total))

    def finish(self, sandbox: str, suite: str, results: list[Result]) -> None:
        """Record a cell's results (once: a cell already done keeps its own), and say so."""
        if self.records.finish_cell(self.campaign_id, sandbox, suite, results):
            with self._count_lock:
                self.done += 1
        bad = [r for r in results if r.status in (Status.FAIL, Status.ERROR)]
        detail = f"{len(results) - len(bad)}/{len(results)} ok" + (f", {len(bad)} failed or errored" if bad else "")
        self.progress(Progress(self.campaign_id, sandbox, "cell", suite, not bad, detail, self.done, self.total))
