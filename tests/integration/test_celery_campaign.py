"""Campaign cells on the celery executor for real: a loopback redis-server of the module's own, two
real `lab worker --queue lab` processes, the default lab's three local sandboxes (zone `lab`, in
batches of `parallel: 2`), real ansible-runner resets, baselines, deploys and suites.

- build B through the workers gets the very verdict and check statuses an in-process run of the
  same lab gets (exit 1, 36 results), every dispatch row done;
- a worker killed with kill -9 mid-cell, and its controller with it; a new worker and `lab resume`
  finish the campaign with the in-process verdict: no check recorded twice, every cell done, no
  task that had finished run again, the audit chain intact.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab.evidence import audit
from lab.evidence.store import Store
from lab.util.processes import kill_tree
from tests.integration.test_resume import outcomes, query
from tests.support.celery import NEEDS_REDIS, redis_cli, redis_server, start_worker, stop_workers, use_celery
from tests.support.labfiles import copy_default_lab, lab_command, run_lab, stop_local_sandboxes

pytestmark = [pytest.mark.integration, NEEDS_REDIS]

BUILD = "care-planner@2.1.0"  # build B: passing and failing checks, so the comparison means something
Outcomes = dict[tuple[str, str, str], str]


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with redis_server(tmp_path_factory.mktemp("redis")) as url:
        yield url


def celery_campaign_lab(root: Path, url: str) -> Path:
    lab_yml = copy_default_lab(root, sandboxes=3)
    use_celery(lab_yml, url)
    built = run_lab(lab_yml, "build", BUILD)
    assert built.returncode == 0, built.stderr
    return lab_yml


def store_of(lab_yml: Path) -> Path:
    return lab_yml.parent / ".lab" / "lab.sqlite3"


def latest_campaign(lab_yml: Path) -> str:
    return str(query(store_of(lab_yml), "SELECT id FROM campaigns ORDER BY created_at DESC, rowid DESC")[0][0])


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("celery-campaign")
    lab_yml = celery_campaign_lab(root / "lab", redis_url)
    workers = [start_worker(lab_yml, "lab", root / f"worker-{n}.log") for n in (1, 2)]
    try:
        yield lab_yml
    finally:
        stop_workers(workers)
        stop_local_sandboxes(lab_yml)


@pytest.fixture(scope="module")
def reference(lab: Path) -> tuple[int, Outcomes]:
    """Build B's campaign in this process (`--executor inprocess`), on the same lab."""
    result = run_lab(lab, "--executor", "inprocess", "run", BUILD, "--no-reports")
    campaign = latest_campaign(lab)
    assert query(store_of(lab), f"SELECT count(*) FROM dispatches WHERE subject='{campaign}'") in ([], [(0,)])
    return result.returncode, outcomes(store_of(lab), campaign)


def test_a_campaign_through_two_workers_gets_the_in_process_verdict(lab: Path, reference: tuple[int, Outcomes]) -> None:
    ref_code, ref_outcomes = reference
    assert ref_code == 1 and len(ref_outcomes) == 36
    result = run_lab(lab, "run", BUILD, "--no-reports")
    assert result.returncode == ref_code, result.stdout + result.stderr
    campaign = latest_campaign(lab)
    assert outcomes(store_of(lab), campaign) == ref_outcomes
    assert query(store_of(lab), f"SELECT state, count(*) FROM cells WHERE campaign_id='{campaign}' "
                                "GROUP BY state") == [("done", 9)]
    # sandboxes ts-sbx-01 and -02 in one batch (parallel: 2), ts-sbx-03 in another; both on zone lab's queue
    rows = query(store_of(lab), f"SELECT scope, kind, zone, state, task FROM dispatches WHERE subject='{campaign}' "
                                "ORDER BY rowid")
    assert [row[:4] for row in rows] == [("cells", "campaign-cells", "lab", "done")] * 2
    assert ['"ts-sbx-01"' in str(row[4]) and '"ts-sbx-02"' in str(row[4]) for row in rows] == [True, False]
    logs = "".join(p.read_text() for p in lab.parent.parent.glob("worker-*.log"))
    assert logs.count("succeeded in") == 2
    # each sandbox's steps were recorded from the workers' outcomes: reset, baseline, deploy
    steps = query(store_of(lab), f"SELECT sandbox, step FROM steps WHERE campaign_id='{campaign}' ORDER BY 1, 2")
    assert steps == [(f"ts-sbx-0{n}", step) for n in (1, 2, 3) for step in ("baseline", "deploy", "reset")]


def runs_of(logs: str, task_id: str) -> int:
    """How many times a worker ran ``task_id`` to its end (not counting a delivery answered from its
    earlier outcome)."""
    return (len(re.findall(rf"lab\.run\[{task_id}\] succeeded in", logs))
            - logs.count(f"task {task_id} was done already"))


def test_a_worker_and_its_controller_killed_mid_cell_then_resume_lose_nothing_and_do_nothing_twice(
        tmp_path: Path, redis_url: str, reference: tuple[int, Outcomes]) -> None:
    ref_code, ref_outcomes = reference
    url = redis_url.replace("/0", "/1")
    lab_yml = celery_campaign_lab(tmp_path / "lab", url)
    logs = [tmp_path / "worker-1.log", tmp_path / "worker-2.log"]
    workers = {log: start_worker(lab_yml, "lab", log) for log in logs}
    controller = subprocess.Popen([*lab_command(), "--lab", str(lab_yml), "run", BUILD, "--no-reports"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                                  env=dict(os.environ, CI="1"))
    try:
        deadline = time.monotonic() + 300
        holder = None
        while holder is None:  # a worker holds a batch and its deploy has begun: kill that worker
            assert time.monotonic() < deadline and controller.poll() is None
            claims = [k for k in redis_cli(url, "--scan", "--pattern", "lab:claim:*").splitlines() if k]
            deploying = any(True for _ in (lab_yml.parent / ".lab" / "runs").glob("*/deploy/deploy-*"))
            if claims and deploying:
                name = redis_cli(url, "get", claims[0]).strip()
                holder = next((log for log, proc in workers.items() if name.endswith(f"-{proc.pid}")), None)
            time.sleep(0.05)
        killed = workers.pop(holder)
        kill_tree(killed.pid)
        killed.wait()
        kill_tree(controller.pid)
        controller.wait()
        campaign = latest_campaign(lab_yml)
        assert query(store_of(lab_yml), f"SELECT state FROM campaigns WHERE id='{campaign}'") == [("running",)]
        workers[holder] = start_worker(lab_yml, "lab", holder)
        resumed = run_lab(lab_yml, "resume", campaign, "--no-reports")
        assert resumed.returncode == ref_code, resumed.stdout + resumed.stderr
    finally:
        stop_workers(list(workers.values()))
        stop_local_sandboxes(lab_yml)
    assert outcomes(store_of(lab_yml), campaign) == ref_outcomes  # no check lost, none recorded twice
    assert query(store_of(lab_yml), f"SELECT state, count(*) FROM cells WHERE campaign_id='{campaign}' "
                                    "GROUP BY state") == [("done", 9)]
    rows = query(store_of(lab_yml), f"SELECT task_id, state FROM dispatches WHERE subject='{campaign}'")
    assert len(rows) == 2 and {state for _, state in rows} == {"done"}
    text = "".join(log.read_text() for log in logs)
    assert [runs_of(text, str(task_id)) for task_id, _ in rows] == [1, 1]  # the killed batch ran to the end once
    store = Store(store_of(lab_yml))
    try:
        assert audit.verify(store).ok
    finally:
        store.close()
