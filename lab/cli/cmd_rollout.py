"""``lab rollout start|resume|abort|status``: staged rollout of a promoted build to the production hosts."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

import click

from lab import api
from lab.cli.options import BUILD_REF, JSON, NO_WAIT, NOW, pass_lab
from lab.cli.progress import RolloutPrinter
from lab.cli.render import print_json, print_refresh
from lab.reports.data import printable
from lab.rollout.records import RolloutRecord, RolloutState, WaveState

STATE_WIDTH = max(len(state.value) for state in WaveState)


def print_rollout(record: RolloutRecord) -> None:
    """The rollout as stored: its state, then each wave and every host that is not as planned."""
    click.echo(f"rollout {record.id}: {record.build_ref} (sha256 {record.digest[:12]}…) to {record.stage}: "
               f"{record.state.value.upper()}" + (f" - {printable(record.detail)}" if record.detail else ""))
    for wave in record.waves:
        summary = ", ".join(f"{n} {state}" for state, n in wave.host_counts().items())
        click.echo(f"  wave {wave.index} {wave.name:<10} {wave.state.value:<{STATE_WIDTH}} {len(wave.hosts):>3} "
                   f"host(s): {summary}")
        if wave.state is WaveState.CANCELLED:
            continue
        for host in wave.hosts:
            if host.state.value not in ("healthy", "planned"):
                click.echo(f"      {host.host}: {host.state.value}: {printable(host.detail)[:300]}")


def print_outcome(outcome: api.RolloutOutcome) -> int:
    """The rollout, what continues it when it stopped before its end, the refreshed reports; its exit code."""
    record = outcome.record
    print_rollout(record)
    if record.state is RolloutState.PAUSED:
        wave = record.current_wave()
        when = wave.resume_at if wave is not None else "now"
        click.echo(f"paused until {when}; `lab rollout resume {record.build_ref}` continues")
    if record.state is RolloutState.WAITING_WINDOW:
        click.echo(f"waiting for the maintenance window; `lab rollout resume {record.build_ref}` continues once it "
                   "is open")
    print_refresh(outcome.refreshed)
    return outcome.code


@contextmanager
def watching() -> Iterator[RolloutPrinter]:
    """The rollout's live view (timestamped lines when not a terminal), ended before the outcome prints."""
    printer = RolloutPrinter(sys.stdout)
    try:
        yield printer
    finally:
        printer.finish()


@contextmanager
def interruptible(build_ref: str) -> Iterator[None]:
    """Ctrl-C during a rollout: say what is recorded and how to go on, exit 130."""
    try:
        yield
    except KeyboardInterrupt:
        click.echo(f"lab: interrupted; every finished step is recorded. `lab rollout resume {build_ref}` continues, "
                   f"`lab rollout abort {build_ref}` rolls back the current wave", err=True)
        raise click.exceptions.Exit(130) from None


@click.group()
def rollout() -> None:
    """Roll a build that entered production out to the production hosts, wave by wave.

    Waves, their halt thresholds, pauses, the health suite and the rollback playbook come from
    the `rollout:` section of the agreement. Each wave is one deploy run over its hosts, then the
    health suite on each; a wave whose failures exceed its threshold is rolled back and no later
    wave is touched; a wave within its threshold has its failed hosts rolled back on their own
    before the next wave. A wave starts only inside the production stage's maintenance window
    (outside it, the rollout waits, naming the next open window; `lab rollout resume` continues).
    Every step is recorded first, and audited.

    \b
    Exit codes: 0 rolled out (or paused with --no-wait, or aborted), 1 halted, not promoted or
    outside the maintenance window, 2 bad usage or configuration, 3 infrastructure error or a
    rollback that left hosts unhealthy.
    """


@rollout.command()
@BUILD_REF
@NO_WAIT
@NOW
@pass_lab
def start(lab: api.Lab, build_ref: str, no_wait: bool, now: datetime | None) -> int:
    """Start rolling a build out from its first wave (a rollout that already ended is shown, not repeated)."""
    with interruptible(build_ref), watching() as printer:
        outcome = api.rollout_start(lab, build_ref, wait=not no_wait, now=now, events=printer)
    return print_outcome(outcome)


@rollout.command()
@BUILD_REF
@NO_WAIT
@NOW
@pass_lab
def resume(lab: api.Lab, build_ref: str, no_wait: bool, now: datetime | None) -> int:
    """Continue the build's unfinished rollout from its last recorded step (after a crash or a pause)."""
    with interruptible(build_ref), watching() as printer:
        outcome = api.rollout_resume(lab, build_ref, wait=not no_wait, now=now, events=printer)
    return print_outcome(outcome)


@rollout.command()
@BUILD_REF
@NOW
@pass_lab
def abort(lab: api.Lab, build_ref: str, now: datetime | None) -> int:
    """Roll back what the current wave of the build's unfinished rollout changed, and end the rollout."""
    with watching() as printer:
        outcome = api.rollout_abort(lab, build_ref, now=now, events=printer)
    return print_outcome(outcome)


@rollout.command()
@BUILD_REF
@JSON
@pass_lab
def status(lab: api.Lab, build_ref: str, as_json: bool) -> None:
    """Show the build's latest rollout, wave by wave, as stored; change nothing."""
    record = api.rollout_status(lab, build_ref)
    if as_json:
        print_json(record.to_json())
    else:
        print_rollout(record)
