"""The agreement in words: one line per stage's gate and time rules, for ``lab validate``.

What a lab engineer reads to check that the YAML says what the service agreement means,
before any build meets the gate. Each gate clause (``lab.decision.clauses``) says its own part.
"""

from __future__ import annotations

from pathlib import Path

from lab.config.allowed_signers import read_signers
from lab.config.rollout_plan import RolloutSettings
from lab.decision.clauses import CLAUSES
from lab.decision.context import GATE_LINE, OPEN_LINE
from lab.model import Agreement, Gate, Stage
from lab.util.clock import format_duration


def sentences(stage: Stage, gate: Gate, line: str) -> list[str]:
    """What the gate's clauses say for ``line`` (the gate line or the "open:" line), in registry order."""
    said = (clause.describe(stage, gate) for clause in CLAUSES if clause.line == line)
    return [sentence for sentence in said if sentence]


def describe_gate(stage: Stage, gate: Gate) -> str:
    """``from lab; platforms debian-12; mandatory suites, zero failures; flaky <= 0; ...``: each clause's sentence."""
    return "; ".join(sentences(stage, gate, GATE_LINE))


def describe_times(stage: Stage, gate: Gate) -> str | None:
    """The stage's windows and freezes in one line; None when a promotion may happen any time."""
    return "; ".join(sentences(stage, gate, OPEN_LINE)) or None


def describe_agreement(agreement: Agreement) -> list[str]:
    """One line per gated stage (and its time rules), then where approver keys come from."""
    lines = []
    for stage in agreement.stages:
        if stage.gate is None:
            lines.append(f"{stage.name}: no gate (a registered build is in it)")
            continue
        lines.append(f"{stage.name}: {describe_gate(stage, stage.gate)}")
        times = describe_times(stage, stage.gate)
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
    return read_signers(path)


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
