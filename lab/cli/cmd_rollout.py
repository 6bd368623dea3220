"""``lab rollout`` and ``lab production up|down|status``: staged rollout to the production hosts."""

from __future__ import annotations

import click

from lab.campaign.builds import registered_build, verified_build
from lab.cli.cmd_campaign import refresh_reports
from lab.cli.cmd_promote import NOW
from lab.cli.context import LabContext, pass_lab
from lab.config.rollout_plan import load_rollout_settings
from lab.errors import ConfigError, NotFoundError
from lab.reports.data import printable
from lab.rollout.endpoints import describe, endpoints, provision, teardown
from lab.rollout.engine import RolloutEvent, RolloutRunner, outcome_code
from lab.rollout.records import RolloutRecord, RolloutState, RolloutStore, WaveState
from lab.util.clock import current

STATE_WIDTH = max(len(state.value) for state in WaveState)


def print_event(event: RolloutEvent) -> None:
    """One line per step; a healthy host only counts in its wave's summary line."""
    if event.what == "host" and event.ok:
        return
    where = f"[wave {event.wave}/{event.waves}]" if event.wave else "[rollout]"
    click.echo(f"{where} {'' if event.ok else '! '}{printable(event.detail)}")


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


@click.command()
@click.argument("build_ref", metavar="PRODUCT@VERSION")
@click.option("--resume", is_flag=True, help="Continue the build's unfinished rollout (after a crash or a pause).")
@click.option("--abort", is_flag=True, help="Roll back what the current wave changed and end the rollout.")
@click.option("--status", "show", is_flag=True, help="Show the build's latest rollout; change nothing.")
@click.option("--no-wait", is_flag=True, help="Stop at a pause between waves (exit 0) instead of waiting it out.")
@NOW
@pass_lab
def rollout(lab: LabContext, build_ref: str, resume: bool, abort: bool, show: bool, no_wait: bool,
            now_text: str | None) -> int:
    """Roll a build that entered production out to the production hosts, wave by wave.

    Waves, their halt thresholds, pauses, the health suite and the rollback playbook come from
    the `rollout:` section of the agreement. Each wave is one deploy run over its hosts, then the
    health suite on each; a wave whose failures exceed its threshold is rolled back and no later
    wave is touched; a wave within its threshold has its failed hosts rolled back on their own
    before the next wave. A wave starts only inside the production stage's maintenance window
    (outside it, the rollout waits, naming the next open window; --resume continues). Every
    step is recorded first, and audited.

    \b
    Exit codes: 0 rolled out (or paused with --no-wait, or aborted), 1 halted, not promoted or
    outside the maintenance window, 2 bad usage or configuration, 3 infrastructure error or a
    rollback that left hosts unhealthy.
    """
    if sum((resume, abort, show)) > 1:
        raise ConfigError("use at most one of --resume, --abort and --status")
    config = lab.config
    if show:  # reads the store only: no settings, no runner
        spec = config.build_spec(build_ref)
        record = RolloutStore(lab.store).latest(spec.product, spec.version)
        if record is None:
            raise NotFoundError(f"{build_ref} has no rollout")
        print_rollout(record)
        return 0
    runner = RolloutRunner(config, lab.store, load_rollout_settings(config), print_event,
                           clock=lambda: current(now_text))
    if abort:
        aborted = registered_build(config.build_spec(build_ref), lab.store)
        record = runner.abort(aborted)
        print_rollout(record)
        refresh_reports(lab, aborted, current(now_text))
        return outcome_code(record)
    build = verified_build(config.build_spec(build_ref), lab.store)
    try:
        record = runner.resume(build, wait=not no_wait) if resume else runner.start(build, wait=not no_wait)
    except KeyboardInterrupt:
        click.echo(f"lab: interrupted; every finished step is recorded. `lab rollout {build.ref} --resume` "
                   "continues, --abort rolls back the current wave", err=True)
        raise click.exceptions.Exit(130) from None
    print_rollout(record)
    if record.state is RolloutState.PAUSED:
        wave = record.current_wave()
        when = wave.resume_at if wave is not None else "now"
        click.echo(f"paused until {when}; `lab rollout {build.ref} --resume` continues")
    if record.state is RolloutState.WAITING_WINDOW:
        click.echo(f"waiting for the maintenance window; `lab rollout {build.ref} --resume` continues once it is open")
    refresh_reports(lab, build, current(now_text))
    return outcome_code(record)


@click.group()
def production() -> None:
    """The production hosts that `lab rollout` deploys to (the rollout settings' inventory group)."""


@production.command("up")
@click.option("--rebuild", is_flag=True, help="Provision every local host again from a fresh tree.")
@pass_lab
def production_up(lab: LabContext, rebuild: bool) -> None:
    """Provision the local production hosts with the baseline playbook: one Ansible run for all.

    Hosts already provisioned are left as they are (unless --rebuild). Exits 3 naming the hosts
    the baseline failed on.
    """
    settings = load_rollout_settings(lab.config)
    outcome = provision(lab.config, settings, rebuild)
    click.echo(f"production: {len(outcome.provisioned)} host(s) provisioned, {len(outcome.already)} already up "
               f"({outcome.seconds:.1f}s)")


@production.command("down")
@pass_lab
def production_down(lab: LabContext) -> None:
    """Stop and remove the local production hosts (static hosts are never touched)."""
    removed = teardown(lab.config, load_rollout_settings(lab.config))
    click.echo(f"production: {len(removed)} local host(s) removed")


@production.command("status")
@pass_lab
def production_status(lab: LabContext) -> None:
    """One line per production host: state, where it lives, what it runs."""
    for item in endpoints(lab.config, load_rollout_settings(lab.config)):
        info = describe(item)
        runs = ", ".join(f"{p} {v}" for p, v in info["installed"].items()) or "-"
        click.echo(f"{item.name:<14} {info['state']:<7} {info['where']}  runs: {runs}")
