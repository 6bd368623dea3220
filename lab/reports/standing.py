"""Where a build stands now, in one line: the headline of its page, its ``<title>`` and its row on
the portfolio page.

The headline is the furthest stage the build reached and what is happening there: a production
rollout's state when there is one ("HALTED in production rollout, wave 1 canary, rolled back; 23
hosts kept 2.0.0", "IN PRODUCTION on 24 of 24 hosts"), otherwise the decision of the gate into the
next stage ("BLOCKED from pilot: 4 checks failed on 3 sandboxes", "PROMOTABLE to pilot"). Each
standing has a tone (good, bad, warn, info) and an icon, so that it reads in words, in a symbol and
in colour alike, and a list of reasons naming what decided it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from lab.model import CellOutcomes, ClauseOutcome, Status
from lab.reports.path import PromotionPath
from lab.rollout.records import HostRecord, HostState, RolloutRecord, RolloutState, WaveRecord, WaveState

ICONS = {"good": "\u2714", "bad": "\u2716", "warn": "\u26a0", "info": "\u25b6"}  # check, cross, warning, play
BAD = (Status.FAIL, Status.ERROR)
MESSAGE = 160  # a failing check's message in the reasons: its first line, at most this many characters
FAILED_HOSTS = (HostState.UNHEALTHY, HostState.DEPLOY_FAILED, HostState.ROLLED_BACK, HostState.ROLLBACK_FAILED)


@dataclass(frozen=True)
class FailingCheck:
    """One check that blocks: failed or errored (and not waived) on one or more sandboxes."""

    suite: str
    check_id: str
    status: str  # "fail" or "error"
    sandboxes: tuple[str, ...]
    message: str  # the first occurrence's message, one line

    @property
    def anchor(self) -> str:
        """The id of the check's evidence block on the build page."""
        return anchor_for(self.suite, self.check_id, self.status)


@dataclass(frozen=True)
class Standing:
    """A build's headline: ``word`` (IN PRODUCTION, HALTED, BLOCKED, ...), the whole ``headline``
    sentence (it starts with ``word``), its ``tone``, the ``stage`` it reached and the ``reasons``."""

    word: str
    headline: str
    tone: str
    stage: str
    reasons: tuple[str, ...] = ()

    @property
    def icon(self) -> str:
        return ICONS[self.tone]


def anchor_for(suite: str, check_id: str, status: str) -> str:
    """An HTML id for a check's evidence block: letters, digits and dashes only."""
    raw = f"check-{status}-{suite}-{check_id}"
    return "".join(ch if ch.isalnum() or ch == "-" else "-" for ch in raw)


def one_line(text: str, limit: int = MESSAGE) -> str:
    """The first line of ``text``, at most ``limit`` characters (an ellipsis says when cut)."""
    line = text.strip().split("\n", 1)[0]
    return line if len(line) <= limit else line[: limit - 1] + "\u2026"


def failing_checks(cells: Iterable[CellOutcomes], mandatory: dict[str, bool],
                   waived: Iterable[str]) -> list[FailingCheck]:
    """The mandatory checks that failed or errored and no valid waiver covers, one per (suite,
    check, status) with every sandbox it did so on; failures before errors, then by suite and check."""
    skip = set(waived)
    found: dict[tuple[str, str, str], tuple[list[str], str]] = {}
    for cell in cells:
        if not mandatory.get(cell.suite, True):
            continue
        for check_id, status, message in zip(cell.check_ids, cell.statuses, cell.messages, strict=True):
            if status not in BAD or f"{cell.sandbox}/{cell.suite}/{check_id}" in skip:
                continue
            key = (cell.suite, check_id, status.value)
            found.setdefault(key, ([], one_line(message)))[0].append(cell.sandbox)
    checks = [FailingCheck(suite, check, status, tuple(sorted(places)), message)
              for (suite, check, status), (places, message) in found.items()]
    return sorted(checks, key=lambda c: (c.status != "fail", c.suite, c.check_id))


def plural(count: int, word: str, many: str | None = None) -> str:
    """``1 host``, ``3 hosts`` (``many`` for an irregular plural)."""
    return f"{count} {word}" if count == 1 else f"{count} {many or word + 's'}"


def failing_summary(failing: list[FailingCheck]) -> str:
    """``4 checks failed on 3 sandboxes`` (errors said as such)."""
    sandboxes = {s for check in failing for s in check.sandboxes}
    fails = {(c.suite, c.check_id) for c in failing if c.status == "fail"}
    errors = {(c.suite, c.check_id) for c in failing if c.status == "error"}
    parts = []
    if fails:
        parts.append(f"{plural(len(fails), 'check')} failed")
    if errors:
        parts.append(f"{plural(len(errors), 'check')} could not be judged")
    return f"{' and '.join(parts)} on {plural(len(sandboxes), 'sandbox', 'sandboxes')}"


