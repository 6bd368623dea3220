"""The agreement in words: one line per stage's gate and time rules, for ``lab validate``.

What a lab engineer reads to check that the YAML says what the service agreement means,
before any build meets the gate.
"""

from __future__ import annotations

from pathlib import Path

from lab.config.rollout_plan import RolloutSettings
from lab.decision.schedule import describe_freeze, describe_window
from lab.model import Agreement, Gate, Stage
from lab.util.clock import format_duration


def describe_gate(gate: Gate) -> str:
    """``platforms debian-12; mandatory suites, zero failures; flaky <= 0; ...``: a gate's clauses."""
    parts = [f"platforms {', '.join(gate.platforms) or 'any'}"]
    suites = "mandatory suites" if gate.suites is None else f"suites {', '.join(gate.suites)}"
    rule = "zero failures" if gate.min_pass_rate is None else f"pass rate >= {gate.min_pass_rate:.0%}"
    parts.append(f"{suites}, {rule}")
    parts.append(f"flaky <= {gate.max_flaky}")
    parts.append("waivers allowed" if gate.waivers else "no waivers")
    if gate.soak_seconds:
        parts.append(f"soak {format_duration(gate.soak_seconds)}")
    rule_of = gate.approvals
    if rule_of is not None:
        who = f"role {rule_of.role}" if rule_of.role else ", ".join(rule_of.approvers)
        parts.append(f"{rule_of.min_count}{' distinct' if rule_of.distinct else ''} approval(s) from {who}")
    return "; ".join(parts)


def describe_times(stage: Stage) -> str | None:
    """The stage's windows and freezes in one line; None when a promotion may happen any time."""
    parts = [describe_window(w) for w in stage.windows] + [describe_freeze(f) for f in stage.freezes]
    return "; ".join(parts) if parts else None


def describe_agreement(agreement: Agreement) -> list[str]:
    """One line per gated stage (and its time rules), then where approver keys come from."""
    lines = []
    for stage in agreement.stages:
        if stage.gate is None:
            lines.append(f"{stage.name}: no gate (a registered build is in it)")
            continue
        lines.append(f"{stage.name}: from {stage.previous}; {describe_gate(stage.gate)}")
        times = describe_times(stage)
        if times:
            lines.append(f"{' ' * len(stage.name)}  open: {times}")
    signers = agreement.allowed_signers
    if signers is None:
        lines.append("approver keys: none configured (no approval can verify)")
    else:
        listed = count_signers(agreement)
        origin = " (override)" if agreement.signers_override else ""
        closed = " (no approval can verify)" if not listed else ""
        lines.append(f"approver keys: {shown(signers, agreement)}{origin}, {listed} key(s) listed{closed}")
    return lines


def shown(path: Path, agreement: Agreement) -> str:
    """``path`` relative to the agreement's directory when it is inside it."""
    try:
        return path.relative_to(agreement.path.parent.resolve()).as_posix()
    except ValueError:
        return str(path)


def count_signers(agreement: Agreement) -> int:
    """How many key lines the allowed_signers file holds (0 when it is missing)."""
    path = agreement.allowed_signers
    if path is None or not path.is_file():
        return 0
    return sum(1 for line in path.read_text(encoding="utf-8").splitlines()
               if line.strip() and not line.lstrip().startswith("#"))


def describe_rollout(settings: RolloutSettings) -> list[str]:
    """The rollout plan: where it goes, the health suite, and one line per wave with its hosts,
    halt threshold and pause."""
    sizes = "/".join(str(len(w.hosts)) for w in settings.waves)
    lines = [f"rollout to {settings.stage}: {len(settings.hosts)} host(s) of group {settings.group} in "
             f"{len(settings.waves)} wave(s) of {sizes}; health suite {settings.health_suite}; "
             f"rollback {settings.rollback_playbook.name}"]
    for wave in settings.waves:
        hosts = ", ".join(wave.hosts[:3]) + (f" and {len(wave.hosts) - 3} more" if len(wave.hosts) > 3 else "")
        pause = f"; then pause {format_duration(wave.pause_seconds)}" if wave.pause_seconds else ""
        lines.append(f"  wave {wave.index} {wave.name}: {hosts}; {wave.threshold()}{pause}")
    return lines
