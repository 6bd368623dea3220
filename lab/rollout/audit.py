"""What a rollout writes in the audit log: one entry per decision that changes production.

Each function makes the entry of one state change from the rollout as it stands right after
that change (``RolloutStore`` appends it in the change's own transaction). Subjects name the
build and the rollout (and the wave): ``care-planner@2.0.0 rollout r20261129-210815-f138 wave 2
(half)``. The kinds, in the order a rollout writes them:

- ``rollout-start``: build, digest, stage, health suite, rollback playbook, and every planned
  wave with its hosts and threshold;
- ``rollout-resume`` (``lab rollout resume``) and ``rollout-abort`` (``lab rollout abort`` asked for):
  the state and current wave they found;
- ``rollout-window-closed``: the next wave may not start yet (outside the stage's maintenance
  window or in a freeze), with the next open window; the rollout waits for ``lab rollout resume``;
- ``rollout-wave-start``: the wave's hosts and threshold, as it starts deploying;
- ``rollout-wave-done``: hosts per state, the check counts of its healthy hosts, and the failed
  hosts that were rolled back one by one (within the threshold);
- ``rollout-wave-halted``: the failed hosts, each with why, and the threshold they breached;
- ``rollout-rollback``: a wave's rollback (after a halt or an abort) or its failed hosts'
  rollback: which hosts, why, and which came back healthy or did not;
- ``rollout-complete``, ``rollout-halted``, ``rollout-aborted``, ``rollout-failed``: how the
  rollout ended, every wave's state and the hosts rolled back on their own.
"""

from __future__ import annotations

from typing import Any

from lab.config.rollout_plan import RolloutSettings
from lab.evidence.audit import Note
from lab.rollout.records import HostState, RolloutRecord, WaveRecord

DETAIL = 300  # a host's detail is clipped to this many characters in an entry


def subject(record: RolloutRecord, wave: WaveRecord | None = None) -> str:
    """``BUILD rollout ID``, with `` wave N (NAME)`` for an entry about one wave."""
    about = f"{record.build_ref} rollout {record.id}"
    return about if wave is None else f"{about} wave {wave.index} ({wave.name})"


def base(record: RolloutRecord, wave: WaveRecord | None = None) -> dict[str, Any]:
    found: dict[str, Any] = {"rollout": record.id, "build": record.build_ref, "digest": record.digest}
    if wave is not None:
        found.update(wave=wave.index, name=wave.name, threshold=wave.plan().threshold())
    return found


def started(record: RolloutRecord, settings: RolloutSettings) -> Note:
    """``rollout-start``: what is rolled out where, and every planned wave."""
    waves = [{"wave": w.index, "name": w.name, "hosts": [h.host for h in w.hosts], "threshold": w.plan().threshold(),
              "max_failures": w.max_failures, "max_failure_rate": w.max_failure_rate, "pause_seconds": w.pause_seconds}
             for w in record.waves]
    return Note("rollout-start", subject(record), {
        **base(record), "stage": record.stage, "settings": settings.source.name, "group": settings.group,
        "health_suite": settings.health_suite, "rollback": settings.rollback_playbook.name, "waves": waves})


def found_at(kind: str, record: RolloutRecord) -> Note:
    """``rollout-resume`` or ``rollout-abort``: the state and the current wave the operator found."""
    wave = record.current_wave()
    return Note(kind, subject(record), {**base(record), "state": record.state.value,
                                        "wave": None if wave is None else wave.index,
                                        "wave_state": None if wave is None else wave.state.value})


def window_closed(record: RolloutRecord, index: int, detail: str) -> Note:
    """``rollout-window-closed``: the wave may not start now; ``detail`` names the next open window."""
    wave = record.wave(index)
    return Note("rollout-window-closed", subject(record, wave), {**base(record, wave), "detail": detail})


def wave_started(record: RolloutRecord, index: int) -> Note:
    """``rollout-wave-start``: the wave's hosts, as it starts deploying to them."""
    wave = record.wave(index)
    return Note("rollout-wave-start", subject(record, wave),
                {**base(record, wave), "hosts": [h.host for h in wave.hosts]})


def wave_done(record: RolloutRecord, index: int) -> Note:
    """``rollout-wave-done``: hosts per state, check counts of the healthy ones, hosts rolled back."""
    wave = record.wave(index)
    checks: dict[str, int] = {}
    for host in wave.hosts:
        if host.state is HostState.HEALTHY and host.health:
            for status, count in host.health.get("counts", {}).items():
                checks[status] = checks.get(status, 0) + int(count)
    return Note("rollout-wave-done", subject(record, wave), {
        **base(record, wave), "hosts": dict(sorted(wave.host_counts().items())), "checks": dict(sorted(checks.items())),
        "rolled_back": [h.host for h in wave.hosts if h.state is HostState.ROLLED_BACK],
        "resume_next_at": next((w.resume_at for w in record.waves if w.index == index + 1), None)})


def wave_halted(record: RolloutRecord, index: int, failed: list[str]) -> Note:
    """``rollout-wave-halted``: the failed hosts with why, over the wave's threshold."""
    wave = record.wave(index)
    hosts = [h for h in wave.hosts if h.host in failed]
    return Note("rollout-wave-halted", subject(record, wave), {
        **base(record, wave), "hosts": len(wave.hosts),
        "failed": [{"host": h.host, "state": h.state.value, "detail": h.detail[:DETAIL]} for h in hosts]})


def rolled_back(record: RolloutRecord, index: int, hosts: list[str], why: str, playbook: str) -> Note:
    """``rollout-rollback``: which hosts were rolled back and why, and which came back healthy."""
    wave = record.wave(index)
    states = {h.host: h for h in wave.hosts if h.host in hosts}
    failed = [name for name in hosts if states[name].state is HostState.ROLLBACK_FAILED]
    return Note("rollout-rollback", subject(record, wave), {
        **base(record, wave), "why": why, "playbook": playbook, "hosts": hosts,
        "rolled_back": [name for name in hosts if name not in failed],
        "failed": [{"host": name, "detail": states[name].detail[:DETAIL]} for name in failed],
        "outcome": "rollback failed" if failed else "rolled back"})


def ended(record: RolloutRecord) -> Note:
    """``rollout-complete|halted|aborted|failed``: how it ended, each wave's state, hosts rolled back."""
    return Note(f"rollout-{record.state.value}", subject(record), {
        **base(record), "state": record.state.value, "detail": record.detail,
        "waves": [[w.index, w.name, w.state.value] for w in record.waves],
        "rolled_back_hosts": record.rolled_back_hosts()})
