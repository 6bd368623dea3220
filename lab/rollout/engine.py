"""Staged rollout of a promoted build to production, in waves, with halt and rollback.

Per wave: record it as deploying -> the deploy playbook (the lab's own: same artifact, digest
checked on every host) in shards of ``forks`` hosts, one run each, streamed: the health suite of
shard k's hosts runs while shard k+1 deploys -> done, or halted when its failures (errors
included) exceed the wave's threshold. A halted
wave is rolled back with the rollback playbook (one run), its hosts are verified healthy again,
and no host of a later wave is touched. A wave within its threshold whose hosts did not all
come through has those hosts rolled back on their own (one rollback run limited to them, each
verified healthy on the build it ran before) before the next wave starts; when that rollback
leaves a host unhealthy, the rollout stops there. Every state change is committed to the store
(with its audit entries, ``lab/rollout/audit.py``, in the same transaction) before the next
step, so ``resume`` continues after a crash from the last recorded step, and every step is
idempotent on the hosts (a host records each build it gets exactly once).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn

from lab.ansible.playbook import PlaybookOutcome, run_playbook_on
from lab.config.labfile import LabConfig
from lab.config.rollout_plan import RolloutSettings
from lab.decision.records import promotion
from lab.decision.schedule import window_clause
from lab.errors import ConfigError, GateBlocked, InfrastructureError, NotFoundError
from lab.evidence.audit import Note
from lab.evidence.store import Store
from lab.executors.base import HERE, Executor, Outcome, Task
from lab.model import Build, ClauseOutcome
from lab.rollout.audit import (
    ended,
    found_at,
    rolled_back,
    started,
    wave_done,
    wave_halted,
    wave_started,
    window_closed,
)
from lab.rollout.dispatch import ShardPlanner, finished
from lab.rollout.endpoints import Endpoint, endpoint, endpoints, production_lease, require_provisioned
from lab.rollout.health import HostHealth, check_hosts
from lab.rollout.records import (
    FINAL,
    HostState,
    RolloutRecord,
    RolloutState,
    RolloutStore,
    WaveRecord,
    WaveState,
)
from lab.rollout.shards import health_of, unreached
from lab.signoff.checkpoints import sealer

FAILED_HOST = (HostState.DEPLOY_FAILED, HostState.UNHEALTHY)
RESTORED = (HostState.ROLLED_BACK, HostState.ROLLBACK_FAILED)
WHY_HALTED = "the wave failed over its threshold"
WHY_ABORTED = "aborted by the operator"
WHY_HOSTS = "these hosts failed after the deploy, within the wave's threshold"


@dataclass(frozen=True)
class RolloutEvent:
    """Something happened in a rollout: ``wave`` is 0 for the rollout as a whole."""

    rollout_id: str
    wave: int
    waves: int
    what: str  # plan, deploy, host (health after deploy), done, halt, rollback, restored, pause, complete, abort,
    # sealed (the end's checkpoint, or why there is none)
    ok: bool
    detail: str
    hosts: int = 0  # a wave's "deploy" event: how many hosts it deploys to


EventHandler = Callable[[RolloutEvent], None]


def require_promotion(store: Store, build: Build, stage: str) -> None:
    """GateBlocked unless ``build`` (this very digest) has a recorded promotion into ``stage``."""
    promoted = promotion(store, build.product, build.version, stage)
    if promoted is None:
        raise GateBlocked(f"{build.ref} has no recorded promotion into {stage}; it may not be rolled out. "
                          f"`lab promote {build.ref} --to {stage}` first")
    if promoted["digest"] != build.digest:
        raise GateBlocked(f"{build.ref} was promoted into {stage} as sha256 {promoted['digest']}, but the build "
                          f"is now {build.digest}; only the promoted build may be rolled out")


class RolloutRunner:
    """Starts, resumes and aborts rollouts of one lab to its production hosts."""

    def __init__(self, config: LabConfig, store: Store, settings: RolloutSettings,
                 events: EventHandler | None = None, sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC), executor: Executor = HERE) -> None:
        self.config = config
        self.executor = executor  # where shards run: here (threads) or on zone workers
        self.store = store
        self.settings = settings
        self.rollouts = RolloutStore(store)
        self.events = events or (lambda event: None)
        self.sleep = sleep
        self.clock = clock  # when waves start, for the stage's maintenance windows and freezes

    # --- entry points ------------------------------------------------------------------------

    def start(self, build: Build, wait: bool = True) -> RolloutRecord:
        """Roll ``build`` out from its first wave, or report its rollout when one already ended.

        Promises: refuses (GateBlocked) a build without a recorded promotion into the stage;
        a build whose rollout completed, halted or failed is not rolled out again (that record
        is returned); an aborted rollout may be started again; a rollout of the same product
        that has not ended must be resumed or aborted first (ConfigError).
        """
        require_promotion(self.store, build, self.settings.stage)
        with production_lease(self.config, f"lab rollout start {build.ref}"):
            closed = self.window_closed()
            if closed is not None:
                raise GateBlocked(f"{build.ref} may not be rolled out to {self.settings.stage} now: {closed}")
            latest = self.rollouts.latest(build.product, build.version)
            if latest is not None and latest.digest == build.digest and latest.state in FINAL \
                    and latest.state is not RolloutState.ABORTED:
                return latest
            for other in self.rollouts.unfinished():
                if other.product == build.product:
                    raise ConfigError(f"rollout {other.id} of {other.build_ref} has not ended ({other.state.value}); "
                                      f"`lab rollout resume {other.build_ref}` continues it, "
                                      f"`lab rollout abort {other.build_ref}` rolls back its current wave")
            hosts = endpoints(self.config, self.settings)
            require_provisioned(self.config, hosts)
            previous = {h.name: self.rollouts.last_good(build.product, h.name) for h in hosts}
            record = self.rollouts.create(build, self.settings.stage, self.settings.waves, previous,
                                          audit=lambda created: [started(created, self.settings)])
            sizes = "/".join(str(len(w.hosts)) for w in record.waves)
            self.emit(record, 0, "plan", True, f"{build.ref} (sha256 {build.digest[:12]}…) to {len(hosts)} "
                      f"production host(s) in {len(record.waves)} wave(s) of {sizes} host(s)")
            return self.execute(record.id, build, wait)

    def resume(self, build: Build, wait: bool = True) -> RolloutRecord:
        """Continue the unfinished rollout of ``build`` from its last recorded step."""
        require_promotion(self.store, build, self.settings.stage)
        with production_lease(self.config, f"lab rollout resume {build.ref}"):
            record = self.unfinished_of(build)
            self.rollouts.set_rollout(record.id, record.state, audit=lambda _: [found_at("rollout-resume", record)])
            self.emit(record, 0, "plan", True, f"resuming rollout {record.id} of {build.ref} ({record.state.value})")
            return self.execute(record.id, build, wait)

    def abort(self, build: Build) -> RolloutRecord:
        """Stop the unfinished rollout of ``build``: roll back what its current wave changed, cancel
        the waves after it. Waves that were done stay as they are."""
        with production_lease(self.config, f"lab rollout abort {build.ref}"):
            record = self.unfinished_of(build)
            self.rollouts.set_rollout(record.id, RolloutState.ABORTING, WHY_ABORTED,
                                      audit=lambda _: [found_at("rollout-abort", record)])
            self.executor.halt(record.id)
            return self.execute(record.id, build, wait=False)

    def unfinished_of(self, build: Build) -> RolloutRecord:
        """The newest rollout of ``build``, which must not have ended."""
        latest = self.rollouts.latest(build.product, build.version)
        if latest is None:
            raise NotFoundError(f"{build.ref} has no rollout; `lab rollout start {build.ref}` starts one")
        if latest.state in FINAL:
            raise ConfigError(f"rollout {latest.id} of {build.ref} has ended ({latest.state.value}): nothing to "
                              "resume or abort")
        return latest

    # --- the state machine -------------------------------------------------------------------

    def execute(self, rollout_id: str, build: Build, wait: bool) -> RolloutRecord:
        """Take recorded steps until the rollout ends (or pauses, when not ``wait``)."""
        while True:
            record = self.rollouts.get(rollout_id)
            wave = record.current_wave()
            if record.state in FINAL:
                return record
            if record.state is RolloutState.ABORTING and wave is not None:
                self.finish_abort(record, wave, build)
                continue
            if wave is None:
                self.complete(record)
            elif wave.state is WaveState.PLANNED:
                if not self.start_wave(record, wave, wait):
                    return self.rollouts.get(record.id)
            elif wave.state is WaveState.DEPLOYING:
                self.deploy(record, wave, build)
            elif wave.state is WaveState.VERIFYING:
                self.judge(record, self.verify(record, wave))
            elif wave.state is WaveState.ROLLING_BACK_HOSTS:
                self.roll_back_hosts(record, wave, build)
            elif wave.state in (WaveState.HALTED, WaveState.ROLLING_BACK):
                self.roll_back(record, wave, build, WHY_HALTED)
            else:  # rolled back, or failed to: the rollout ends here
                failed = wave.state is WaveState.ROLLBACK_FAILED
                self.end(record, RolloutState.FAILED if failed else RolloutState.HALTED,
                         f"halted in wave {wave.index} ({wave.name}): {wave.detail}", wave.index)

    def end(self, record: RolloutRecord, state: RolloutState, detail: str, after_wave: int) -> None:
        """End the rollout in ``state`` with its audit entry, sealed by a signed checkpoint when the
        lab can seal (in the same transaction); say whether it was."""
        sealing = self.rollouts.end(record.id, state, detail, after_wave, audit=lambda after: [ended(after)],
                                    seal=lambda db: sealer(self.config).seal(db, f"rollout {record.id} {state.value}"))
        if sealing is not None:
            self.emit(record, 0, "sealed", True, sealing.line())  # an unsealed end is said, not a failure

    def start_wave(self, record: RolloutRecord, wave: WaveRecord, wait: bool) -> bool:
        """Record ``wave`` as deploying to all its hosts, once its pause is over; False when it is not
        (and not ``wait``)."""
        if not self.wait_for(record, wave, wait):
            return False
        self.rollouts.set_wave(record.id, wave.index, WaveState.DEPLOYING, f"deploying to {len(wave.hosts)} host(s)",
                               hosts=(HostState.DEPLOYING, [h.host for h in wave.hosts]),
                               rollout=RolloutState.RUNNING, audit=lambda after: [wave_started(after, wave.index)])
        return True

    def complete(self, record: RolloutRecord) -> None:
        """Every wave is done: the rollout is complete (naming the hosts rolled back on their own)."""
        back = record.rolled_back_hosts()
        total = sum(len(w.hosts) for w in record.waves)
        extra = f"{failed_hosts(len(back))} rolled back: {', '.join(back)}"
        self.end(record, RolloutState.COMPLETE, f"every wave done; {extra}" if back else "every wave done",
                 len(record.waves))
        self.emit(record, 0, "complete", True, f"{record.build_ref} runs on {total - len(back)} of {total} production "
                  f"host(s); {extra}" if back else f"{record.build_ref} runs on every production host")

    def finish_abort(self, record: RolloutRecord, wave: WaveRecord, build: Build) -> None:
        """Roll back the current wave if it changed anything, cancel the waves after it, end the rollout."""
        if wave.state not in (WaveState.PLANNED, WaveState.ROLLED_BACK, WaveState.ROLLBACK_FAILED):
            self.roll_back(record, wave, build, WHY_ABORTED)
            wave = self.rollouts.get(record.id).wave(wave.index)
        failed = wave.state is WaveState.ROLLBACK_FAILED
        self.end(record, RolloutState.FAILED if failed else RolloutState.ABORTED,
                 f"aborted by the operator during wave {wave.index} ({wave.name}); {wave.detail}",
                 wave.index - 1 if wave.state is WaveState.PLANNED else wave.index)
        self.emit(record, wave.index, "abort", not failed, f"rollout {record.id} aborted in wave {wave.index}; "
                  "the waves done before it stay as they are")

    def wait_for(self, record: RolloutRecord, wave: WaveRecord, wait: bool) -> bool:
        """Whether ``wave`` may start now: its pause is over (slept through when ``wait``) and the
        stage's maintenance window is open. A closed window is recorded (the rollout waits for
        it, naming the next open window; ``resume`` then continues) and never slept through."""
        if wave.resume_at is not None:
            remaining = (datetime.fromisoformat(wave.resume_at) - datetime.now(UTC)).total_seconds()
            if remaining > 0 and not wait:
                self.rollouts.set_rollout(record.id, RolloutState.PAUSED)
                return False
            if remaining > 0:
                self.emit(record, wave.index, "pause", True, f"pausing {remaining:.0f}s before wave {wave.index} "
                          f"(until {wave.resume_at})")
                self.sleep(remaining)
        closed = self.window_closed()
        if closed is None:
            return True
        detail = f"wave {wave.index} ({wave.name}) may not start: {closed}"
        self.rollouts.set_rollout(record.id, RolloutState.WAITING_WINDOW, detail,
                                  audit=lambda after: [window_closed(after, wave.index, closed)])
        self.emit(record, wave.index, "window", False, detail)
        return False

    def window_closed(self) -> str | None:
        """Why the rollout's stage is closed now (with its next open window), or None when it is open."""
        stage = self.config.agreement.stage(self.settings.stage)
        if stage is None:
            return None
        clause, _ = window_clause(stage, self.clock())
        return clause.detail if clause.outcome is ClauseOutcome.NOT_MET else None

    # --- steps -------------------------------------------------------------------------------

    def deploy(self, record: RolloutRecord, wave: WaveRecord, build: Build) -> None:
        """Deploy the wave in shards of ``forks`` hosts, one playbook run each, streamed: the health
        suite of a shard's deployed hosts runs while the next shard deploys. Each host's deploy and
        health are recorded as they are known; after a crash, hosts still ``deploying`` are deployed
        again (the install is idempotent) and deployed ones not yet judged are checked. The shards
        run here or on zone workers, as the executor says (``lab.rollout.dispatch``). As soon as the
        failures recorded breach the wave's threshold no further shard starts (``WaveWatch``): the
        wave is halted there, its hosts never reached cancelled."""
        watch = WaveWatch(wave)
        if not watch.breached:  # (breached already: a controller died between the breach and the halt)
            names = [h.host for h in wave.hosts if h.state is HostState.DEPLOYING]
            unjudged = [h.host for h in wave.hosts if h.state is HostState.DEPLOYED]
            self.emit(record, wave.index, "deploy", True, f"deploying to {len(names)} host(s) in shards of at most "
                      f"{self.settings.forks}: {', '.join(names)}", len(wave.hosts))
            tasks = ShardPlanner(self.config, self.settings, self.executor, self.store,
                                 lambda host: self.previous_vars(record, wave, host), record, wave,
                                 build).tasks(names, unjudged) if self.executor.remote else []
            self.executor.run(tasks, lambda: self.deploy_here(record, wave, build, names, unjudged, watch),
                              lambda task, outcome: self.record_shard(record, wave, build, task, outcome, watch))
        after = self.rollouts.get(record.id).wave(wave.index)
        if watch.breached:
            self.halt(record, after, watch.untouched)
            return
        deployed = sum(1 for h in after.hosts if h.state not in (HostState.DEPLOYING, HostState.DEPLOY_FAILED))
        self.rollouts.set_wave(record.id, wave.index, WaveState.VERIFYING,
                               f"deployed to {deployed} of {len(after.hosts)}")
        self.emit(record, wave.index, "deploy", deployed == len(after.hosts),
                  f"deployed to {deployed} of {len(after.hosts)}")

    def deploy_here(self, record: RolloutRecord, wave: WaveRecord, build: Build, names: list[str],
                    unjudged: list[str], watch: WaveWatch) -> None:
        """The wave's shards in this process: deployed one after another, each shard's health
        checked in threads while the next deploys, until the failures breach the threshold."""
        product = self.config.products[build.product]
        extravars = {"lab_artifact": str(build.artifact), "lab_digest": build.digest,
                     "lab_product": build.product, "lab_version": build.version,
                     "lab_rollout": f"rollout={record.id} wave={wave.index}"}
        planned = shards(names, self.settings.forks)
        with HealthStream(self, record, wave, watch) as health:
            health.check(unjudged)
            for index, shard in enumerate(planned):
                if watch.breached:
                    watch.untouched += [host for rest in planned[index:] for host in rest]
                    health.cancel_queued()
                    break
                scope = replace(wave, hosts=tuple(h for h in wave.hosts if h.host in shard))
                outcome = self.playbook(record, scope, product.deploy_playbook, "deploy", extravars)
                for host in shard:
                    self.record_deploy(record, build, host, outcome.host_ok(host), outcome.detail(host), watch)
                health.check([host for host in shard if outcome.host_ok(host)])

    def record_deploy(self, record: RolloutRecord, build: Build, host: str, ok: bool, detail: str,
                      watch: WaveWatch) -> None:
        """One host's deploy recorded: deployed (with the build's digest) or failed."""
        state = HostState.DEPLOYED if ok else HostState.DEPLOY_FAILED
        self.rollouts.set_host(record.id, host, state, detail, deployed_digest=build.digest if ok else None)
        watch.saw(host, state)

    def record_shard(self, record: RolloutRecord, wave: WaveRecord, build: Build, task: Task,
                     outcome: Outcome, watch: WaveWatch) -> None:
        """A shard's outcome from a worker, recorded as ``deploy_here`` records its own: each host's
        deploy, then its health; InfrastructureError (wave left as it is, for ``resume``) when its
        playbook reached none of its hosts. A shard a halt stopped before it began changed no host
        (they are left for the halt to cancel). The first outcome that breaches the threshold halts
        the rest of the wave's shards on the workers."""
        if outcome.get("halted"):
            watch.untouched += [str(h) for h in task.payload["deploy"]]
            finished(self.store, task)
            return
        if "infrastructure" in outcome:
            self.unreached(record, wave, "deploy", str(outcome["infrastructure"]))
        was_breached = watch.breached
        for host, item in outcome["deployed"].items():
            self.record_deploy(record, build, host, bool(item["ok"]), str(item["detail"]), watch)
        for health in health_of(outcome):
            self.record_health(record, wave, health, watch)
        finished(self.store, task)
        if watch.breached and not was_breached:
            self.executor.halt(record.id)

    def playbook(self, record: RolloutRecord, wave: WaveRecord, path: Any, step: str,
                 extravars: dict[str, Any]) -> PlaybookOutcome:
        """Run ``path`` once over the wave's hosts; InfrastructureError (wave left as it is, for
        ``resume``) when Ansible could not run, timed out, or reached none of them (all unreachable)."""
        hosts = {h.host: endpoint(self.config, h.host) for h in wave.hosts}
        host_vars = {name: {**item.facts, **self.previous_vars(record, wave, name)} for name, item in hosts.items()}
        try:
            outcome = run_playbook_on(path, inventory=self.config.inventory.sources, ansible=self.config.ansible,
                                      hosts=list(hosts),
                                      extravars=extravars, host_vars=host_vars,
                                      work_dir=self.config.state_dir / "runs" / record.id / f"wave-{wave.index}",
                                      timeout=self.config.timeouts.playbook, forks=self.settings.forks)
        except InfrastructureError as exc:
            self.rollouts.set_wave(record.id, wave.index, wave.state, f"{step}: {exc}")
            raise
        detail = unreached(outcome, list(hosts))
        if detail is not None:
            self.unreached(record, wave, step, detail)
        return outcome

    def unreached(self, record: RolloutRecord, wave: WaveRecord, step: str, detail: str) -> NoReturn:
        """A ``step`` that reached none of its hosts: said in the wave's detail (the wave left as it is,
        for ``resume``), and raised as InfrastructureError."""
        self.rollouts.set_wave(record.id, wave.index, wave.state, f"{step}: {detail}")
        raise InfrastructureError(f"rollout {record.id}, wave {wave.index}: {detail}; fix it, then `lab rollout "
                                  f"resume {record.build_ref}` (or `lab rollout abort`)")

    def previous_vars(self, record: RolloutRecord, wave: WaveRecord, host: str) -> dict[str, Any]:
        """The build ``host`` ran before (for rollback variants that reinstall it)."""
        previous = next((h.previous for h in wave.hosts if h.host == host), None)
        if not previous:
            return {}
        found = {"lab_previous_version": previous["version"], "lab_previous_digest": previous["digest"]}
        spec = self.store.build(record.product, previous["version"])
        if spec is not None and spec.digest == previous["digest"]:
            found["lab_previous_artifact"] = str(spec.artifact)
        return found

    def verify(self, record: RolloutRecord, wave: WaveRecord) -> WaveRecord:
        """The health suite on every deployed host of the wave not judged yet; each result recorded."""
        self.run_health([endpoint(self.config, h.host) for h in wave.hosts if h.state is HostState.DEPLOYED],
                        lambda health: self.record_health(record, wave, health))
        return self.rollouts.get(record.id).wave(wave.index)

    def record_health(self, record: RolloutRecord, wave: WaveRecord, health: HostHealth,
                      watch: WaveWatch | None = None) -> None:
        """A deployed host judged: healthy or unhealthy, with the failing checks (told to ``watch``)."""
        state = HostState.HEALTHY if health.healthy else HostState.UNHEALTHY
        self.rollouts.set_host(record.id, health.host, state, health.detail(), health=health.summary())
        if watch is not None:
            watch.saw(health.host, state)
        self.emit(record, wave.index, "host", health.healthy, f"{health.host} {health.detail()}")

    def run_health(self, items: list[Endpoint], each: Callable[[HostHealth], None]) -> None:
        self.check_health(items, self.settings.forks, each)

    def check_health(self, items: list[Endpoint], workers: int, each: Callable[[HostHealth], None]) -> list[HostHealth]:
        """The health suite on ``items``, up to ``workers`` hosts at once (``check_hosts``): the one
        place this process runs it, as ``playbook`` is the one place it runs Ansible (the
        orchestration benchmark's dry runner replaces both, in a subclass of its own)."""
        return check_hosts(items, self.config.suites[self.settings.health_suite], self.config.timeouts.suite,
                           workers, each)

    def judge(self, record: RolloutRecord, wave: WaveRecord) -> None:
        """Halted when the wave's failures exceed its threshold; otherwise its failed hosts (if any) are
        to be rolled back on their own, or it is done."""
        failed = [h.host for h in wave.hosts if h.state in FAILED_HOST]
        plan = wave.plan()
        summary = f"{len(wave.hosts) - len(failed)} of {len(wave.hosts)} host(s) healthy; {plan.threshold()}"
        if plan.breached(len(failed)):
            self.halt(record, wave, [])
        elif failed:
            self.rollouts.set_wave(record.id, wave.index, WaveState.ROLLING_BACK_HOSTS,
                                   f"{summary}; rolling back {failed_hosts(len(failed))}: {', '.join(failed)}",
                                   hosts=(HostState.ROLLING_BACK, failed))
            self.emit(record, wave.index, "rollback", True, f"{summary}: rolling back {failed_hosts(len(failed))} "
                      f"individually with {self.settings.rollback_playbook.name}: {', '.join(failed)}")
        else:
            self.finish_wave(record, wave)

    def halt(self, record: RolloutRecord, wave: WaveRecord, untouched: list[str]) -> None:
        """Record the wave halted over its threshold, its ``untouched`` hosts (shards that never
        started) cancelled and the later waves cancelled, in one transaction; stop its tasks."""
        failed = [h.host for h in wave.hosts if h.state in FAILED_HOST]
        healthy = sum(1 for h in wave.hosts if h.state is HostState.HEALTHY)
        unchecked = sum(1 for h in wave.hosts if h.state in (HostState.DEPLOYING, HostState.DEPLOYED)
                        and h.host not in untouched)
        parts = [f"{healthy} of {len(wave.hosts)} host(s) healthy", wave.plan().threshold()]
        if untouched:
            parts.append(f"{len(untouched)} host(s) not deployed: the wave stopped at the breach")
        if unchecked:
            parts.append(f"{unchecked} host(s) touched but not judged")
        detail = f"{len(failed)} host(s) failed ({', '.join(failed)}): {'; '.join(parts)}"
        self.rollouts.set_wave(record.id, wave.index, WaveState.HALTED, detail, cancel_later=True,
                               hosts=(HostState.CANCELLED, untouched) if untouched else None,
                               audit=lambda after: [wave_halted(after, wave.index, failed)])
        self.executor.halt(record.id)
        self.emit(record, wave.index, "halt", False, f"HALTED: {detail}; later waves are not touched")

    def finish_wave(self, record: RolloutRecord, wave: WaveRecord) -> None:
        """Record the wave done (its failed hosts, if any, rolled back on their own), then its pause."""
        back = [h.host for h in wave.hosts if h.state is HostState.ROLLED_BACK]
        healthy, total = sum(1 for h in wave.hosts if h.state is HostState.HEALTHY), len(wave.hosts)
        extra = f"{failed_hosts(len(back))} rolled back: {', '.join(back)}"
        playbook = self.settings.rollback_playbook.name

        def audit(after: RolloutRecord) -> list[Note]:
            restored = [rolled_back(after, wave.index, back, WHY_HOSTS, playbook)] if back else []
            return [*restored, wave_done(after, wave.index)]

        summary = f"{healthy} of {total} host(s) healthy; {wave.plan().threshold()}"
        pause = wave.pause_seconds if wave.index < len(record.waves) else 0
        resume_at = (datetime.now(UTC) + timedelta(seconds=pause)).isoformat(timespec="seconds") if pause else None
        self.rollouts.set_wave(record.id, wave.index, WaveState.DONE, f"{summary}; {extra}" if back else summary,
                               audit=audit, next_resume_at=resume_at,
                               rollout=RolloutState.PAUSED if resume_at else None)
        self.emit(record, wave.index, "done", True, f"done: {healthy}/{total} healthy, {extra}" if back
                  else f"done: {healthy}/{total} healthy")

    def roll_back_hosts(self, record: RolloutRecord, wave: WaveRecord, build: Build) -> None:
        """Roll back the failed hosts of a wave within its threshold (one rollback run limited to them),
        verify each; the wave is done when every one is healthy again, else the rollout stops there."""
        todo = [h for h in wave.hosts if h.state is HostState.ROLLING_BACK]
        self.restore(record, replace(wave, hosts=tuple(todo)), build,
                     {h.host: f"failed ({h.detail[:400]}), rolled back on its own" for h in todo})
        after = self.rollouts.get(record.id).wave(wave.index)
        back = [h.host for h in after.hosts if h.state in RESTORED]
        failed = [h.host for h in after.hosts if h.state is HostState.ROLLBACK_FAILED]
        if not failed:
            self.finish_wave(record, after)
            return
        detail = f"{wave.detail}; the rollback left {len(failed)} host(s) unhealthy: {', '.join(failed)}"
        playbook = self.settings.rollback_playbook.name
        self.rollouts.set_wave(record.id, wave.index, WaveState.ROLLBACK_FAILED, detail,
                               audit=lambda after: [rolled_back(after, wave.index, back, WHY_HOSTS, playbook)])
        self.emit(record, wave.index, "rollback", False, f"the rollback left {len(failed)} host(s) unhealthy: "
                  f"{', '.join(failed)}; the rollout stops here")

    def roll_back(self, record: RolloutRecord, wave: WaveRecord, build: Build, why: str) -> None:
        """Roll the wave's touched hosts back (one rollback run), verify them, record the outcome. Resumed
        (the wave already rolling back), the hosts whose rollback was recorded are not rolled back again."""
        touched = [h for h in wave.hosts if h.state not in (HostState.PLANNED, HostState.CANCELLED)]
        names = [h.host for h in touched]
        resumed = wave.state is WaveState.ROLLING_BACK
        todo = [h for h in touched if not (resumed and h.state in RESTORED)]
        self.rollouts.set_wave(record.id, wave.index, WaveState.ROLLING_BACK, None,
                               hosts=(HostState.ROLLING_BACK, [h.host for h in todo]))
        self.emit(record, wave.index, "rollback", True, f"rolling back {len(todo)} host(s) with "
                  f"{self.settings.rollback_playbook.name}")
        self.restore(record, replace(wave, state=WaveState.ROLLING_BACK, hosts=tuple(todo)), build, {})
        after = self.rollouts.get(record.id).wave(wave.index)
        failed = [h.host for h in after.hosts if h.state is HostState.ROLLBACK_FAILED]
        state = WaveState.ROLLBACK_FAILED if failed else WaveState.ROLLED_BACK
        detail = (f"rollback left {len(failed)} host(s) unhealthy: {', '.join(failed)}" if failed
                  else f"rolled back {len(touched)} host(s); every one verified")
        playbook = self.settings.rollback_playbook.name
        self.rollouts.set_wave(record.id, wave.index, state, f"{wave.detail}; {detail}" if wave.detail else detail,
                               audit=lambda after: [rolled_back(after, wave.index, names, why, playbook)])
        self.emit(record, wave.index, "rollback", not failed, detail)

    def restore(self, record: RolloutRecord, scope: WaveRecord, build: Build, reasons: dict[str, str]) -> None:
        """One rollback run over the hosts of ``scope`` (each host's restore point put back), then the
        health suite on each that ran an earlier build; each host recorded rolled back or rollback
        failed, its detail led by ``reasons[host]`` when given. On zone workers the rollback and its
        checks run there, in ``rollout-rollback`` tasks (``lab.rollout.dispatch``), as the deploys did."""
        if not scope.hosts:
            return
        extravars = {"lab_product": build.product, "lab_version": build.version, "lab_digest": record.digest,
                     "lab_artifact": str(build.artifact), "lab_rollout": f"rollout={record.id} wave={scope.index}"}
        previous = {h.host: h.previous for h in scope.hosts}

        def why(host: str, text: str) -> str:
            return f"{reasons[host]}; {text}" if host in reasons else text

        def rolled(host: str, ok: bool, detail: str) -> bool:
            """The rollback of ``host`` recorded; whether its health is to be checked."""
            if not ok:
                self.rollouts.set_host(record.id, host, HostState.ROLLBACK_FAILED, why(host, detail))
            elif previous[host] is None:
                self.rollouts.set_host(record.id, host, HostState.ROLLED_BACK, why(
                    host, f"{build.product} removed: the host ran no earlier build of it through lab, so "
                    "there is nothing to verify"))
            return ok and previous[host] is not None

        def recorded(health: HostHealth) -> None:
            state = HostState.ROLLED_BACK if health.healthy else HostState.ROLLBACK_FAILED
            back = f"back on {(previous[health.host] or {}).get('version')}: {health.detail()}"
            before = next((h.health for h in scope.hosts if h.host == health.host and h.health), None)
            kept = health.summary() | ({"before_rollback": before} if before else {})  # why it was rolled back
            self.rollouts.set_host(record.id, health.host, state, why(health.host, back), health=kept)
            self.emit(record, scope.index, "restored", health.healthy, f"{health.host} {back}")

        if self.executor.remote:
            self.restore_on_workers(record, scope, build, rolled, recorded)
            return
        outcome = self.playbook(record, scope, self.settings.rollback_playbook, "rollback", extravars)
        self.run_health([endpoint(self.config, h.host) for h in scope.hosts
                         if rolled(h.host, outcome.host_ok(h.host), outcome.detail(h.host))], recorded)

    def restore_on_workers(self, record: RolloutRecord, scope: WaveRecord, build: Build,
                           rolled: Callable[[str, bool, str], bool], recorded: Callable[[HostHealth], None]) -> None:
        """``restore`` through the zone workers: each task's hosts recorded as its outcome arrives;
        InfrastructureError (the wave left as it is, for ``resume``) when one reached none of its hosts."""
        names = [h.host for h in scope.hosts]
        check = [h.host for h in scope.hosts if h.previous is not None]
        tasks = ShardPlanner(self.config, self.settings, self.executor, self.store,
                             lambda host: self.previous_vars(record, scope, host), record, scope,
                             build).rollbacks(names, check)

        def each(task: Task, outcome: Outcome) -> None:
            if "infrastructure" in outcome:
                self.unreached(record, scope, "rollback", str(outcome["infrastructure"]))
            for host, item in outcome["rolled_back"].items():
                rolled(host, bool(item["ok"]), str(item["detail"]))
            for health in health_of(outcome):
                recorded(health)
            finished(self.store, task)

        self.executor.run(tasks, lambda: None, each)

    def emit(self, record: RolloutRecord, wave: int, what: str, ok: bool, detail: str, hosts: int = 0) -> None:
        self.events(RolloutEvent(record.id, wave, len(record.waves), what, ok, detail, hosts))


