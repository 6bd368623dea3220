"""The celery executor for real: a loopback redis-server of the test's own (no persistence), two
real `lab worker` processes (zones `lab` and `production`: half the production hosts name
`lab_zone: lab`), real ansible-runner deploys and health suites on local production hosts.

- build A rolls out through the workers: every host deployed exactly once (read from each host's
  own deploy log), the waves and audit chain as in-process, one dispatch row per shard, done;
- build C halts in its first wave: no host of a later wave is touched, and the wave's rollback
  and its health check run on the host's zone worker (the controller runs no playbook);
- a task with a wrong HMAC, or without an envelope, is refused by the worker and never run;
- a secret canary in a worker's environment (and so in its inventory, through a lookup) never
  reaches Redis (every key and value), the store, or the controller's ansible-runner artifacts;
  with the store on SQLite (the module's lab) and on PostgreSQL (a lab of its own, with workers
  and a Redis database of its own, rolling out A and halting C: every table of its store, and
  the cluster's data files and server log).
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab.config.executor import ExecutorSettings
from lab.evidence import audit
from lab.evidence.store import Store
from lab.executors.base import Task
from lab.executors.celery import TASK_NAME, celery_app
from lab.executors.signing import seal
from tests.integration.test_rollout import OPEN, deploys, host_log, production_lab, query, snapshot
from tests.support.celery import (
    KEY,
    NEEDS_REDIS,
    cmdline,
    kill_group,
    redis_cli,
    redis_dump,
    redis_server,
    start_worker,
    stop_workers,
    use_celery,
)
from tests.support.labfiles import files_holding, lab_command, run_lab, stop_local_sandboxes
from tests.support.postgres import Cluster, postgres_cluster, table_dumps

__all__ = ["postgres_cluster"]
pytestmark = [pytest.mark.integration, NEEDS_REDIS]

HOSTS = [f"prod-ts-{i:02d}" for i in range(1, 5)]
CANARY = "canary-7f3a9c1e-worker-secret"


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with redis_server(tmp_path_factory.mktemp("redis")) as url:
        yield url


def celery_lab(root: Path, url: str, store: str | None = None) -> Path:
    """The rollout tests' lab (4 production hosts, waves 1 / 50% / 100%) on the celery executor;
    prod-ts-01 and -03 in zone `lab`, the others in `production`; each host carries the canary as
    a variable the worker's environment fills. Its store on PostgreSQL when ``store`` (a DSN) is given."""
    lab_yml = production_lab(root, 4, store)
    use_celery(lab_yml, url)
    inventory = root / "inventory" / "hosts.yml"
    text = inventory.read_text()
    for host in ("prod-ts-01", "prod-ts-03"):
        text = text.replace(f"        {host}: {{}}", f"        {host}: {{lab_zone: lab}}")
    text = text.replace("        care_site_profile: production\n",
                        "        care_site_profile: production\n"
                        "        lab_worker_canary: \"{{ lookup('env', 'LAB_WORKER_CANARY') }}\"\n")
    inventory.write_text(text)
    return lab_yml


def worker(lab_yml: Path, zone: str, log: Path) -> subprocess.Popen[bytes]:
    return start_worker(lab_yml, zone, log, {"LAB_WORKER_CANARY": CANARY})


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[Path]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LAB_NOW", OPEN)
        root = tmp_path_factory.mktemp("celery-lab")
        lab_yml = celery_lab(root / "lab", redis_url)
        workers = [worker(lab_yml, zone, root / f"worker-{zone}.log") for zone in ("lab", "production")]
        try:
            yield lab_yml
        finally:
            stop_workers(workers)
            stop_local_sandboxes(lab_yml)


