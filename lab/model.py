"""The lab's vocabulary as frozen dataclasses (see DESIGN.md, "Words")."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import date, time
from pathlib import Path
from typing import Any


class Status(enum.StrEnum):
    """The outcome of one check on one sandbox."""

    PASS = "pass"  # noqa: S105 - a status, not a password
    FAIL = "fail"
    ERROR = "error"  # could not be judged: unreachable, timeout, runner crash
    SKIP = "skip"
    FLAKY = "flaky"  # failed, then passed on retry


class CellState(enum.StrEnum):
    """Where one cell (build x sandbox x suite) of a campaign stands."""

    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"


class CampaignState(enum.StrEnum):
    """Where a campaign stands as a whole."""

    RUNNING = "running"
    FINISHED = "finished"


@dataclass(frozen=True)
class BuildSpec:
    """A build as lab.yml declares it: where its source or artifact lives."""

    product: str
    version: str
    artifact: Path
    sources: tuple[Path, ...]  # source trees packed in order into the artifact (empty: a given artifact)
    sha256: str | None  # an optional pin: the artifact must have this digest
    line: int | None = None
    declared_in: Path | None = None

    @property
    def ref(self) -> str:
        return f"{self.product}@{self.version}"


@dataclass(frozen=True)
class Build:
    """One registered candidate of a product: its identity is the digest."""

    product: str
    version: str
    artifact: Path
    digest: str
    registered_at: str

    @property
    def ref(self) -> str:
        return f"{self.product}@{self.version}"


@dataclass(frozen=True)
class CiBuilds:
    """How a product takes builds lab.yml does not list (``lab build PRODUCT --version V ...``, e.g. from
    CI): the versions it accepts (``versions``, a regular expression the whole version must match)
    and the directory lab keeps their artifacts in."""

    versions: str
    artifacts: Path


@dataclass(frozen=True)
class Product:
    """A piece of software the lab manages, with its deploy playbook and its builds (those lab.yml
    declares; ``ci`` says which others may be registered, when it is given)."""

    name: str
    deploy_playbook: Path
    suites: tuple[str, ...]
    builds: dict[str, BuildSpec]
    ci: CiBuilds | None = None


@dataclass(frozen=True)
class SandboxSpec:
    """A lab server as the inventory declares it."""

    name: str
    platform: str
    provider: str
    host_vars: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Check:
    """One check of a suite: a type and its parameters, which stay data all the way to the sandbox."""

    id: str
    type: str
    params: dict[str, Any]
    timeout: float
    retries: int
    description: str = ""
    line: int | None = None
    skip: str | None = None  # a reason: the check is reported as skipped, not run


@dataclass(frozen=True)
class Suite:
    """A YAML file of checks, mandatory or advisory, aimed at platforms."""

    name: str
    path: Path
    mandatory: bool
    platforms: tuple[str, ...]
    checks: tuple[Check, ...]
    description: str = ""

    def targets(self, platform: str) -> bool:
        return "any" in self.platforms or platform in self.platforms


@dataclass(frozen=True)
class Result:
    """One check on one sandbox, as the runner reported it."""

    check_id: str
    status: Status
    message: str
    evidence: dict[str, Any]
    duration_ms: int
    attempts: int = 1


@dataclass(frozen=True)
class CellHeader:
    """Which cell of which campaign, and where it stands."""

    campaign_id: str
    sandbox: str
    suite: str
    state: CellState
    started_at: str | None
    finished_at: str | None


@dataclass(frozen=True)
class CellRecord(CellHeader):
    """A cell as the store keeps it, with its results once it is done."""

    results: tuple[Result, ...] = ()


@dataclass(frozen=True)
class CellOutcomes(CellHeader):
    """A cell as the store keeps it, with each result's check id, status and message in order, but
    not its evidence: what a gate decides on and a headline names, read without decoding any result."""

    check_ids: tuple[str, ...] = ()
    statuses: tuple[Status, ...] = ()
    messages: tuple[str, ...] = ()

    @classmethod
    def of(cls, cell: CellRecord) -> CellOutcomes:
        """The outcomes of a cell read whole."""
        return cls(cell.campaign_id, cell.sandbox, cell.suite, cell.state, cell.started_at, cell.finished_at,
                   tuple(r.check_id for r in cell.results), tuple(r.status for r in cell.results),
                   tuple(r.message for r in cell.results))


@dataclass(frozen=True)
class StepRecord:
    """One sandbox step of a campaign (reset, baseline, deploy) and how it ended per host."""

    campaign_id: str
    sandbox: str
    step: str
    ok: bool
    infrastructure_error: bool
    detail: str
    deployed_digest: str | None
    started_at: str
    finished_at: str


@dataclass(frozen=True)
class Campaign:
    """One run of a build over sandboxes x suites."""

    id: str
    product: str
    version: str
    digest: str
    state: CampaignState
    created_at: str
    finished_at: str | None
    sandboxes: tuple[str, ...]
    suites: tuple[str, ...]
    lab_path: str

    @property
    def build_ref(self) -> str:
        return f"{self.product}@{self.version}"


class ClauseOutcome(enum.StrEnum):
    MET = "met"
    NOT_MET = "not met"
    NOT_APPLICABLE = "not applicable"


@dataclass(frozen=True)
class Clause:
    """One line of a verdict: what the agreement asked, whether it holds, on what evidence.

    ``evidence`` names the pieces of evidence the clause looked at (``campaign c-1``,
    ``approval #3 by alice``, ``clock 2026-12-01T12:00:00+00:00``), for the record.
    """

    name: str
    outcome: ClauseOutcome
    detail: str
    evidence: tuple[str, ...] = ()


@dataclass(frozen=True)
class Verdict:
    """The agreement evaluated on the evidence: promotable or blocked, clause by clause.

    ``evidence_digest`` is the sha256 of the canonical evidence the gate used (what approvers
    sign); ``evaluated_at`` the injected clock; ``next_open`` the start of the next open window
    when the stage's window was closed; ``waived`` the failures (``sandbox/suite/check``) that a
    valid waiver kept from blocking.
    """

    build_ref: str
    digest: str
    stage: str
    allowed: bool
    clauses: tuple[Clause, ...]
    evidence_digest: str = ""
    evaluated_at: str = ""
    next_open: str | None = None
    waived: tuple[str, ...] = ()

    @property
    def reasons(self) -> tuple[str, ...]:
        return tuple(c.detail for c in self.clauses if c.outcome is ClauseOutcome.NOT_MET)


@dataclass(frozen=True)
class ApprovalRule:
    """Who must approve a promotion: named approvers and/or a role's members, how many, distinct or not."""

    approvers: tuple[str, ...]  # every principal whose approval counts (a role already resolved to its members)
    min_count: int = 1
    distinct: bool = True
    role: str | None = None


@dataclass(frozen=True)
class Window:
    """A weekly maintenance window in a time zone: opens on ``days`` at ``start``, closes at ``end``.

    ``end`` at or before ``start`` closes the next day (18:00-06:00); ``end_of_day`` is 24:00.
    Days are ISO weekdays counted from 0 (Monday) to 6 (Sunday).
    """

    days: tuple[int, ...]
    start: time
    end: time
    timezone: str
    end_of_day: bool = False


@dataclass(frozen=True)
class Freeze:
    """A freeze period: no promotion from ``start`` to ``end`` (both days included) in ``timezone``."""

    start: date
    end: date
    timezone: str
    reason: str = ""


@dataclass(frozen=True)
class Gate:
    """What a stage asks of the evidence before a build may enter it.

    ``min_pass_rate`` None is the zero-failure rule; ``soak_seconds`` is the minimum time the
    build spent in the previous stage; ``waiver_approvers`` are the principals whose waivers
    count when ``waivers`` is true.
    """

    platforms: tuple[str, ...]
    suites: tuple[str, ...] | None  # None: every mandatory suite of the product
    max_flaky: int = 0
    min_pass_rate: float | None = None
    soak_seconds: int = 0
    approvals: ApprovalRule | None = None
    waivers: bool = False
    waiver_approvers: tuple[str, ...] = ()


@dataclass(frozen=True)
class Stage:
    """One stage of the agreement (lab, pilot, production, ...), with the gate into it.

    ``previous`` is the stage a build must already be in; ``windows`` (none: always open) and
    ``freezes`` say when a promotion into this stage may happen.
    """

    name: str
    gate: Gate | None
    description: str = ""
    previous: str | None = None
    windows: tuple[Window, ...] = ()
    freezes: tuple[Freeze, ...] = ()


@dataclass(frozen=True)
class Agreement:
    """The promotion policy: stages in order, each with its gate; roles and the approvers' keys."""

    name: str
    stages: tuple[Stage, ...]
    path: Path
    roles: dict[str, tuple[str, ...]] = field(default_factory=dict)
    allowed_signers: Path | None = None  # ssh-keygen ALLOWED SIGNERS file: principal -> public key
    signers_override: bool = False  # allowed_signers was given on the command line, not by the agreement
    # The file as parsed (with line numbers), for the sections other modules read: ``rollout:``.
    document: Any = field(default=None, repr=False, compare=False)

    def stage(self, name: str) -> Stage | None:
        return next((s for s in self.stages if s.name == name), None)


@dataclass(frozen=True)
class SignedRecord:
    """An approval, a rejection or a waiver as the store keeps it: the signed payload, the
    armored SSH signature over it and the principal who signed. Never a private key."""

    id: int
    kind: str  # "approval", "rejection" or "waiver"
    principal: str
    payload: str  # canonical JSON, exactly the bytes that were signed
    signature: str  # armored "-----BEGIN SSH SIGNATURE-----" text
    recorded_at: str
