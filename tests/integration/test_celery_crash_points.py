"""kill -9 of the controller at every step boundary of a rollout on two zone workers, then resume.

A loopback redis-server, two real `lab worker --queue production` processes, four local
production hosts in waves of 1, 1 and 2 hosts, shards of one host (so wave 3's two shards go
to the two workers side by side), real ansible-runner deploys and health suites.

The controller is killed with SIGKILL right after its Nth committed store transaction
(``$LAB_CRASH_AFTER_COMMIT``, ``lab.util.crashpoint``): every step is committed before the next,
so the commits are the step boundaries. The walk starts `lab rollout start` killed after its
first commit, then `lab rollout resume` killed after its second (its first is its own audit
note), and so on: whenever a resumed controller is killed in a state already seen (it re-recorded
what a dead one had recorded, e.g. a shard's outcome taken up again from Redis), the next one
is killed one commit later. So every boundary of the rollout gets its own kill -9, each one
followed by a controller that never saw the rollout before.

What must hold after the walk, counted from the hosts' own deploy logs (written by the deploy
playbook on each host), not from lab's rows:
- build A: every host deployed exactly once, every host healthy, every dispatch row done;
- build C (halts in wave 1): wave 1's host deployed once and rolled back once, the hosts of the
  later waves never touched;
- `lab audit verify` passes after each walk.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from lab.util.crashpoint import ENV
from tests.integration.test_rollout import OPEN, WAVES, deploys, host_log, production_lab, query, snapshot
from tests.support.celery import NEEDS_REDIS, kill_orphans, redis_server, start_worker, stop_workers, use_celery
from tests.support.labfiles import lab_command, run_lab, set_rollout, stop_local_sandboxes

pytestmark = [pytest.mark.integration, NEEDS_REDIS]

A, C = "care-planner@2.0.0", "care-planner@2.2.0"
HOSTS = [f"prod-ts-{i:02d}" for i in range(1, 5)]
FINAL = ("complete", "halted", "failed", "aborted")
WALK_LIMIT = 150  # far more controllers than a walk needs: a walk that never ends fails, it does not hang
# (rollout state, wave states, (host, state, deployed digest) per host, (task id, state) per dispatch row)
State = tuple[str, tuple[str, ...], tuple[tuple[str, str, str], ...], tuple[tuple[str, str], ...]]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Four production hosts, every one in zone `production` (no lab_zone), shards of one host,
    served by two workers of that zone."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LAB_NOW", OPEN)
        root = tmp_path_factory.mktemp("crash-points")
        with redis_server(root) as url:
            lab_yml = production_lab(root / "lab", 4)
            set_rollout(lab_yml.parent, WAVES.replace("forks: 8", "forks: 1"))
            use_celery(lab_yml, url)
            workers = [start_worker(lab_yml, "production", root / f"worker-{n}.log") for n in (1, 2)]
            try:
                yield lab_yml
            finally:
                stop_workers(workers)
                stop_local_sandboxes(lab_yml)


def state_of(lab_yml: Path, version: str) -> State:
    """Where the newest rollout of ``version`` stands, from its committed rows (states only: a
    re-recorded step that changes nothing is the same state)."""
    (rollout_id, state), = query(lab_yml, f"SELECT id, state FROM rollouts WHERE version='{version}' "
                                          "ORDER BY created_at DESC, rowid DESC LIMIT 1")
    waves = query(lab_yml, f"SELECT state FROM rollout_waves WHERE rollout_id='{rollout_id}' ORDER BY wave")
    hosts = query(lab_yml, f"SELECT host, state, coalesce(deployed_digest, '') FROM rollout_hosts "
                           f"WHERE rollout_id='{rollout_id}' ORDER BY host")
    tasks = query(lab_yml, f"SELECT task_id, state FROM dispatches WHERE subject='{rollout_id}' ORDER BY rowid")
    return (str(state), tuple(str(w) for (w,) in waves), tuple((str(h), str(s), str(d)) for h, s, d in hosts),
            tuple((str(t), str(s)) for t, s in tasks))


@dataclass(frozen=True)
class Walk:
    boundaries: list[State]  # the state each kill -9 left, one per boundary, in order
    replays: int  # kills of a resumed controller that had only re-recorded what was recorded before
    ended: subprocess.CompletedProcess[str] | None  # the controller that was not killed (None: ended by a kill)


def controller(lab_yml: Path, crash_after: int, *args: str) -> subprocess.CompletedProcess[str]:
    """``lab ARGS`` killed by itself with SIGKILL after its ``crash_after``-th commit (if it gets that far)."""
    env = dict(os.environ, CI="1", **{ENV: str(crash_after)})
    return subprocess.run([*lab_command(), "--lab", str(lab_yml), *args], capture_output=True, text=True,
                          timeout=600, env=env, check=False)


def walk(lab_yml: Path, ref: str) -> Walk:
    """Kill -9 the rollout of ``ref`` at each of its step boundaries in turn (see the module's doc)."""
    version = ref.split("@")[1]
    args, crash_after = ("rollout", "start", ref), 1
    boundaries: list[State] = []
    replays = 0
    for _ in range(WALK_LIMIT):
        done = controller(lab_yml, crash_after, *args)
        if done.returncode != -signal.SIGKILL:
            return Walk(boundaries, replays, done)
        kill_orphans(str(lab_yml.parent / ".lab" / "runs"))  # the dead controller's own Ansible run, if any
        state = state_of(lab_yml, version)
        if state in boundaries:
            replays, crash_after = replays + 1, crash_after + 1
        else:
            boundaries.append(state)
            crash_after = 2  # a resume's first commit is its own audit note: kill it after its first step
        if state[0] in FINAL:
            return Walk(boundaries, replays, None)
        args = ("rollout", "resume", ref)
    raise AssertionError(f"the rollout of {ref} did not end after {WALK_LIMIT} controllers: {boundaries[-3:]}")


def rolled_back(lab_yml: Path, host: str) -> list[list[str]]:
    return [entry for entry in host_log(lab_yml, host) if entry[1] == "rollback"]


def audit_verifies(lab_yml: Path) -> None:
    verified = run_lab(lab_yml, "audit", "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_build_a_killed_at_every_boundary_deploys_every_host_exactly_once(lab: Path) -> None:
    walked = walk(lab, A)
    # One kill per committed state of the rollout: created; then per wave deploying, its shards
    # planned (dispatch rows), per host deployed and healthy, per shard its row done, verifying, done
    # (waves of 1, 1 and 2 hosts in 1, 1 and 2 shards); complete.
    assert len(walked.boundaries) == 1 + 3 * 4 + 2 * 4 + 4 + 1, [b[:2] for b in walked.boundaries]
    assert walked.boundaries[-1][0] == "complete"
    assert walked.replays >= 4  # a kill between a shard's hosts recorded and its row done: taken up again
    assert walked.ended is None or walked.ended.returncode == 0
    for host in HOSTS:
        assert len(deploys(lab, host, "2.0.0")) == 1, (host, host_log(lab, host))
    final = state_of(lab, "2.0.0")
    assert final[1] == ("done", "done", "done")
    assert {state for _, state, _ in final[2]} == {"healthy"}
    assert len(final[3]) == 4 and {state for _, state in final[3]} == {"done"}
    audit_verifies(lab)


def test_build_c_killed_at_every_boundary_halts_and_touches_no_later_wave(lab: Path) -> None:
    if state_of(lab, "2.0.0")[0] != "complete":
        pytest.skip("needs build A rolled out first: run the whole module, "
                    "pytest tests/integration/test_celery_crash_points.py")
    later = {host: snapshot(lab, host) for host in HOSTS[1:]}
    walked = walk(lab, C)
    assert walked.boundaries[-1][0] == "halted"
    assert walked.ended is None or walked.ended.returncode == 1
    assert len(deploys(lab, "prod-ts-01", "2.2.0")) == 1
    assert len(rolled_back(lab, "prod-ts-01")) == 1, host_log(lab, "prod-ts-01")
    assert {host: snapshot(lab, host) for host in HOSTS[1:]} == later
    final = state_of(lab, "2.2.0")
    assert final[1] == ("rolled_back", "cancelled", "cancelled")
    assert [(host, state) for host, state, _ in final[2]] == [
        ("prod-ts-01", "rolled_back"), ("prod-ts-02", "cancelled"), ("prod-ts-03", "cancelled"),
        ("prod-ts-04", "cancelled")]
    audit_verifies(lab)