def test_a_rollout_through_two_zone_workers_deploys_every_host_once(lab: Path) -> None:
    done = run_lab(lab, "rollout", "start", "care-planner@2.0.0")
    assert done.returncode == 0, done.stdout + done.stderr
    for host in HOSTS:
        assert len(deploys(lab, host, "2.0.0")) == 1, host
    states = query(lab, "SELECT host, state FROM rollout_hosts ORDER BY host")
    assert states == [(host, "healthy") for host in HOSTS]
    rows = query(lab, "SELECT scope, zone, state FROM dispatches ORDER BY rowid")
    # waves of 1, 1 and 2 hosts (forks 8): wave 3's hosts prod-ts-03 (lab) and -04 (production) in one shard each
    assert rows == [("wave-1", "lab", "done"), ("wave-2", "production", "done"), ("wave-3", "lab", "done"),
                    ("wave-3", "production", "done")]
    worker_logs = "".join(p.read_text() for p in lab.parent.parent.glob("worker-*.log"))
    assert worker_logs.count("succeeded in") == 4
    assert (lab.parent / ".lab" / "worker" / "artifacts").is_dir()  # the build came from the share, checked
    store = Store(lab.parent / ".lab" / "lab.sqlite3")
    try:
        assert audit.verify(store).ok
    finally:
        store.close()


def test_a_halt_touches_no_host_of_a_later_wave(lab: Path) -> None:
    before = {host: snapshot(lab, host) for host in HOSTS[1:]}
    halted = run_lab(lab, "rollout", "start", "care-planner@2.2.0")
    assert halted.returncode == 1, halted.stdout + halted.stderr
    assert "HALTED" in halted.stdout
    assert {host: snapshot(lab, host) for host in HOSTS[1:]} == before
    assert deploys(lab, "prod-ts-01", "2.2.0") != []
    assert query(lab, "SELECT state FROM rollouts WHERE version='2.2.0'") == [("halted",)]
    # the rollback and its health check ran on prod-ts-01's zone worker (zone lab), not in the controller
    (rollout,) = query(lab, "SELECT id FROM rollouts WHERE version='2.2.0'")
    assert query(lab, f"SELECT scope, zone, kind, state FROM dispatches WHERE subject='{rollout[0]}' ORDER BY rowid") \
        == [("wave-1", "lab", "rollout-shard", "done"), ("wave-1-rollback", "lab", "rollout-rollback", "done")]
    assert [e[1] for e in host_log(lab, "prod-ts-01") if e[1] == "rollback"] == ["rollback"]
    assert list((lab.parent / ".lab" / "worker" / "runs" / str(rollout[0])).glob("wave-1-rollback")) != []
    assert not (lab.parent / ".lab" / "runs" / str(rollout[0])).exists()  # the controller ran no playbook
    (host,) = query(lab, "SELECT state, detail FROM rollout_hosts WHERE host='prod-ts-01' AND "
                         f"rollout_id='{rollout[0]}'")
    assert host[0] == "rolled_back" and "back on 2.0.0: healthy" in str(host[1])  # checked after, on the worker


def test_a_tampered_or_unsigned_task_is_refused_and_never_run(lab: Path, redis_url: str) -> None:
    settings = ExecutorSettings("celery", redis_url, lab.parent / "share", lab.parent / "executor.key", 300, 280)
    app = celery_app(settings)
    task = Task("rollout-shard", "11111111-2222-5333-8444-555555555555", "production", "r-test",
                {"deploy": ["prod-ts-02"], "check": [], "build": {}})
    envelope = seal(task, KEY.encode())
    envelope["body"] = envelope["body"].replace("prod-ts-02", "prod-ts-04")
    before = snapshot(lab, "prod-ts-04")
    tampered = app.send_task(TASK_NAME, args=[envelope], task_id=task.id, queue="production")
    unsigned = app.send_task(TASK_NAME, args=[task.to_json()], task_id="99999999-2222-5333-8444-555555555555",
                             queue="production")
    for sent in (tampered, unsigned):
        deadline = time.monotonic() + 60
        while sent.state not in ("FAILURE", "SUCCESS"):
            assert time.monotonic() < deadline
            time.sleep(0.2)
        assert sent.state == "FAILURE" and "refused by worker production@" in str(sent.result)
    log = (lab.parent.parent / "worker-production.log").read_text()
    assert f"refused task {task.id}: task message with a wrong HMAC" in log
    assert "refused task 99999999-2222-5333-8444-555555555555: unsigned task message" in log
    assert snapshot(lab, "prod-ts-04") == before


