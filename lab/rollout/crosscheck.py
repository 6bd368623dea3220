"""Rollouts in the store against the audit entries that recorded them (``lab audit verify``).

The rollout tables may be updated in place (a rollout's state moves on), so a row alone proves
nothing: each must agree with the entries written in the same transactions as its changes
(``lab/rollout/audit.py``). Checked: every rollout has its ``rollout-start`` entry, with the same
build, digest and stage, and every wave and host it planned; a rollout that ended has its end
entry, whose state, wave states and individually rolled-back hosts it still shows; a done wave's
hosts per state match its ``rollout-wave-done`` entry; each host a ``rollout-rollback`` entry
names (the last one naming it) is still rolled back, or failed to be; and no entry speaks of a
rollout the tables no longer hold.
"""

from __future__ import annotations

from typing import Any

from lab.evidence.audit import ROLLOUT_KINDS, AuditEntry, Finding, payloads
from lab.evidence.db import Connection
from lab.rollout.records import FINAL, HostState, RolloutRecord, WaveState, read


def rollout_findings(db: Connection, log: list[AuditEntry]) -> list[Finding]:
    """Every disagreement between the rollout tables as ``db`` sees them (in the snapshot ``log``
    was read in) and the log, each named by table, key and seq."""
    ids = [str(r[0]) for r in db.execute("SELECT id FROM rollouts ORDER BY created_at, id")]
    orphans = [(str(r[0]), int(r[1])) for r in db.execute(
        "SELECT w.rollout_id, w.wave FROM rollout_waves w LEFT JOIN rollouts r ON r.id = w.rollout_id "
        "WHERE r.id IS NULL ORDER BY w.rollout_id, w.wave")]
    by_rollout: dict[str, list[tuple[AuditEntry, dict[str, Any]]]] = {}
    for entry, data in payloads(log, *ROLLOUT_KINDS):
        by_rollout.setdefault(str(data.get("rollout")), []).append((entry, data))
    findings = [Finding(f"rollout_waves {rid} wave {wave}", None, f"rollout_waves {rid} wave {wave}: a wave of a "
                        "rollout the rollouts table does not hold") for rid, wave in orphans]
    for rollout_id in ids:
        findings += one_rollout(read(db, rollout_id), by_rollout.pop(rollout_id, []))
    for rollout_id, found in sorted(by_rollout.items()):
        entry = found[0][0]
        findings.append(Finding(f"rollouts {rollout_id}", entry.seq, f"rollouts {rollout_id}: entry {entry.seq} "
                                f"({entry.kind}) and {len(found) - 1} more speak of this rollout, but its row is "
                                "missing"))
    return findings


def one_rollout(record: RolloutRecord, found: list[tuple[AuditEntry, dict[str, Any]]]) -> list[Finding]:
    """What ``found`` (the rollout's entries, oldest first) says against the rollout as stored."""
    key = f"rollouts {record.id}"
    start = next(((e, d) for e, d in found if e.kind == "rollout-start"), None)
    if start is None:
        return [Finding(key, None, f"{key}: no rollout-start entry in the audit log recorded this rollout (it was "
                        "written behind lab's back)")]
    entry, data = start
    findings = [Finding(key, entry.seq, f"{key}: the row's {what} is {stored!r}, but entry {entry.seq} "
                        f"recorded {logged!r}") for what, stored, logged in
                (("build", record.build_ref, data.get("build")), ("digest", record.digest, data.get("digest")),
                 ("stage", record.stage, data.get("stage"))) if stored != logged]
    planned = [[w.get("wave"), w.get("name"), w.get("hosts")] for w in data.get("waves", []) if isinstance(w, dict)]
    stored = [[w.index, w.name, [h.host for h in w.hosts]] for w in record.waves]
    if planned != stored:
        findings.append(Finding(f"rollout_waves {record.id}", entry.seq, f"rollout_waves {record.id}: the waves and "
                                f"hosts stored ({describe(stored)}) differ from those entry {entry.seq} planned "
                                f"({describe(planned)})"))
    findings += end_findings(record, found)
    findings += host_findings(record, found)
    return findings


def end_findings(record: RolloutRecord, found: list[tuple[AuditEntry, dict[str, Any]]]) -> list[Finding]:
    """The rollout's state against its end entry: an ended rollout needs one that says how it ended."""
    key = f"rollouts {record.id}"
    ends = [(e, d) for e, d in found if e.kind in {f"rollout-{s.value}" for s in FINAL}]
    if not ends:
        if record.state in FINAL:
            return [Finding(key, None, f"{key}: the row says the rollout ended {record.state.value}, but no end "
                            "entry in the audit log recorded that")]
        return []
    entry, data = ends[-1]
    waves = [[w.index, w.name, w.state.value] for w in record.waves]
    pairs = (("state", record.state.value, data.get("state")), ("wave states", waves, data.get("waves")),
             ("hosts rolled back on their own", record.rolled_back_hosts(), data.get("rolled_back_hosts")))
    return [Finding(key, entry.seq, f"{key}: the row's {what} is {stored!r}, but entry {entry.seq} "
                    f"recorded {logged!r}") for what, stored, logged in pairs if stored != logged]


def host_findings(record: RolloutRecord, found: list[tuple[AuditEntry, dict[str, Any]]]) -> list[Finding]:
    """Hosts' outcomes against the wave-done and rollback entries that recorded them."""
    findings = []
    expected: dict[str, tuple[AuditEntry, HostState]] = {}
    for entry, data in found:
        if entry.kind == "rollout-rollback":
            for host in data.get("rolled_back", []):
                expected[str(host)] = (entry, HostState.ROLLED_BACK)
            for failed in data.get("failed", []):
                if isinstance(failed, dict):
                    expected[str(failed.get("host"))] = (entry, HostState.ROLLBACK_FAILED)
        if entry.kind == "rollout-wave-done" and isinstance(data.get("wave"), int):
            wave = next((w for w in record.waves if w.index == data["wave"]), None)
            counts = None if wave is None else dict(sorted(wave.host_counts().items()))
            if wave is not None and wave.state is WaveState.DONE and counts != data.get("hosts"):
                where = f"rollout_hosts {record.id} wave {wave.index}"
                findings.append(Finding(where, entry.seq, f"{where}: the hosts per state are {counts}, but entry "
                                        f"{entry.seq} recorded {data.get('hosts')}"))
    states = {h.host: h.state for w in record.waves for h in w.hosts}
    for host, (entry, state) in sorted(expected.items()):
        if host in states and states[host] is not state:
            where = f"rollout_hosts {record.id} {host}"
            findings.append(Finding(where, entry.seq, f"{where}: the row says {states[host].value}, but entry "
                                    f"{entry.seq} recorded it {state.value}"))
    return findings


def describe(waves: list[list[Any]]) -> str:
    """``1 canary: prod-ts-01; 2 ten: prod-ts-02, prod-ts-03`` for the message of a plan that differs."""
    return "; ".join(f"{w[0]} {w[1]}: {', '.join(map(str, w[2] or []))}" for w in waves) or "none"