def ignore(health: HostHealth) -> None:
    """Nothing to do as a single host's check ends: ``HealthStream`` records it in the caller's thread."""


def shards(hosts: list[str], size: int) -> list[list[str]]:
    """``hosts`` in order, in consecutive shards of at most ``size``."""
    step = max(1, size)
    return [hosts[i:i + step] for i in range(0, len(hosts), step)]


class HealthStream:
    """The health suite on deployed hosts in the background while the next shard deploys; each host's
    health is recorded in the caller's thread (as it deploys on, and at the end), never lost on the way
    out: leaving the block waits for every check and records it, also when a deploy raised."""

    def __init__(self, runner: RolloutRunner, record: RolloutRecord, wave: WaveRecord, watch: WaveWatch) -> None:
        self.runner = runner
        self.record = record
        self.wave = wave
        self.watch = watch
        self.pool = ThreadPoolExecutor(max_workers=max(1, runner.settings.forks), thread_name_prefix="health")
        self.running: list[Future[list[HostHealth]]] = []

    def __enter__(self) -> HealthStream:
        return self

    def check(self, hosts: list[str]) -> None:
        """Start the health suite on ``hosts``; record the checks that have ended meanwhile."""
        self.running += [self.pool.submit(self.runner.check_health, [endpoint(self.runner.config, h)], 1, ignore)
                         for h in hosts]
        self.record_ended(wait=False)

    def record_ended(self, wait: bool) -> None:
        for future in list(self.running):
            if wait or future.done():
                self.running.remove(future)
                for health in future.result():
                    self.runner.record_health(self.record, self.wave, health, self.watch)

    def cancel_queued(self) -> None:
        """Drop the checks that have not started (the wave halted: its deployed hosts are rolled back
        unjudged); record those that have ended."""
        self.running = [future for future in self.running if not future.cancel()]
        self.record_ended(wait=False)

    def __exit__(self, *exc: object) -> None:
        try:
            self.record_ended(wait=True)
        finally:
            self.pool.shutdown(wait=True)


