"""Campaigns: plan the cells (build x sandbox x suite), run them, resume them.

Per sandbox, in parallel up to ``parallel``: lease -> reset -> baseline -> deploy -> verify
(one transport session; one round trip per suite) -> record. Every state change is committed
to the store before the next step, so ``resume`` can finish whatever a crash interrupted:
finished cells are kept as they are, unfinished ones run again on a freshly reset sandbox.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lab.ansible.playbook import PlaybookOutcome, run_playbook
from lab.campaign.audit import append_campaign_event, used_files
from lab.campaign.baseline import PACK_VARIABLE, baseline_vars
from lab.checks.manifest import error_results, run_suite
from lab.config.labfile import LabConfig
from lab.errors import ConfigError, InfrastructureError, LabError
from lab.evidence.store import CampaignAudit, Store
from lab.model import Build, Campaign, CellState, Result, SandboxSpec, Status, StepRecord
from lab.sandboxes.base import HostHandle, LabSite
from lab.sandboxes.lease import lease
from lab.sandboxes.registry import provider_for
from lab.transports.base import transport_for
from lab.util.clock import now


@dataclass(frozen=True)
class Progress:
    """Something happened in a campaign: a sandbox step, or a cell finished."""

    campaign_id: str
    sandbox: str
    what: str  # "step" or "cell"
    name: str  # step name or suite name
    ok: bool
    detail: str
    cells_done: int
    cells_total: int


ProgressHandler = Callable[[Progress], None]


def plan_cells(config: LabConfig, product: str) -> list[tuple[str, str]]:
    """Cells of a campaign of ``product``: every sandbox x every product suite aimed at its platform."""
    suites = [config.suites[name] for name in config.products[product].suites]
    cells = [(sandbox.name, suite.name) for sandbox in config.sandboxes for suite in suites
             if suite.targets(sandbox.platform)]
    if not cells:
        raise ConfigError(f"product {product!r}: none of its suites targets any sandbox's platform "
                          f"({', '.join(sorted({s.platform for s in config.sandboxes}))})")
    return cells


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

        Reopening the campaign and its audit entry are one transaction.
        """
        campaign = self.store.campaign(campaign_id)
        if build.digest != campaign.digest:
            raise ConfigError(f"campaign {campaign.id} tested sha256 {campaign.digest}, but {build.ref} is now "
                              f"{build.digest}; start a new campaign instead of resuming")
        self.pack_baseline()
        self.store.reopen_unfinished(campaign.id, audit=self.audit("resume", campaign.product))
        return self.execute(campaign, build)

    def pack_baseline(self) -> None:
        """Pack the baseline tree once for this campaign run: every sandbox's baseline unpacks it."""
        self._baseline_vars = {} if self.config.baseline is None else baseline_vars(self.config.baseline,
                                                                                      self.config.state_dir)

    def audit(self, kind: str, product: str) -> CampaignAudit:
        """The audit entry of the campaign event ``kind``, for the store to append in the event's
        transaction; the files a start or resume keeps are hashed now, before that transaction."""
        pack = self._baseline_vars.get(PACK_VARIABLE)
        files = None if kind == "finish" else used_files(self.config, product, Path(pack) if pack else None)
        return lambda db, campaign: append_campaign_event(db, self.store, campaign, kind, files)

    def execute(self, campaign: Campaign, build: Build) -> Campaign:
        cells = self.store.cells(campaign.id)
        self._total = len(cells)
        self._done = sum(1 for c in cells if c.state is CellState.DONE)
        pending: dict[str, list[str]] = {}
        for cell in cells:
            if cell.state is not CellState.DONE:
                pending.setdefault(cell.sandbox, []).append(cell.suite)
        workers = max(1, min(self.config.parallel, len(pending)))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sandbox") as pool:
            futures = [pool.submit(self.run_sandbox, campaign, build, self.config.sandbox(name), suites)
                       for name, suites in sorted(pending.items())]
            for future in futures:
                future.result()
        return self.store.finish_campaign(campaign.id, audit=self.audit("finish", campaign.product))

    # --- one sandbox --------------------------------------------------------------------------

    def run_sandbox(self, campaign: Campaign, build: Build, spec: SandboxSpec, suites: list[str]) -> None:
        try:
            with lease(self.config.state_dir, spec.name, f"campaign {campaign.id}", self.config.timeouts.lease):
                handle = self.prepare(campaign, build, spec)
                if handle is not None:
                    self.verify(campaign, spec, handle, suites)
                    return
        except LabError as exc:
            self.step(campaign, spec.name, "lease", now(), False, True, str(exc), None)
        # The sandbox could not be prepared: its cells are decided without running checks.
        steps = {s.step: s for s in self.store.steps(campaign.id) if s.sandbox == spec.name}
        failed = next((s for s in steps.values() if not s.ok), None)
        infra = failed is None or failed.infrastructure_error
        detail = failed.detail if failed else "sandbox could not be prepared"
        status = Status.ERROR if infra else Status.FAIL
        for suite in suites:
            self.finish(campaign, spec.name, suite, [Result(f"({failed.step if failed else 'prepare'})", status,
                                                            detail, {}, 0, 0)])

    def prepare(self, campaign: Campaign, build: Build, spec: SandboxSpec) -> HostHandle | None:
        """Reset, baseline and deploy; None (with the failed step recorded) if any step fails."""
        started = now()
        try:
            site = LabSite(self.config.root, self.config.inventory.path, self.config.timeouts.playbook)
            handle = provider_for(spec.provider, self.config.state_dir, site).reset(spec)
        except LabError as exc:
            self.step(campaign, spec.name, "reset", started, False, True, str(exc), None)
            return None
        except OSError as exc:
            self.step(campaign, spec.name, "reset", started, False, True, f"reset failed: {exc}", None)
            return None
        self.step(campaign, spec.name, "reset", started, True, False,
                  handle.note or f"reset to a clean tree at {handle.root}", None)
        if self.config.baseline is not None:
            started = now()
            outcome = self.playbook(campaign, spec, handle, "baseline", self.config.baseline, self._baseline_vars)
            if not outcome.host_ok(spec.name):
                # A broken baseline is the lab's problem, not the build's: infrastructure.
                self.step(campaign, spec.name, "baseline", started, False, True, outcome.detail(spec.name), None)
                return None
            self.step(campaign, spec.name, "baseline", started, True, False, outcome.detail(spec.name), None)
        started = now()
        extra = {"lab_artifact": str(build.artifact), "lab_digest": build.digest,
                 "lab_product": build.product, "lab_version": build.version}
        product = self.config.products[build.product]
        outcome = self.playbook(campaign, spec, handle, "deploy", product.deploy_playbook, extra)
        digest = outcome.stats.get("deployed_digest")
        ok = outcome.host_ok(spec.name)
        self.step(campaign, spec.name, "deploy", started, ok, outcome.infrastructure_error(spec.name),
                  outcome.detail(spec.name), str(digest) if digest else None)
        return handle if ok else None

    def playbook(self, campaign: Campaign, spec: SandboxSpec, handle: HostHandle, step: str,
                 path: Any, extra: dict[str, Any]) -> PlaybookOutcome:
        return run_playbook(
            path,
            inventory=self.config.inventory.path,
            host=spec.name,
            extravars={**handle.facts, **extra},
            work_dir=self.config.state_dir / "runs" / campaign.id / spec.name,
            timeout=self.config.timeouts.playbook,
        )

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
                try:
                    results = run_suite(transport, suite, handle.root, variables, self.config.timeouts.suite)
                except (InfrastructureError, OSError) as exc:
                    results = error_results(suite, f"transport failed: {exc}")
                    self.step(campaign, spec.name, "verify", now(), False, True, f"suite {name}: {exc}", None)
                self.finish(campaign, spec.name, name, results)
        finally:
            transport.close()

    # --- recording ----------------------------------------------------------------------------

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
