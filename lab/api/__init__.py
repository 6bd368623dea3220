"""The one front of lab: one function per use case, for the CLI, CI scripts and distributed workers.

Every function takes a session (``Lab``: which lab, with which overrides) and plain typed
arguments, does the whole use case (including refreshing the build's reports where it changes
where a build stands), and returns a frozen result dataclass; nothing is printed. Errors are
raised from ``lab.errors`` and carry their exit code. Progress goes to an explicit ``events``
(or ``each``) callback. Times default to ``$LAB_NOW``, else the system clock, unless ``now`` is
given.

    from lab import api

    with api.Lab("path/to/lab.yml") as lab:
        api.build(lab, "care-planner@2.0.0")
        outcome = api.run(lab, "care-planner@2.0.0")
        print(outcome.data.verdict.allowed, outcome.code)
"""

from __future__ import annotations

from lab.api.campaigns import (
    CampaignOutcome,
    CampaignRow,
    CampaignRows,
    CampaignStarting,
    Registration,
    ReportsRefresh,
    RunEvent,
    Validation,
    WrittenReport,
    build,
    list_campaigns,
    outcome_code,
    report,
    resume,
    run,
    show,
    validate,
)
from lab.api.decisions import Decision, Promotion, PromotionRefused, SignedWord, approve, gate, promote, waive
from lab.api.documents import document
from lab.api.hosts import (
    SandboxesDone,
    SandboxOutcome,
    SandboxRow,
    SandboxRows,
    SelftestOutcome,
    sandbox_down,
    sandbox_list,
    sandbox_rebaseline,
    sandbox_reset,
    sandbox_stop,
    sandbox_up,
    selftest,
)
from lab.api.production import (
    ProductionHost,
    ProductionRemoved,
    ProductionStopped,
    RolloutOutcome,
    production_down,
    production_status,
    production_stop,
    production_up,
    rollout_abort,
    rollout_resume,
    rollout_start,
    rollout_status,
)
from lab.api.records import (
    AuditEntries,
    AuditVerdict,
    EvidenceVerdict,
    EvidenceWritten,
    audit_checkpoint,
    audit_show,
    audit_verify,
    evidence_verify,
    evidence_write,
)
from lab.api.session import Lab
from lab.api.starter import Initialized, init
from lab.api.worker import worker
from lab.campaign.cells import Progress
from lab.config.executor import KINDS as EXECUTOR_KINDS
from lab.config.labfile import PROVIDER_NAMES
from lab.evidence.audit import KINDS as AUDIT_KINDS
from lab.reports import FORMATS as REPORT_FORMATS
from lab.rollout.engine import RolloutEvent

__all__ = [
    "AUDIT_KINDS", "EXECUTOR_KINDS", "PROVIDER_NAMES", "REPORT_FORMATS", "AuditEntries", "AuditVerdict",
    "CampaignOutcome", "CampaignRow", "CampaignRows", "CampaignStarting", "Decision", "EvidenceVerdict",
    "EvidenceWritten", "Initialized", "Lab", "ProductionHost", "ProductionRemoved", "ProductionStopped", "Progress",
    "Promotion", "PromotionRefused", "Registration", "ReportsRefresh", "RolloutEvent", "RolloutOutcome", "RunEvent",
    "SandboxOutcome", "SandboxRow", "SandboxRows", "SandboxesDone", "SelftestOutcome", "SignedWord", "Validation",
    "WrittenReport", "approve", "audit_checkpoint", "audit_show", "audit_verify", "build", "document",
    "evidence_verify", "evidence_write", "gate", "init", "list_campaigns", "outcome_code", "production_down",
    "production_status", "production_stop", "production_up", "promote", "report", "resume", "rollout_abort",
    "rollout_resume", "rollout_start", "rollout_status", "run", "sandbox_down", "sandbox_list", "sandbox_rebaseline",
    "sandbox_reset", "sandbox_stop", "sandbox_up", "selftest", "show", "validate", "waive", "worker",
]
