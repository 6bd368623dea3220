"""Campaigns: plan the cells (build x sandbox x suite), run them, resume them.

The cells (``lab.campaign.cells``: lease -> reset -> baseline -> deploy -> verify, step by step
over every sandbox with unfinished cells) run where the executor says: in this process (the
default) or on zone workers (``lab.campaign.remote``), with the same steps and the same records.
Each sandbox's every step is committed to the store as it ends (or, from a worker, as its
outcome arrives), so ``resume`` can finish whatever a crash interrupted: finished cells are
kept as they are, unfinished ones run again on a freshly reset sandbox, and tasks a worker
still holds are reattached to rather than run twice.
"""

from __future__ import annotations

from pathlib import Path

from lab.campaign.audit import append_campaign_event, used_files
from lab.campaign.baseline import PACK_VARIABLE
from lab.campaign.cells import Baseline, CellWork, ProgressHandler
from lab.campaign.remote import CellPlanner, baseline_of, record_cells
from lab.config.labfile import LabConfig
from lab.errors import ConfigError
from lab.evidence.store import CampaignAudit, Store
from lab.executors.base import HERE, Executor
from lab.executors.dispatches import Dispatches
from lab.model import Build, Campaign, CampaignState, CellState


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

    def __init__(self, config: LabConfig, store: Store, progress: ProgressHandler | None = None,
                 executor: Executor = HERE, command: str = "lab") -> None:
        self.config = config
        self.store = store
        self.progress = progress or (lambda event: None)
        self.executor = executor  # where the cells run: here (threads) or on zone workers
        self.command = command  # what runs the campaign (``lab run REF``), as its leases tell whoever waits
        self._baseline = Baseline({}, {})

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
        self._baseline = baseline_of(self.config, list(self.config.sandboxes))

    def audit(self, kind: str, product: str) -> CampaignAudit:
        """The audit entry of the campaign event ``kind``, for the store to append in the event's
        transaction; the files a start or resume keeps are hashed now, before that transaction."""
        pack = self._baseline.variables.get(PACK_VARIABLE)
        files = None if kind == "finish" else used_files(self.config, product, Path(pack) if pack else None)
        golden = {} if kind == "finish" else {name: g.key for name, g in self._baseline.goldens.items()}
        return lambda db, campaign: append_campaign_event(
            db, self.store, campaign, kind, files, {s: golden[s] for s in campaign.sandboxes if s in golden})

    def execute(self, campaign: Campaign, build: Build) -> Campaign:
        """Run every unfinished cell, here or on the zone workers as the executor says; each
        sandbox's steps are recorded as they end (or as a worker's outcome arrives)."""
        cells = self.store.cells(campaign.id)
        pending: dict[str, list[str]] = {}
        for cell in cells:
            if cell.state is not CellState.DONE:
                pending.setdefault(cell.sandbox, []).append(cell.suite)
        work = CellWork(self.config, self.store, campaign.id, self._baseline, self.config.suites, self.progress,
                        done=sum(1 for c in cells if c.state is CellState.DONE), total=len(cells),
                        command=self.command)
        tasks = CellPlanner(self.config, self.executor, self.store, campaign.id, build,
                            self._baseline).tasks(pending) if self.executor.remote and pending else []
        self.executor.run(tasks, lambda: work.run(build, pending),
                          lambda task, outcome: record_cells(work, Dispatches(self.store), task, outcome))
        return self.store.finish_campaign(campaign.id, audit=self.audit("finish", campaign.product))