def the_secret_stayed_with_the_workers(lab: Path, url: str) -> None:
    """What the canary tests check whatever the store, once A rolled out and C halted: the canary is
    in no Redis key or value (the workers' done markers and task results are there), in no file of
    the controller's ansible-runner artifacts (it runs none for a rollout: C's rollback ran on a worker), and it is
    where the workers could use it: in the environment of this lab's workers (their inventory's
    lookup reads it)."""
    dump = redis_dump(url)
    assert any(k.startswith("lab:done:") for k in dump) and any(k.startswith("celery-task-meta-") for k in dump)
    assert [key for key, value in dump.items() if CANARY in key + value] == []
    runs = lab.parent / ".lab" / "runs"
    assert not list(runs.glob("r*/wave-*"))  # the controller ran no playbook: C's rollback ran on its worker
    assert list((lab.parent / ".lab" / "worker" / "runs").glob("r*/wave-1-rollback"))
    assert files_holding(runs, CANARY.encode()) == []
    workers = [p for p in Path("/proc").iterdir()
               if p.name.isdigit() and f"{lab} worker --queue" in cmdline(p)]  # this lab's workers only
    assert workers and all(CANARY.encode() in (p / "environ").read_bytes() for p in workers)


def test_the_workers_secret_never_reaches_redis_the_store_or_the_controllers_artifacts(
        lab: Path, redis_url: str) -> None:
    the_secret_stayed_with_the_workers(lab, redis_url)
    # the store's file and its write-ahead log: a value written and overwritten since the last checkpoint is there
    store_files = sorted((lab.parent / ".lab").glob("lab.sqlite3*"))
    assert lab.parent / ".lab" / "lab.sqlite3" in store_files
    assert [path for path in store_files if CANARY.encode() in path.read_bytes()] == []


@pytest.fixture
def fresh_lab(tmp_path: Path, redis_url: str) -> Iterator[Path]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LAB_NOW", OPEN)
        lab_yml = celery_lab(tmp_path / "lab", redis_url.replace("/0", "/1"))
        try:
            yield lab_yml
        finally:
            stop_local_sandboxes(lab_yml)


