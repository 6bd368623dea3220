"""The lab's vocabulary as frozen dataclasses (see DESIGN.md, "Words")."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
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
class Product:
    """A piece of software the lab manages, with its deploy playbook and its builds."""

    name: str
    deploy_playbook: Path
    suites: tuple[str, ...]
    builds: dict[str, BuildSpec]


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
class CellRecord:
    """A cell as the store keeps it, with its results once it is done."""

    campaign_id: str
    sandbox: str
    suite: str
    state: CellState
    started_at: str | None
    finished_at: str | None
    results: tuple[Result, ...] = ()


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
    """One line of a verdict: what the agreement asked, whether it holds, on what evidence."""

    name: str
    outcome: ClauseOutcome
    detail: str


@dataclass(frozen=True)
class Verdict:
    """The agreement evaluated on the evidence: promotable or blocked, clause by clause."""

    build_ref: str
    digest: str
    stage: str
    allowed: bool
    clauses: tuple[Clause, ...]

    @property
    def reasons(self) -> tuple[str, ...]:
        return tuple(c.detail for c in self.clauses if c.outcome is ClauseOutcome.NOT_MET)


@dataclass(frozen=True)
class Gate:
    """What a stage asks of the evidence before a build may enter it."""

    platforms: tuple[str, ...]
    suites: tuple[str, ...] | None  # None: every mandatory suite of the product
    max_flaky: int = 0


@dataclass(frozen=True)
class Stage:
    """One stage of the agreement (lab, pilot, production, ...), with the gate into it."""

    name: str
    gate: Gate | None
    description: str = ""


@dataclass(frozen=True)
class Agreement:
    """The promotion policy: stages in order, each with its gate."""

    name: str
    stages: tuple[Stage, ...]
    path: Path

    def stage(self, name: str) -> Stage | None:
        return next((s for s in self.stages if s.name == name), None)
