"""The rollout's state machine with Ansible and the health suite replaced by stand-ins: pauses,
thresholds by share, failed hosts within a threshold rolled back on their own, an infrastructure
error left resumable, and what is recorded (and audited) at each step.
(tests/integration/test_rollout.py runs the real thing.)"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from lab.ansible.playbook import HostOutcome, PlaybookOutcome
from lab.ansible.settings import AnsibleSettings
from lab.config.labfile import load_lab
from lab.config.rollout_plan import load_rollout_settings
from lab.decision.records import record_promotion
from lab.errors import GateBlocked, InfrastructureError
from lab.evidence import audit
from lab.evidence.store import Store
from lab.executors.base import ROLLBACK
from lab.executors.codec import result_to_json
from lab.executors.dispatches import Dispatches
from lab.model import Build, Campaign, CampaignState, Result, Status, Suite
from lab.rollout.endpoints import Endpoint, marker
from lab.rollout.engine import RolloutRunner, outcome_code
from lab.rollout.health import HostHealth
from lab.rollout.records import HostState, RolloutState, RolloutStore, WaveState
from tests.support.labfiles import copy_default_lab, set_rollout

OPEN = datetime(2026, 12, 4, 17, tzinfo=UTC)  # Friday 19:00 in Trondheim: production's window is open
CLOSED = datetime(2026, 12, 4, 10, tzinfo=UTC)  # Friday 12:00 in Trondheim: closed until 18:00


class Production:
    """Stand-ins for the playbook runs and health checks, recording every call."""

    def __init__(self, unhealthy: Iterable[str] = (), unreachable: dict[str, int] | None = None,
                 rollback_fails: Iterable[str] = (), deploy_fails: Iterable[str] = (),
                 dark: dict[str, int] | None = None) -> None:
        self.unhealthy = set(unhealthy)
        self.unreachable = dict(unreachable or {})  # playbook name -> how many of its runs reach no host
        self.dark = dict(dark or {})  # playbook name -> how many of its runs find every host unreachable
        self.rollback_fails = set(rollback_fails)
        self.deploy_fails = set(deploy_fails)
        self.runs: list[tuple[str, tuple[str, ...]]] = []
        self.checked: list[str] = []

    def run_playbook_on(self, playbook: Path, *, inventory: Sequence[Path], ansible: AnsibleSettings,
                        hosts: Sequence[str], extravars: dict[str, Any],
                        host_vars: dict[str, dict[str, Any]], work_dir: Path, timeout: float,
                        forks: int | None = None) -> PlaybookOutcome:
        self.runs.append((playbook.stem, tuple(hosts)))
        if self.unreachable.get(playbook.stem, 0) > 0:
            self.unreachable[playbook.stem] -= 1
            return PlaybookOutcome(str(playbook), "failed", 4, {})
        if self.dark.get(playbook.stem, 0) > 0:
            self.dark[playbook.stem] -= 1
            return PlaybookOutcome(str(playbook), "failed", 4, {h: HostOutcome(h, False, True, ("Connection refused",),
                                                                               0, True) for h in hosts})
        failing = {"rollback": self.rollback_fails, "deploy": self.deploy_fails}.get(playbook.stem, set())
        # As Ansible reports it: one failing host fails the run; every host still ends in its stats.
        return PlaybookOutcome(str(playbook), "failed" if failing & set(hosts) else "successful", 2 * bool(failing),
                               {h: HostOutcome(h, h not in failing, False, ("task failed",) if h in failing else (),
                                               1, True) for h in hosts})

    def check_hosts(self, items: Iterable[Endpoint], suite: Suite, cap: float, workers: int,
                    each: Callable[[HostHealth], None]) -> list[HostHealth]:
        found = []
        for item in items:
            self.checked.append(item.name)
            status = Status.FAIL if item.name in self.unhealthy else Status.PASS
            health = HostHealth(item.name, suite.name, (Result("plans-a-route", status, "", {}, 1),))
            each(health)
            found.append(health)
        return found


def setup(tmp_path: Path, waves: str, production: Production, monkeypatch: pytest.MonkeyPatch,
          sleeps: list[float] | None = None, clock: list[datetime] | None = None, forks: int = 64,
          ) -> tuple[RolloutRunner, Build, RolloutStore]:
    """A rollout runner over the default lab's 24 production hosts with fake deploys and health;
    its clock is ``clock[0]`` (default: a time production's maintenance window is open). With the
    default ``forks`` every wave is one shard: one deploy run."""
    clock = clock if clock is not None else [OPEN]
    lab_yml = copy_default_lab(tmp_path / "lab", sandboxes=1)
    set_rollout(lab_yml.parent, f"rollout:\n  group: production\n  health_suite: production-health\n  forks: {forks}\n"
                "  waves:\n" + waves)
    config = load_lab(lab_yml)
    settings = load_rollout_settings(config)
    for host in settings.hosts:  # provisioned, as far as the rollout can tell
        facts = config.state_dir / "production" / host / "facts.json"
        facts.parent.mkdir(parents=True)
        facts.write_text(json.dumps({"lab_port": 1}))
        marker(config, host).parent.mkdir(parents=True, exist_ok=True)
        marker(config, host).write_text(json.dumps({"provisioned_at": 0}))
    store = Store(config.state_dir / "lab.sqlite3")
    artifact = tmp_path / "a.tar.gz"
    artifact.write_bytes(b"A")
    build = store.register_build("care-planner", "2.0.0", "d" * 64, artifact)
    record_promotion(store, Campaign("c", build.product, build.version, build.digest, CampaignState.FINISHED, "t",
                                    "t", (), (), "lab.yml"), "production", {})
    monkeypatch.setattr("lab.rollout.engine.run_playbook_on", production.run_playbook_on)
    monkeypatch.setattr("lab.rollout.engine.check_hosts", production.check_hosts)
    sleep: Callable[[float], None] = sleeps.append if sleeps is not None else (lambda seconds: None)
    runner = RolloutRunner(config, store, settings, sleep=sleep, clock=lambda: clock[0])
    return runner, build, RolloutStore(store)


def test_a_pause_stops_the_rollout_without_waiting_and_resume_waits_it_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    production, sleeps = Production(), []
    runner, build, rollouts = setup(tmp_path, "    - {hosts: 1, pause: 2h}\n    - {hosts: 100%}\n", production,
                                    monkeypatch, sleeps)
    record = runner.start(build, wait=False)
    assert record.state is RolloutState.PAUSED
    assert [w.state for w in record.waves] == [WaveState.DONE, WaveState.PLANNED]
    resume_at = datetime.fromisoformat(str(record.waves[1].resume_at))
    assert 7190 < (resume_at - datetime.now(UTC)).total_seconds() <= 7200
    assert runner.resume(build, wait=False).state is RolloutState.PAUSED  # not before its time
    assert production.runs == [("deploy", ("prod-ts-01",))]
    done = runner.resume(build, wait=True)
    assert done.state is RolloutState.COMPLETE and len(sleeps) == 1 and 7180 < sleeps[0] <= 7200
    assert [len(hosts) for _, hosts in production.runs] == [1, 23]  # one deploy run per wave (forks 64)
    assert rollouts.last_good("care-planner", "prod-ts-24") == {"version": "2.0.0", "digest": "d" * 64}


def test_a_share_threshold_halts_only_above_it_and_rolls_back_only_that_wave(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    production = Production(unhealthy={"prod-ts-02", "prod-ts-05", "prod-ts-06", "prod-ts-07"})
    runner, build, _ = setup(tmp_path, "    - {hosts: 4, max_failure_rate: 0.25}\n"
                                       "    - {hosts: 50%, max_failure_rate: 0.25}\n    - {hosts: 100%}\n",
                             production, monkeypatch)
    record = runner.start(build)
    assert record.state is RolloutState.HALTED
    assert [w.state for w in record.waves] == [WaveState.DONE, WaveState.ROLLED_BACK, WaveState.CANCELLED]
    assert "3 host(s) failed (prod-ts-05, prod-ts-06, prod-ts-07): 5 of 8 host(s) healthy; at most 25% of 8" \
        in record.detail
    wave2 = tuple(f"prod-ts-{i:02d}" for i in range(5, 13))
    assert production.runs == [("deploy", ("prod-ts-01", "prod-ts-02", "prod-ts-03", "prod-ts-04")),
                               ("rollback", ("prod-ts-02",)), ("deploy", wave2), ("rollback", wave2)]
    # 1 of 4 is not above 25%: the wave went on once its failed host was rolled back on its own
    assert record.waves[0].hosts[1].state is HostState.ROLLED_BACK
    assert {h.state for h in record.waves[2].hosts} == {HostState.CANCELLED}
    assert sorted(production.checked) == [f"prod-ts-{i:02d}" for i in range(1, 13)]  # no later host


def test_an_infrastructure_error_leaves_the_wave_to_resume(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    production = Production(unreachable={"deploy": 1})
    runner, build, rollouts = setup(tmp_path, "    - {hosts: 100%}\n", production, monkeypatch)
    with pytest.raises(InfrastructureError, match=re.escape("wave 1: deploy.yml ended failed (rc 4) without reaching")):
        runner.start(build)
    stuck = rollouts.latest("care-planner")
    assert stuck is not None and stuck.state is RolloutState.RUNNING
    assert stuck.waves[0].state is WaveState.DEPLOYING and "deploy: deploy.yml ended failed" in stuck.waves[0].detail
    assert runner.resume(build).state is RolloutState.COMPLETE
    assert len(production.runs) == 2


def test_failed_hosts_within_the_threshold_are_rolled_back_on_their_own_and_the_next_wave_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    production = Production(unhealthy={"prod-ts-03"})
    runner, build, _ = setup(tmp_path, "    - {hosts: 1}\n    - {hosts: 50%, max_failures: 1}\n    - {hosts: 100%}\n",
                             production, monkeypatch)
    record = runner.start(build)
    assert record.state is RolloutState.COMPLETE and outcome_code(record) == 0
    assert record.detail == "every wave done; 1 failed host rolled back: prod-ts-03"
    wave2 = tuple(f"prod-ts-{i:02d}" for i in range(2, 13))
    assert production.runs == [("deploy", ("prod-ts-01",)), ("deploy", wave2), ("rollback", ("prod-ts-03",)),
                               ("deploy", tuple(f"prod-ts-{i:02d}" for i in range(13, 25)))]
    assert [w.state for w in record.waves] == [WaveState.DONE] * 3
    assert record.waves[1].detail == ("10 of 11 host(s) healthy; at most 1 of 11 host(s) may fail; "
                                      "1 failed host rolled back: prod-ts-03")
    host = record.waves[1].hosts[1]
    assert (host.host, host.state) == ("prod-ts-03", HostState.ROLLED_BACK)
    assert host.detail == ("failed (unhealthy: plans-a-route fail: ), rolled back on its own; care-planner removed: "
                           "the host ran no earlier build of it through lab, so there is nothing to verify")
    assert record.rolled_back_hosts() == ["prod-ts-03"]
    promoted, *entries = audit.entries(runner.store)  # setup's promotion, then the rollout's own
    assert (promoted.kind, promoted.subject) == ("promotion", "care-planner@2.0.0 -> production")
    assert [(e.kind, e.subject.split(" rollout ")[1].partition(" ")[2]) for e in entries] == [
        ("rollout-start", ""), ("rollout-wave-start", "wave 1 (wave-1)"), ("rollout-wave-done", "wave 1 (wave-1)"),
        ("rollout-wave-start", "wave 2 (wave-2)"), ("rollout-rollback", "wave 2 (wave-2)"),
        ("rollout-wave-done", "wave 2 (wave-2)"), ("rollout-wave-start", "wave 3 (wave-3)"),
        ("rollout-wave-done", "wave 3 (wave-3)"), ("rollout-complete", "")]
    rollback, done, complete = entries[4].data(), entries[5].data(), entries[8].data()
    assert (rollback["hosts"], rollback["rolled_back"], rollback["failed"], rollback["outcome"], rollback["why"]) == (
        ["prod-ts-03"], ["prod-ts-03"], [], "rolled back", "these hosts failed after the deploy, within the wave's "
        "threshold")
    assert (done["hosts"], done["checks"], done["rolled_back"]) == ({"healthy": 10, "rolled_back": 1}, {"pass": 10},
                                                                    ["prod-ts-03"])
    assert (complete["state"], complete["rolled_back_hosts"]) == ("complete", ["prod-ts-03"])
    assert audit.verify(runner.store).ok


def test_a_failed_host_whose_rollback_fails_stops_the_rollout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    production = Production(unhealthy={"prod-ts-03"}, rollback_fails={"prod-ts-03"})
    runner, build, _ = setup(tmp_path, "    - {hosts: 50%, max_failures: 1}\n    - {hosts: 100%}\n", production,
                             monkeypatch)
    record = runner.start(build)
    assert record.state is RolloutState.FAILED and outcome_code(record) == 3
    assert [w.state for w in record.waves] == [WaveState.ROLLBACK_FAILED, WaveState.CANCELLED]
    assert record.detail == ("halted in wave 1 (wave-1): 11 of 12 host(s) healthy; at most 1 of 12 host(s) may "
                             "fail; rolling back 1 failed host: prod-ts-03; the rollback left 1 host(s) unhealthy: "
                             "prod-ts-03")
    assert production.runs[-1] == ("rollback", ("prod-ts-03",)) and len(production.runs) == 2  # no later host
    assert {h.state for h in record.waves[1].hosts} == {HostState.CANCELLED}
    assert [e.kind for e in audit.entries(runner.store)] == ["promotion", "rollout-start", "rollout-wave-start",
                                                            "rollout-rollback", "rollout-failed"]
    rollback = audit.entries(runner.store, "rollout-rollback")[0].data()
    assert (rollback["outcome"], [f["host"] for f in rollback["failed"]]) == ("rollback failed", ["prod-ts-03"])


def test_a_host_rollback_cut_short_is_finished_by_resume(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    production = Production(unhealthy={"prod-ts-02"}, unreachable={"rollback": 1})
    runner, build, rollouts = setup(tmp_path, "    - {hosts: 4, max_failures: 1}\n    - {hosts: 100%}\n", production,
                                    monkeypatch)
    with pytest.raises(InfrastructureError, match=re.escape("wave 1: rollback.yml ended failed (rc 4) without")):
        runner.start(build)
    stuck = rollouts.latest("care-planner")
    assert stuck is not None and stuck.waves[0].state is WaveState.ROLLING_BACK_HOSTS
    assert [(h.host, h.state) for h in stuck.waves[0].hosts if h.state is not HostState.HEALTHY] == [
        ("prod-ts-02", HostState.ROLLING_BACK)]
    done = runner.resume(build)
    assert done.state is RolloutState.COMPLETE and done.rolled_back_hosts() == ["prod-ts-02"]
    assert production.runs[1:] == [("rollback", ("prod-ts-02",)), ("rollback", ("prod-ts-02",)),
                                   ("deploy", tuple(f"prod-ts-{i:02d}" for i in range(5, 25)))]
    assert [e.kind for e in audit.entries(runner.store)] == [
        "promotion", "rollout-start", "rollout-wave-start", "rollout-resume", "rollout-rollback", "rollout-wave-done",
        "rollout-wave-start", "rollout-wave-done", "rollout-complete"]
    resumed = audit.entries(runner.store, "rollout-resume")[0].data()
    assert (resumed["state"], resumed["wave"], resumed["wave_state"]) == ("running", 1, "rolling_back_hosts")


def test_waves_start_only_in_the_maintenance_window_and_resume_continues_once_it_opens(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    production, clock = Production(), [CLOSED]
    runner, build, rollouts = setup(tmp_path, "    - {hosts: 1}\n    - {hosts: 100%}\n", production, monkeypatch,
                                    clock=clock)
    next_open = "next open window: 2026-12-04 18:00 Europe/Oslo (Fri) (2026-12-04T17:00:00+00:00)"
    with pytest.raises(GateBlocked) as refused:
        runner.start(build)
    assert str(refused.value) == (
        "care-planner@2.0.0 may not be rolled out to production now: closed at 2026-12-04 11:00 Europe/Oslo (Fri) "
        f"(outside weekdays 18:00-06:00 Europe/Oslo; weekends 00:00-24:00 Europe/Oslo); {next_open}")
    assert (rollouts.latest("care-planner"), production.runs) == (None, [])
    assert [e.kind for e in audit.entries(runner.store)] == ["promotion"]  # setup's: the refusal wrote nothing

    clock[0] = OPEN
    checked = production.check_hosts

    def then_the_window_closes(*args: Any, **kwargs: Any) -> list[HostHealth]:
        found = checked(*args, **kwargs)
        clock[0] = CLOSED
        return found

    monkeypatch.setattr("lab.rollout.engine.check_hosts", then_the_window_closes)
    record = runner.start(build)
    assert (record.state, outcome_code(record)) == (RolloutState.WAITING_WINDOW, 1)
    assert record.detail == ("wave 2 (wave-2) may not start: closed at 2026-12-04 11:00 Europe/Oslo (Fri) "
                             "(outside weekdays 18:00-06:00 Europe/Oslo; weekends 00:00-24:00 Europe/Oslo); "
                             f"{next_open}")
    assert [w.state for w in record.waves] == [WaveState.DONE, WaveState.PLANNED]
    assert production.runs == [("deploy", ("prod-ts-01",))]
    closed = audit.entries(runner.store)[-1]
    assert (closed.kind, closed.data()["wave"], closed.data()["detail"].endswith(next_open)) == (
        "rollout-window-closed", 2, True)
    assert runner.resume(build).state is RolloutState.WAITING_WINDOW  # still closed: nothing touched
    assert production.runs == [("deploy", ("prod-ts-01",))]

    clock[0] = OPEN
    monkeypatch.setattr("lab.rollout.engine.check_hosts", checked)
    record = runner.resume(build)
    assert record.state is RolloutState.COMPLETE
    assert production.runs == [("deploy", ("prod-ts-01",)), ("deploy", tuple(f"prod-ts-{i:02d}" for i in range(2, 25)))]
    assert audit.verify(runner.store).ok


def test_one_host_failing_its_deploy_fails_only_that_host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    production = Production(deploy_fails={"prod-ts-02"})
    runner, build, _ = setup(tmp_path, "    - {hosts: 4, max_failures: 1}\n    - {hosts: 100%}\n", production,
                             monkeypatch)
    record = runner.start(build)
    assert record.state is RolloutState.COMPLETE
    assert [(h.host, h.state) for h in record.waves[0].hosts] == [
        ("prod-ts-01", HostState.HEALTHY), ("prod-ts-02", HostState.ROLLED_BACK),
        ("prod-ts-03", HostState.HEALTHY), ("prod-ts-04", HostState.HEALTHY)]
    assert production.runs[:2] == [("deploy", ("prod-ts-01", "prod-ts-02", "prod-ts-03", "prod-ts-04")),
                                   ("rollback", ("prod-ts-02",))]
    assert record.rolled_back_hosts() == ["prod-ts-02"]


def test_a_wave_that_reaches_no_host_stays_resumable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    production = Production(dark={"deploy": 1})
    runner, build, rollouts = setup(tmp_path, "    - {hosts: 2}\n    - {hosts: 100%}\n", production, monkeypatch)
    with pytest.raises(InfrastructureError, match=re.escape("wave 1: deploy.yml: prod-ts-01 unreachable: Connection "
                                                            "refused; fix it, then")):
        runner.start(build)
    stuck = rollouts.latest("care-planner")
    assert stuck is not None and (stuck.state, stuck.waves[0].state) == (RolloutState.RUNNING, WaveState.DEPLOYING)
    assert {h.state for h in stuck.waves[0].hosts} == {HostState.DEPLOYING}
    assert runner.resume(build).state is RolloutState.COMPLETE


class Streamed(Production):
    """Production whose second deploy shard waits until the health suite runs on a host of the first."""

    def __init__(self) -> None:
        super().__init__()
        self.first_checked = threading.Event()
        self.overlapped: list[bool] = []

    def run_playbook_on(self, playbook: Path, *, inventory: Sequence[Path], ansible: AnsibleSettings,
                        hosts: Sequence[str], extravars: dict[str, Any], host_vars: dict[str, dict[str, Any]],
                        work_dir: Path, timeout: float,
                        forks: int | None = None) -> PlaybookOutcome:
        if len(self.runs) == 1:  # the second shard: the first one's hosts are being checked meanwhile
            self.overlapped.append(self.first_checked.wait(timeout=20))
        return super().run_playbook_on(playbook, inventory=inventory, ansible=ansible, hosts=hosts, extravars=extravars,
                                       host_vars=host_vars, work_dir=work_dir, timeout=timeout, forks=forks)

    def check_hosts(self, items: Iterable[Endpoint], suite: Suite, cap: float, workers: int,
                    each: Callable[[HostHealth], None]) -> list[HostHealth]:
        found = super().check_hosts(items, suite, cap, workers, each)
        if any(h.host in self.runs[0][1] for h in found):
            self.first_checked.set()
        return found


def test_a_wave_deploys_in_shards_of_forks_and_checks_a_shard_while_the_next_deploys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    production = Streamed()
    runner, build, _ = setup(tmp_path, "    - hosts: 100%\n      max_failures: 1\n", production, monkeypatch, forks=5)
    production.unhealthy = {"prod-ts-07"}
    record = runner.start(build)
    deploys = [hosts for name, hosts in production.runs if name == "deploy"]
    assert [len(hosts) for hosts in deploys] == [5, 5, 5, 5, 4]
    assert [h for hosts in deploys for h in hosts] == [f"prod-ts-{i:02d}" for i in range(1, 25)]
    assert production.runs[-1] == ("rollback", ("prod-ts-07",))
    assert production.overlapped == [True]  # shard 2 started deploying while shard 1 was checked
    assert sorted(production.checked) == [f"prod-ts-{i:02d}" for i in range(1, 25)]  # each host checked once
    assert record.state is RolloutState.COMPLETE
    states = {h.host: h.state for h in record.waves[0].hosts}
    assert states["prod-ts-07"] is HostState.ROLLED_BACK
    assert [h for h, st in states.items() if st is HostState.HEALTHY] == \
        [f"prod-ts-{i:02d}" for i in range(1, 25) if i != 7]


HALT_WAVES = "    - {hosts: 1}\n    - {hosts: 10, max_failures: 0}\n    - {hosts: 100%}\n"
WAVE2 = [f"prod-ts-{i:02d}" for i in range(2, 11)]  # in shards of 2 (forks 2): 02-03, 04-05, 06-07, 08-09, 10


def halt_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, production: Production,
           workers: Callable[[Production], Any] | None = None) -> tuple[RolloutRunner, Any]:
    """A rollout over ``HALT_WAVES`` in shards of 2 (here, or on ``workers``), which must halt."""
    runner, build, _ = setup(tmp_path, HALT_WAVES, production, monkeypatch, forks=2)
    if workers is not None:
        runner.executor = workers(production)
    record = runner.start(build)
    assert record.state is RolloutState.HALTED, record.detail
    return runner, record


def test_a_deploy_failure_halts_the_wave_at_its_shard_and_its_later_shards_never_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    production = Production(deploy_fails={"prod-ts-04"})
    runner, record = halt_run(tmp_path, monkeypatch, production)
    # the failure is recorded as its shard ends: the third shard (06-07) and those after it never start
    assert production.runs == [("deploy", ("prod-ts-01",)), ("deploy", ("prod-ts-02", "prod-ts-03")),
                               ("deploy", ("prod-ts-04", "prod-ts-05")),
                               ("rollback", ("prod-ts-02", "prod-ts-03", "prod-ts-04", "prod-ts-05"))]
    states = {h.host: h.state for h in record.waves[1].hosts}
    assert [h for h in WAVE2 if states[h] is HostState.CANCELLED] == WAVE2[4:]
    assert [h for h in WAVE2 if states[h] is HostState.ROLLED_BACK] == WAVE2[:4]
    assert [w.state for w in record.waves] == [WaveState.DONE, WaveState.ROLLED_BACK, WaveState.CANCELLED]
    # prod-ts-05's check may or may not have ended when the halt dropped the checks not started
    stopped = r"at most 0 of 9 host\(s\) may fail; 5 host\(s\) not deployed: the wave stopped at the breach"
    either = (rf"2 of 9 host\(s\) healthy; {stopped}; 1 host\(s\) touched but not judged",
              rf"3 of 9 host\(s\) healthy; {stopped}")
    assert re.fullmatch(rf"1 host\(s\) failed \(prod-ts-04\): ({'|'.join(either)}); rolled back 4 host\(s\); "
                        "every one verified", record.waves[1].detail), record.waves[1].detail
    assert not set(production.checked) & set(WAVE2[4:])  # no health suite on a host never deployed
    halted = next(e for e in audit.entries(runner.store) if e.kind == "rollout-wave-halted").data()
    assert [f["host"] for f in halted["failed"]] == ["prod-ts-04"]
    assert audit.verify(runner.store).ok


def test_an_unhealthy_host_halts_the_wave_within_a_shard_of_its_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    production = Production(unhealthy={"prod-ts-02"})
    _, record = halt_run(tmp_path, monkeypatch, production)
    deployed = [hosts for name, hosts in production.runs[1:] if name == "deploy"]
    # the check of shard 1 runs while shard 2 deploys: the halt comes before shard 3 at the latest
    assert deployed in ([("prod-ts-02", "prod-ts-03")], [("prod-ts-02", "prod-ts-03"), ("prod-ts-04", "prod-ts-05")])
    touched = [h for hosts in deployed for h in hosts]
    assert production.runs[-1] == ("rollback", tuple(touched))
    states = {h.host: h.state for h in record.waves[1].hosts}
    assert [h for h in WAVE2 if states[h] is HostState.CANCELLED] == WAVE2[len(touched):]


class Workers:
    """A remote executor whose zone workers answer each task from ``Production``'s fakes, in order:
    shards (``halted`` once the subject is halted, as ``lab worker`` does) and rollbacks (run all
    the same)."""

    kind = "fake-workers"
    remote = True

    def __init__(self, production: Production) -> None:
        self.production = production
        self.halted: list[str] = []
        self.shards: list[list[str]] = []
        self.rollbacks: list[tuple[list[str], list[str]]] = []  # (hosts, hosts to check after)
        self.dark_rollbacks: set[int] = set()  # the rollback tasks (1-based, in order) that reach no host, once

    def run(self, tasks: Sequence[Any], here: Callable[[], None], each: Callable[[Any, dict[str, Any]], None]) -> None:
        for task in tasks:
            if task.kind == ROLLBACK:
                hosts, check = [str(h) for h in task.payload["hosts"]], [str(h) for h in task.payload["check"]]
                self.rollbacks.append((hosts, check))
                if self.dark_rollbacks and len(self.rollbacks) in self.dark_rollbacks:
                    self.dark_rollbacks.discard(len(self.rollbacks))
                    each(task, {"infrastructure": f"{hosts[0]} unreachable: Connection refused"})
                    continue
                ok = [h for h in hosts if h not in self.production.rollback_fails]
                each(task, {"rolled_back": {h: {"ok": h in ok, "detail": "ok"} for h in hosts},
                            **self.health([h for h in check if h in ok])})
                continue
            if task.subject in self.halted:
                each(task, {"halted": True})
                continue
            hosts = [str(h) for h in task.payload["deploy"]]
            self.shards.append(hosts)
            ok = [h for h in hosts if h not in self.production.deploy_fails]
            each(task, {"deployed": {h: {"ok": h in ok, "detail": "ok" if h in ok else "task failed"} for h in hosts},
                        **self.health(ok)})

    def health(self, hosts: list[str]) -> dict[str, Any]:
        return {"health": {h: [result_to_json(Result("plans-a-route", Status.FAIL if h in self.production.unhealthy
                                                     else Status.PASS, "", {}, 1))] for h in hosts},
                "suite": "production-health"}

    def halt(self, subject: str) -> None:
        self.halted.append(subject)

    def share(self, artifact: Path, digest: str) -> None:
        """The fake workers read nothing."""

    def close(self) -> None:
        """Nothing held."""


def test_on_workers_the_breaching_shard_halts_the_shards_queued_behind_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    production = Production(unhealthy={"prod-ts-05"})
    runner, record = halt_run(tmp_path, monkeypatch, production, Workers)
    workers = runner.executor
    assert isinstance(workers, Workers)
    assert workers.shards == [["prod-ts-01"], ["prod-ts-02", "prod-ts-03"], ["prod-ts-04", "prod-ts-05"]]
    assert len(workers.halted) >= 1 and set(workers.halted) == {record.id}
    states = {h.host: h.state for h in record.waves[1].hosts}
    assert [h for h in WAVE2 if states[h] is HostState.CANCELLED] == WAVE2[4:]
    assert production.runs == []  # nothing ran on the controller: the rollback went to the workers too
    # in tasks of forks (2) hosts; none ran an earlier build, so there is nothing to check after
    assert workers.rollbacks == [(WAVE2[:2], []), (WAVE2[2:4], [])]
    rows = Dispatches(runner.store).of(record.id)
    assert [(scope, state, kind) for _, scope, state, kind in rows] == [("wave-1", "done", "rollout-shard")] + [
        ("wave-2", "done", "rollout-shard")] * 5 + [("wave-2-rollback", "done", "rollout-rollback")] * 2


def test_a_wave_rollback_cut_short_on_the_workers_is_finished_by_resume_without_redoing_restored_hosts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    production = Production(unhealthy={"prod-ts-05"})
    runner, build, rollouts = setup(tmp_path, HALT_WAVES, production, monkeypatch, forks=2)
    workers = Workers(production)
    workers.dark_rollbacks = {2}
    runner.executor = workers
    with pytest.raises(InfrastructureError, match=re.escape("wave 2: prod-ts-04 unreachable: Connection refused")):
        runner.start(build)
    stuck = rollouts.latest("care-planner")
    assert stuck is not None and stuck.waves[1].state is WaveState.ROLLING_BACK
    assert [(h.host, h.state) for h in stuck.waves[1].hosts][:4] == [
        ("prod-ts-02", HostState.ROLLED_BACK), ("prod-ts-03", HostState.ROLLED_BACK),
        ("prod-ts-04", HostState.ROLLING_BACK), ("prod-ts-05", HostState.ROLLING_BACK)]
    done = runner.resume(build)
    assert done.state is RolloutState.HALTED and done.waves[1].state is WaveState.ROLLED_BACK
    # the resumed rollback covers only the two hosts whose rollback was never recorded
    assert workers.rollbacks == [(WAVE2[:2], []), (WAVE2[2:4], []), (WAVE2[2:4], [])]
    assert {h.host: h.state for h in done.waves[1].hosts if h.host in WAVE2[:4]} == dict.fromkeys(
        WAVE2[:4], HostState.ROLLED_BACK)
    rollback = audit.entries(runner.store, "rollout-rollback")[0].data()
    assert rollback["hosts"] == WAVE2[:4] and rollback["rolled_back"] == WAVE2[:4]
