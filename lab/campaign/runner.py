"""Campaigns: plan the cells (build x sandbox x suite), run them, resume them.

Step by step over every sandbox with unfinished cells: lease each -> reset each (side by side, up
to ``parallel``; to its golden baseline where its provider keeps one) -> one baseline run over
the sandboxes without it (one of each golden key is then kept as that image) -> one deploy run
over every sandbox ready for it (``lab.campaign.batch``, Ansible's forks = ``parallel``) ->
verify each sandbox as soon as its own deploy is settled (one transport session; one round trip
per suite) -> record. Each sandbox's every step is committed to the store as it ends, so
``resume`` can finish whatever a crash interrupted: finished cells are kept as they are,
unfinished ones run again on a freshly reset sandbox.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from lab.campaign.audit import append_campaign_event, used_files
from lab.campaign.baseline import PACK_VARIABLE, baseline_vars
from lab.campaign.batch import HostStep, StepRun, run_step
from lab.campaign.golden import goldens_for, install_baseline, provider_of
from lab.checks.manifest import error_results, run_suite
from lab.config.labfile import LabConfig
from lab.errors import ConfigError, InfrastructureError, LabError
from lab.evidence.leases import lease
from lab.evidence.store import CampaignAudit, Store
from lab.model import Build, Campaign, CampaignState, CellState, Result, SandboxSpec, Status, StepRecord
from lab.sandboxes.base import Golden, HostHandle
from lab.transports.base import transport_for
from lab.util.clock import now


@dataclass(frozen=True)
class Progress:
    """Something happened in a campaign: a sandbox step, or a cell finished."""

    campaign_id: str
    sandbox: str
    what: str  # "start" (a step or a suite begins), "step" (a step ended) or "cell" (a suite's results are in)
    name: str  # step name or suite name
    ok: bool
    detail: str
    cells_done: int
    cells_total: int


ProgressHandler = Callable[[Progress], None]


@dataclass(frozen=True)
class Ready:
    """A sandbox that came through its steps so far, and its handle."""

    spec: SandboxSpec
    handle: HostHandle


def plan_cells(config: LabConfig, product: str) -> list[tuple[str, str]]:
    """Cells of a campaign of ``product``: every sandbox x every product suite aimed at its platform."""
    suites = [config.suites[name] for name in config.products[product].suites]
    cells = [(sandbox.name, suite.name) for sandbox in config.sandboxes for suite in suites
             if suite.targets(sandbox.platform)]
    if not cells:
        raise ConfigError(f"product {product!r}: none of its suites targets any sandbox's platform "
                          f"({', '.join(sorted({s.platform for s in config.sandboxes}))})")
    return cells


def refuse_finished(campaign: Campaign) -> None:
    """ConfigError (exit 2) when ``campaign`` has finished: resuming it would change nothing it
    should (its finish time, its audit trail), so nothing is done."""
    if campaign.state is CampaignState.FINISHED:
        raise ConfigError(f"campaign {campaign.id} finished at {campaign.finished_at}; there is nothing to resume "
                          f"and it is left as it is. See its results with `lab show {campaign.id}`, or test "
                          f"{campaign.build_ref} again with `lab run {campaign.build_ref}`")


class CampaignRunner:
    """Runs (or resumes) campaigns of one lab, recording everything in the store."""

    def __init__(self, config: LabConfig, store: Store, progress: ProgressHandler | None = None) -> None:
        self.config = config
        self.store = store
        self.progress = progress or (lambda event: None)
        self._done = 0
        self._total = 0
        self._count_lock = threading.Lock()
        self._baseline_vars: dict[str, str] = {}
        self._goldens: dict[str, Golden] = {}  # each sandbox's golden baseline in this run, by name

    def start(self, build: Build) -> Campaign:
        """Create a campaign of ``build`` over every planned cell and run it to the end.

        The campaign, its cells and its audit entry are recorded in one transaction, after the
        baseline is packed (a packing failure records nothing).
        """
        cells = plan_cells(self.config, build.product)
        self.pack_baseline()
        campaign = self.store.create_campaign(build, cells, self.config.path, audit=self.audit("start", build.product))
        return self.execute(campaign, build)

    def resume(self, campaign_id: str, build: Build) -> Campaign:
        """Finish an interrupted campaign: its unfinished cells run again, its finished ones stay.

        Reopening the campaign and its audit entry are one transaction. A finished campaign is
        refused with ConfigError before anything is read or written beyond the store's row.
        """
        campaign = self.store.campaign(campaign_id)
        refuse_finished(campaign)
        if build.digest != campaign.digest:
            raise ConfigError(f"campaign {campaign.id} tested sha256 {campaign.digest}, but {build.ref} is now "
                              f"{build.digest}; start a new campaign instead of resuming")
        self.pack_baseline()
        self.store.reopen_unfinished(campaign.id, audit=self.audit("resume", campaign.product))
        return self.execute(campaign, build)

    def pack_baseline(self) -> None:
        """Pack the baseline tree once for this campaign run (every sandbox's baseline unpacks it) and
        work out each sandbox's golden baseline from it."""
        if self.config.baseline is None:
            self._baseline_vars, self._goldens = {}, {}
            return
        self._baseline_vars = baseline_vars(self.config.baseline, self.config.state_dir)
        self._goldens = goldens_for(self.config, self._baseline_vars, self.config.sandboxes)

    def audit(self, kind: str, product: str) -> CampaignAudit:
        """The audit entry of the campaign event ``kind``, for the store to append in the event's
        transaction; the files a start or resume keeps are hashed now, before that transaction."""
        pack = self._baseline_vars.get(PACK_VARIABLE)
        files = None if kind == "finish" else used_files(self.config, product, Path(pack) if pack else None)
        golden = {} if kind == "finish" else {name: g.key for name, g in self._goldens.items()}
        return lambda db, campaign: append_campaign_event(
            db, self.store, campaign, kind, files, {s: golden[s] for s in campaign.sandboxes if s in golden})

    def execute(self, campaign: Campaign, build: Build) -> Campaign:
        """Run every unfinished cell, step by step over all their sandboxes at once: lease each, reset
        each (to its golden baseline where its provider keeps one), one baseline run over those
        without it, one deploy run over every sandbox ready for it, and each sandbox verified as
        soon as its own deploy is settled. Each sandbox's steps are recorded as they end."""
        cells = self.store.cells(campaign.id)
        self._total = len(cells)
        self._done = sum(1 for c in cells if c.state is CellState.DONE)
        pending: dict[str, list[str]] = {}
        for cell in cells:
            if cell.state is not CellState.DONE:
                pending.setdefault(cell.sandbox, []).append(cell.suite)
        specs = [self.config.sandbox(name) for name in sorted(pending)]
        with ExitStack() as leases, ThreadPoolExecutor(max_workers=self.workers(len(specs)),
                                                       thread_name_prefix="sandbox") as pool:
            held = [spec for spec in specs if self.take_lease(campaign, spec, leases)]
            handles = self.reset_all(campaign, held, pool)
            handles = self.baseline_all(campaign, handles)
            verifying = self.deploy_all(campaign, build, handles, pending, pool)
            for future in verifying:
                future.result()
            for spec in specs:
                if spec.name not in handles:
                    self.decide_unprepared(campaign, spec, pending[spec.name])
        return self.store.finish_campaign(campaign.id, audit=self.audit("finish", campaign.product))

    def workers(self, sandboxes: int) -> int:
        """How many sandboxes are worked on at once: lab.yml's ``parallel`` (Ansible's forks too)."""
        return max(1, min(self.config.parallel, sandboxes))

    def step_run(self, campaign: Campaign, step: str, hosts: int) -> StepRun:
        return StepRun(self.config.inventory.sources, self.config.state_dir / "runs" / campaign.id / step,
                       self.config.timeouts.playbook, self.workers(hosts), self.config.ansible)

    # --- the steps, each over every sandbox at once -------------------------------------------

    def take_lease(self, campaign: Campaign, spec: SandboxSpec, leases: ExitStack) -> bool:
        """Hold the sandbox's lease for the rest of the campaign run; False (recorded) if it cannot be had."""
        try:
            leases.enter_context(lease(self.config, spec.name, f"campaign {campaign.id}",
                                       self.config.timeouts.lease))
        except LabError as exc:
            self.step(campaign, spec.name, "lease", now(), False, True, str(exc), None)
            return False
        return True

    def reset_all(self, campaign: Campaign, specs: list[SandboxSpec], pool: ThreadPoolExecutor) -> dict[str, Ready]:
        """Reset every sandbox side by side; those that came up, by name."""
        results = list(pool.map(lambda spec: (spec, self.reset(campaign, spec)), specs))
        return {spec.name: Ready(spec, handle) for spec, handle in results if handle is not None}

    def reset(self, campaign: Campaign, spec: SandboxSpec) -> HostHandle | None:
        """Reset one sandbox, to its golden baseline when its provider keeps one; None (recorded) on failure."""
        started = now()
        self.starting(campaign, spec.name, "reset")
        try:
            provider = provider_of(self.config, spec)
            if self.config.baseline is None:
                handle = provider.reset(spec)
            else:
                handle = provider.reset_from(spec, self._goldens[spec.name])
        except LabError as exc:
            self.step(campaign, spec.name, "reset", started, False, True, str(exc), None)
            return None
        except OSError as exc:
            self.step(campaign, spec.name, "reset", started, False, True, f"reset failed: {exc}", None)
            return None
        self.step(campaign, spec.name, "reset", started, True, False,
                  handle.note or f"reset to a clean tree at {handle.root}", None)
        return handle

    def baseline_all(self, campaign: Campaign, ready: dict[str, Ready]) -> dict[str, Ready]:
        """The baseline on every sandbox: in place from a golden image, or installed by one baseline
        run over the others (``lab.campaign.golden``); the sandboxes that have it, by name."""
        if self.config.baseline is None:
            return ready
        started = now()
        kept = {name: item for name, item in ready.items() if item.handle.golden is not None}
        for item in kept.values():
            assert item.handle.golden is not None
            self.step(campaign, item.spec.name, "baseline", started, True, False,
                      f"in place: reset to golden image {Golden(item.handle.golden).label} "
                      f"({self.config.baseline.name} not run)", item.handle.golden)

        def baselined(step: HostStep, golden: Golden) -> None:
            # A broken baseline is the lab's problem, not the build's: infrastructure.
            self.step(campaign, step.host, "baseline", started, step.ok, not step.ok, step.detail,
                      golden.key if step.ok else None)
            if step.ok:
                kept[step.host] = ready[step.host]

        todo = {name: (item.spec, item.handle) for name, item in ready.items() if item.handle.golden is None}
        for name in todo:
            self.starting(campaign, name, "baseline")
        install_baseline(self.config, todo, self._baseline_vars, self._goldens,
                         self.step_run(campaign, "baseline", len(todo)), baselined)
        return kept

    def deploy_all(self, campaign: Campaign, build: Build, ready: dict[str, Ready], pending: dict[str, list[str]],
                   pool: ThreadPoolExecutor) -> list[Future[None]]:
        """One deploy run over every ready sandbox; each one's verification starts as soon as its own
        deploy is settled (the futures of those verifications)."""
        started = now()
        extra = {"lab_artifact": str(build.artifact), "lab_digest": build.digest,
                 "lab_product": build.product, "lab_version": build.version}
        verifying: list[Future[None]] = []

        def deployed(step: HostStep) -> None:
            digest = step.stats.get("deployed_digest")
            self.step(campaign, step.host, "deploy", started, step.ok, step.infrastructure_error, step.detail,
                      str(digest) if digest else None)
            item = ready[step.host]
            if step.ok:
                verifying.append(pool.submit(self.verify, campaign, item.spec, item.handle, pending[step.host]))
            else:
                verifying.append(pool.submit(self.decide_unprepared, campaign, item.spec, pending[step.host]))

        for name in ready:
            self.starting(campaign, name, "deploy")
        run_step(self.config.products[build.product].deploy_playbook, {n: r.handle for n, r in ready.items()}, extra,
                 self.step_run(campaign, "deploy", len(ready)), deployed)
        return verifying

    def decide_unprepared(self, campaign: Campaign, spec: SandboxSpec, suites: list[str]) -> None:
        """The sandbox could not be prepared: its cells are decided from the step that failed, without checks."""
        steps = {s.step: s for s in self.store.steps(campaign.id) if s.sandbox == spec.name}
        failed = next((s for s in steps.values() if not s.ok), None)
        infra = failed is None or failed.infrastructure_error
        detail = failed.detail if failed else "sandbox could not be prepared"
        status = Status.ERROR if infra else Status.FAIL
        for suite in suites:
            self.finish(campaign, spec.name, suite, [Result(f"({failed.step if failed else 'prepare'})", status,
                                                            detail, {}, 0, 0)])

    def verify(self, campaign: Campaign, spec: SandboxSpec, handle: HostHandle, suites: list[str]) -> None:
        """One transport session for the sandbox; one round trip per suite."""
        variables = {**spec.host_vars, **handle.facts}
        started = now()
        try:
            transport = transport_for(spec.name, variables)
            transport.open()
        except (LabError, OSError) as exc:
            self.step(campaign, spec.name, "connect", started, False, True, str(exc), None)
            for name in suites:
                self.finish(campaign, spec.name, name, [Result("(connect)", Status.ERROR, str(exc), {}, 0, 0)])
            return
        try:
            for name in suites:
                suite = self.config.suites[name]
                self.store.start_cell(campaign.id, spec.name, name)
                self.starting(campaign, spec.name, f"verify {name}")
                try:
                    results = run_suite(transport, suite, handle.root, variables, self.config.timeouts.suite)
                except (InfrastructureError, OSError) as exc:
                    results = error_results(suite, f"transport failed: {exc}")
                    self.step(campaign, spec.name, "verify", now(), False, True, f"suite {name}: {exc}", None)
                self.finish(campaign, spec.name, name, results)
        finally:
            transport.close()

    # --- recording ----------------------------------------------------------------------------

    def starting(self, campaign: Campaign, sandbox: str, step: str) -> None:
        """Say that ``step`` begins on ``sandbox`` (for a live view; nothing is recorded)."""
        self.progress(Progress(campaign.id, sandbox, "start", step, True, "", self._done, self._total))

    def step(self, campaign: Campaign, sandbox: str, step: str, started: str, ok: bool, infra: bool,
             detail: str, digest: str | None) -> None:
        self.store.record_step(StepRecord(campaign.id, sandbox, step, ok, infra, detail, digest, started, now()))
        self.progress(Progress(campaign.id, sandbox, "step", step, ok, detail, self._done, self._total))

    def finish(self, campaign: Campaign, sandbox: str, suite: str, results: list[Result]) -> None:
        if self.store.finish_cell(campaign.id, sandbox, suite, results):
            with self._count_lock:
                self._done += 1
        bad = [r for r in results if r.status in (Status.FAIL, Status.ERROR)]
        detail = f"{len(results) - len(bad)}/{len(results)} ok" + (f", {len(bad)} failed or errored" if bad else "")
        self.progress(Progress(campaign.id, sandbox, "cell", suite, not bad, detail, self._done, self._total))