def gate_standing(path: PromotionPath, failing: list[FailingCheck]) -> Standing:
    """The standing of a build that has no production rollout: its furthest stage and the gate
    into the next one."""
    entered = [row for row in path.stages if row.status in ("registered", "promoted")]
    furthest = entered[-1].stage if entered else "lab"
    nxt = path.next_stage
    if nxt is None:
        return Standing(f"IN {furthest.upper()}", f"IN {furthest.upper()}: promoted, not rolled out yet", "info",
                        furthest)
    decision = nxt.decision
    if decision is None:
        return Standing(f"IN {furthest.upper()}", f"IN {furthest.upper()}: {nxt.stage} has no gate", "info", furthest)
    not_met = [c for c in decision.clauses if c.outcome is ClauseOutcome.NOT_MET]
    reasons = tuple(f"{c.name}: {c.detail}" for c in not_met)
    first_stage = len(entered) <= 1
    if decision.allowed and first_stage:
        return Standing("PROMOTABLE", f"PROMOTABLE to {nxt.stage}", "good", furthest, reasons)
    if decision.allowed:
        return Standing(f"IN {furthest.upper()}", f"IN {furthest.upper()}, promotable to {nxt.stage}", "good",
                        furthest, reasons)
    why = failing_summary(failing) if failing else (f"{not_met[0].name}: {one_line(not_met[0].detail)}"
                                                      if not_met else "the gate is not met")
    if first_stage:
        return Standing("BLOCKED", f"BLOCKED from {nxt.stage}: {why}", "bad", furthest, reasons)
    return Standing(f"IN {furthest.upper()}", f"IN {furthest.upper()}, not yet promotable to {nxt.stage}: {why}",
                    "warn", furthest, reasons)


def stopped_wave(rollout: RolloutRecord) -> WaveRecord | None:
    """The wave a rollout stopped in: the first that neither finished nor was left untouched."""
    return next((w for w in rollout.waves if w.state not in (WaveState.DONE, WaveState.PLANNED, WaveState.CANCELLED)),
                None)


def kept(rollout: RolloutRecord) -> str:
    """``23 hosts kept 2.0.0``: the hosts no wave touched, by the version they ran before."""
    versions: dict[str, int] = {}
    for wave in rollout.waves:
        if wave.state in (WaveState.CANCELLED, WaveState.PLANNED):
            for host in wave.hosts:
                version = str((host.previous or {}).get("version") or "no earlier build")
                versions[version] = versions.get(version, 0) + 1
    return ", ".join(f"{plural(n, 'host')} kept {version}" for version, n in sorted(versions.items()))


def failed_hosts(rollout: RolloutRecord) -> list[HostRecord]:
    """Every host of the rollout whose deploy or health failed (rolled back since, or not)."""
    return [h for w in rollout.waves for h in w.hosts if h.state in FAILED_HOSTS]


def host_reason(host: HostRecord) -> str:
    """``prod-ts-01: plans-a-route fail: exit code 1`` (its failing health checks, else its detail)."""
    health = host.health or {}
    failed = (health.get("before_rollback") or health).get("failed") or []
    if failed:
        named = "; ".join(f"{item[0]} {item[1]}: {one_line(str(item[2]), 100)}" for item in failed[:3])
        return f"{host.host}: {named}"
    return f"{host.host}: {one_line(host.detail)}"


def rollout_standing(rollout: RolloutRecord) -> Standing:
    """The standing of a build with a rollout: where the rollout stands."""
    stage = rollout.stage
    hosts = [h for w in rollout.waves for h in w.hosts]
    healthy = sum(1 for h in hosts if h.state is HostState.HEALTHY)
    reasons = tuple(host_reason(h) for h in failed_hosts(rollout))
    wave = stopped_wave(rollout) or rollout.current_wave()
    where = f"wave {wave.index} {wave.name}" if wave is not None else "before its first wave"
    if rollout.state is RolloutState.COMPLETE:
        back = len(hosts) - healthy
        extra = f" ({plural(back, 'host')} rolled back)" if back else ""
        return Standing(f"IN {stage.upper()}", f"IN {stage.upper()} on {healthy} of {len(hosts)} hosts{extra}",
                        "good" if not back else "warn", stage, reasons)
    untouched = kept(rollout)
    tail = f"; {untouched}" if untouched else ""
    if rollout.state in (RolloutState.HALTED, RolloutState.ABORTED):
        word = "HALTED" if rollout.state is RolloutState.HALTED else "ABORTED"
        how = "stopped" if wave is None else wave.state.value.replace("_", " ")
        return Standing(word, f"{word} in {stage} rollout, {where}, {how}{tail}", "bad", stage, reasons)
    if rollout.state is RolloutState.FAILED:
        return Standing("ROLLBACK FAILED", f"ROLLBACK FAILED in {stage} rollout, {where}: a human must look{tail}",
                        "bad", stage, reasons)
    done = f"{healthy} of {len(hosts)} hosts healthy on {rollout.version}"
    if rollout.state is RolloutState.PAUSED:
        until = wave.resume_at if wave is not None and wave.resume_at else "the next wave"
        return Standing("PAUSED", f"PAUSED in {stage} rollout after {where} until {until}; {done}", "info", stage,
                        reasons)
    if rollout.state is RolloutState.WAITING_WINDOW:
        return Standing("WAITING", f"WAITING for the maintenance window in {stage} rollout, {where} next; {done}",
                        "info", stage, reasons)
    return Standing("ROLLING OUT", f"ROLLING OUT to {stage}, {where}; {done}", "info", stage, reasons)


def standing(path: PromotionPath, failing: list[FailingCheck]) -> Standing:
    """Where the build stands now: its rollout's state when it has one, else the decision of the
    gate into its next stage (``failing``: the checks of its latest campaign that block)."""
    if path.rollout is not None:
        return rollout_standing(path.rollout)
    return gate_standing(path, failing)