def test_a_worker_and_its_controller_killed_mid_shard_then_resume_deploys_every_host_once(
        fresh_lab: Path, tmp_path: Path, redis_url: str) -> None:
    lab_yml, url = fresh_lab, redis_url.replace("/0", "/1")
    logs = {zone: tmp_path / f"worker-{zone}.log" for zone in ("lab", "production")}
    workers = {zone: worker(lab_yml, zone, log) for zone, log in logs.items()}
    controller = subprocess.Popen([*lab_command(), "--lab", str(lab_yml), "rollout", "start", "care-planner@2.0.0"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                                  env=dict(os.environ, CI="1"))
    try:
        deadline = time.monotonic() + 240
        # wave 2 (prod-ts-02, zone production): kill its worker while it holds the shard
        while not any(k.startswith("lab:claim:") for k in redis_cli(url, "--scan").splitlines()) \
                or not list((lab_yml.parent / ".lab" / "worker" / "runs").glob("*/wave-2")):
            assert time.monotonic() < deadline and controller.poll() is None
            time.sleep(0.05)
        kill_group(workers.pop("production"), str(lab_yml.parent / ".lab" / "worker" / "runs"))
        kill_group(controller, str(lab_yml.parent / ".lab" / "runs"))
        assert query(lab_yml, "SELECT state FROM rollouts") == [("running",)]
        workers["production"] = worker(lab_yml, "production", logs["production"])
        resumed = run_lab(lab_yml, "rollout", "resume", "care-planner@2.0.0")
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    finally:
        stop_workers(list(workers.values()))
    for host in HOSTS:
        assert len(deploys(lab_yml, host, "2.0.0")) == 1, host
    # the killed worker finished nothing; its successor ran wave 2's shard again and wave 3's production shard
    assert logs["production"].read_text().count("succeeded in") == 2
    assert query(lab_yml, "SELECT state, count(*) FROM rollout_hosts GROUP BY state") == [("healthy", 4)]
    assert {state for (state,) in query(lab_yml, "SELECT state FROM dispatches")} == {"done"}
    store = Store(lab_yml.parent / ".lab" / "lab.sqlite3")
    try:
        assert audit.verify(store).ok
    finally:
        store.close()


@pytest.fixture(scope="module")
def postgres_lab(tmp_path_factory: pytest.TempPathFactory, redis_url: str,
                 postgres_cluster: Cluster) -> Iterator[tuple[Path, str, str]]:
    """The module's lab again with its store on a new database of the test process's PostgreSQL
    cluster, a Redis database and two zone workers of its own: A rolled out, C halted in wave 1.
    (lab.yml, the store's DSN, the broker's URL)."""
    url, dsn = redis_url.replace("/0", "/2"), postgres_cluster.create_database()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LAB_NOW", OPEN)
        patch.delenv("LAB_STORE", raising=False)
        root = tmp_path_factory.mktemp("celery-pg-lab")
        lab_yml = celery_lab(root / "lab", url, dsn)
        workers = [worker(lab_yml, zone, root / f"worker-{zone}.log") for zone in ("lab", "production")]
        try:
            done = run_lab(lab_yml, "rollout", "start", "care-planner@2.0.0")
            assert done.returncode == 0, done.stdout + done.stderr
            halted = run_lab(lab_yml, "rollout", "start", "care-planner@2.2.0")
            assert halted.returncode == 1 and "HALTED" in halted.stdout, halted.stdout + halted.stderr
            yield lab_yml, dsn, url
        finally:
            stop_workers(workers)
            stop_local_sandboxes(lab_yml)


def test_on_a_postgresql_store_too_the_workers_secret_never_reaches_redis_the_store_or_the_controllers_artifacts(
        postgres_lab: tuple[Path, str, str], postgres_cluster: Cluster) -> None:
    lab, dsn, url = postgres_lab
    the_secret_stayed_with_the_workers(lab, url)
    assert not (lab.parent / ".lab" / "lab.sqlite3").exists()  # the store is PostgreSQL's
    import psycopg

    with psycopg.connect(dsn) as db:  # what the two rollouts left there, through the workers
        rollouts = db.execute("SELECT id, version, state FROM rollouts ORDER BY created_at").fetchall()
        assert [row[1:] for row in rollouts] == [("2.0.0", "complete"), ("2.2.0", "halted")]
        assert db.execute("SELECT scope, zone, state FROM dispatches ORDER BY rowid").fetchall() == [
            ("wave-1", "lab", "done"), ("wave-2", "production", "done"), ("wave-3", "lab", "done"),
            ("wave-3", "production", "done"), ("wave-1", "lab", "done"),
            ("wave-1-rollback", "lab", "done")]  # C halted in wave 1: its rollback ran on the worker too
    dumps = table_dumps(dsn)
    assert {"rollouts", "rollout_hosts", "dispatches", "audit"} <= set(dumps)
    assert [table for table, dump in dumps.items() if CANARY in dump] == []
    # the server's own files, every change written out: the database's (live rows and the dead versions an
    # UPDATE leaves until a vacuum, which the tables no longer show), the WAL, and the server's log
    postgres_cluster.checkpoint()
    files = postgres_cluster.files_of(dsn)
    assert [path for path in files if str(rollouts[0][0]).encode() in path.read_bytes()]  # the scan sees the rows
    assert [path for path in files if CANARY.encode() in path.read_bytes()] == []
