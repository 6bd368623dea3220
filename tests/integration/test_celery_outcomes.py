"""Signed outcomes over a real loopback redis-server (no worker process needed): the controller
records only an outcome its worker sealed for that very task, and a worker never answers a done
marker that was altered in Redis (it runs the task again).

The whole path, real workers included, is in test_celery_executor.py (every rollout there goes
through these checks)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lab.config.executor import ExecutorSettings
from lab.errors import InfrastructureError
from lab.evidence.store import Store
from lab.executors.base import Outcome, Task, task_id
from lab.executors.celery import CeleryExecutor, celery_app, done_key, redis_client
from lab.executors.signing import open_outcome, seal, seal_outcome
from lab.executors.worker import Worker
from tests.support.celery import KEY, NEEDS_REDIS, redis_server

pytestmark = [pytest.mark.integration, NEEDS_REDIS]


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ExecutorSettings]:
    where = tmp_path_factory.mktemp("outcomes")
    (where / "executor.key").write_text(KEY + "\n")
    with redis_server(where) as url:
        yield ExecutorSettings("celery", url, where / "share", where / "executor.key", 300, 280)


def shard(name: str) -> Task:
    return Task("rollout-shard", task_id("outcomes-test", name), "production", f"r-{name}",
                {"deploy": ["prod-ts-02"], "check": [], "build": {}})


def answered(settings: ExecutorSettings, task: Task, stored: Any, tmp_path: Path) -> list[Outcome]:
    """Store ``stored`` as ``task``'s Celery result (as a worker's return value is stored), then let
    the controller's executor collect it: the outcomes it handed on."""
    celery_app(settings).backend.store_result(task.id, stored, "SUCCESS")
    recorded: list[Outcome] = []
    executor = CeleryExecutor(settings, Store(tmp_path / "lab.sqlite3"))
    try:
        executor.run([task], lambda: None, lambda _, outcome: recorded.append(outcome))
    finally:
        executor.close()
    return recorded


def test_the_controller_records_the_outcome_its_worker_sealed(settings: ExecutorSettings, tmp_path: Path) -> None:
    task = shard("sealed")
    outcome = {"hosts": {"prod-ts-02": {"deployed": True}}}
    assert answered(settings, task, seal_outcome(task.id, outcome, KEY.encode()), tmp_path) == [outcome]


@pytest.mark.parametrize("forgery", ["altered", "unsigned", "another key", "another task's"])
def test_the_controller_refuses_a_forged_outcome_and_records_nothing(
        settings: ExecutorSettings, tmp_path: Path, forgery: str) -> None:
    task = shard(f"forged-{forgery}")
    honest = seal_outcome(task.id, {"hosts": {"prod-ts-02": {"deployed": False}}}, KEY.encode())
    stored = {
        "altered": {**honest, "body": honest["body"].replace("false", "true")},
        "unsigned": {"hosts": {"prod-ts-02": {"deployed": True}}},
        "another key": seal_outcome(task.id, {"hosts": {}}, b"x" * 48),
        "another task's": seal_outcome(shard("other").id, {"hosts": {}}, KEY.encode()),
    }[forgery]
    with pytest.raises(InfrastructureError, match=f"the outcome of task {task.id} .* was refused") as refused:
        answered(settings, task, stored, tmp_path)
    assert "nothing of it was recorded" in str(refused.value)
    # forgotten, so that resume asks its worker again instead of meeting the forgery once more
    assert celery_app(settings).AsyncResult(task.id).state == "PENDING"


def test_a_worker_runs_a_task_again_rather_than_answer_an_altered_done_marker(settings: ExecutorSettings) -> None:
    runs: list[str] = []

    def handler(task: Task) -> Outcome:
        runs.append(task.id)
        return {"run": len(runs)}

    worker = Worker(settings, "production", {"rollout-shard": handler})
    task = shard("done-marker")
    first = worker.handle(seal(task, KEY.encode()), task.id)
    assert open_outcome(first, KEY.encode(), task.id) == {"run": 1}
    assert worker.handle(seal(task, KEY.encode()), task.id) == first and runs == [task.id]  # delivered twice, run once

    redis = redis_client(settings)
    marker = json.loads(redis.get(done_key(task.id)))
    redis.set(done_key(task.id), json.dumps({**marker, "body": marker["body"].replace('"run":1', '"run":7')}))
    again = worker.handle(seal(task, KEY.encode()), task.id)
    assert open_outcome(again, KEY.encode(), task.id) == {"run": 2} and runs == [task.id, task.id]
    assert json.loads(redis.get(done_key(task.id))) == again  # the marker is the new run's, sealed
    redis.close()