class WaveWatch:
    """A wave's failed hosts as they are recorded while it deploys, and the hosts it never got to.
    Failures only grow, so a threshold breached mid-wave is breached at its end too: the deploy
    stops at the breach instead of deploying (and then rolling back) the rest of the wave."""

    def __init__(self, wave: WaveRecord) -> None:
        self.plan = wave.plan()
        self.failed = {h.host for h in wave.hosts if h.state in FAILED_HOST}
        self.untouched: list[str] = []  # hosts of shards that never started

    def saw(self, host: str, state: HostState) -> None:
        """``host`` was recorded in ``state``."""
        if state in FAILED_HOST:
            self.failed.add(host)

    @property
    def breached(self) -> bool:
        return self.plan.breached(len(self.failed))


def failed_hosts(count: int) -> str:
    """``1 failed host``, ``2 failed hosts``."""
    return f"{count} failed host{'' if count == 1 else 's'}"


def outcome_code(record: RolloutRecord) -> int:
    """The CLI's exit code for a rollout as it stands: 0 complete (or paused / aborted cleanly),
    1 halted (a wave's gate said no) or waiting for the maintenance window, 3 a rollback that
    left hosts unhealthy."""
    if record.state is RolloutState.FAILED:
        return 3
    if record.state in (RolloutState.HALTED, RolloutState.WAITING_WINDOW):
        return 1
    return 0
