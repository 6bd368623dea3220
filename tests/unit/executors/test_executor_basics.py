"""The executor's parts that need no broker: lab.yml's executor section (bad input is one message
naming lab.yml and the line), deterministic task ids, HMAC envelopes, the artifact share, and
the dispatch rows a resumed controller reattaches to."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

from lab.config.executor import ExecutorSettings
from lab.config.labfile import load_lab
from lab.errors import ConfigError, InfrastructureError
from lab.executors.base import Task, task_id
from lab.executors.dispatches import Dispatches
from lab.executors.share import fetch, publish
from lab.executors.signing import Refused, open_envelope, open_outcome, read_key, seal, seal_outcome
from tests.support.labfiles import copy_default_lab
from tests.support.postgres import Backend, postgres_cluster, store_backend

__all__ = ["postgres_cluster", "store_backend"]

KEY = b"s" * 40
TASK = Task("rollout-shard", task_id("rollout", "r1", "wave", 2, "shard", 0, "attempt", 1), "production", "r1",
            {"deploy": ["prod-ts-02"], "check": []})


def with_executor(tmp_path: Path, section: str) -> Path:
    lab_yml = copy_default_lab(tmp_path / "lab", sandboxes=1)
    (lab_yml.parent / "executor.key").write_bytes(KEY)
    with lab_yml.open("a") as handle:
        handle.write(section)
    return lab_yml


def test_a_celery_section_is_read_and_the_override_wins(tmp_path: Path) -> None:
    lab_yml = with_executor(tmp_path, "executor:\n  kind: celery\n  broker: redis://127.0.0.1:6390/0\n"
                                      "  share: share\n  key_file: executor.key\n  visibility_timeout: 100\n")
    settings = load_lab(lab_yml).executor
    assert settings == ExecutorSettings("celery", "redis://127.0.0.1:6390/0", lab_yml.parent / "share",
                                        lab_yml.parent / "executor.key", 100.0, 90.0)
    assert load_lab(lab_yml, executor="inprocess").executor.remote is False
    assert load_lab(copy_default_lab(tmp_path / "plain", sandboxes=1)).executor.kind == "inprocess"


@pytest.mark.parametrize(("section", "message"), [
    ("executor:\n  kind: celery\n  broker: redis://127.0.0.1:1/0\n",
     re.escape("the celery executor needs executor.share, executor.key_file in lab.yml")),
    ("executor:\n  kind: celery\n  broker: redis://127.0.0.1:1/0\n  share: s\n  key_file: k\n"
     "  visibility_timeout: 60\n  time_limit: 60\n", re.escape("executor.time_limit (60 s) must be below")),
])
def test_a_broken_executor_section_names_lab_yml_and_the_line(tmp_path: Path, section: str, message: str) -> None:
    lab_yml = with_executor(tmp_path, section)
    with pytest.raises(ConfigError, match=message) as caught:
        load_lab(lab_yml)
    assert caught.value.source == str(lab_yml) and caught.value.line is not None and caught.value.line > 30


def test_task_ids_are_uuid5_names_the_same_on_any_run() -> None:
    assert task_id("rollout", "r1", "wave", 2) == task_id("rollout", "r1", "wave", 2)
    assert task_id("rollout", "r1", "wave", 2) != task_id("rollout", "r1", "wave", 3)
    assert task_id("rollout", "r1")[14] == "5"  # the uuid's version digit


def test_an_envelope_opens_only_unaltered_under_its_own_id_with_the_same_key() -> None:
    envelope = seal(TASK, KEY)
    assert open_envelope(envelope, KEY, TASK.id) == TASK
    with pytest.raises(Refused, match="wrong HMAC"):
        open_envelope({**envelope, "body": envelope["body"].replace("prod-ts-02", "prod-ts-03")}, KEY, TASK.id)
    with pytest.raises(Refused, match="wrong HMAC"):
        open_envelope(envelope, b"t" * 40, TASK.id)
    with pytest.raises(Refused, match="under another id"):
        open_envelope(envelope, KEY, task_id("other"))
    with pytest.raises(Refused, match="unsigned"):
        open_envelope(TASK.to_json(), KEY, TASK.id)


def test_an_outcome_opens_only_unaltered_as_the_outcome_of_its_own_task_with_the_same_key() -> None:
    outcome = {"hosts": {"prod-ts-02": {"deployed": True, "digest": "ab" * 32}}}
    envelope = seal_outcome(TASK.id, outcome, KEY)
    assert open_outcome(envelope, KEY, TASK.id) == outcome
    with pytest.raises(Refused, match="task outcome with a wrong HMAC"):
        open_outcome({**envelope, "body": envelope["body"].replace("true", "false")}, KEY, TASK.id)
    with pytest.raises(Refused, match="task outcome with a wrong HMAC"):
        open_outcome(envelope, b"t" * 40, TASK.id)
    other = task_id("other")
    with pytest.raises(Refused, match=f"signed outcome of task {TASK.id} given as the outcome of task {other}"):
        open_outcome(envelope, KEY, other)
    with pytest.raises(Refused, match="unsigned task outcome"):
        open_outcome(outcome, KEY, TASK.id)
    with pytest.raises(Refused, match="without an outcome"):
        open_outcome(seal(TASK, KEY), KEY, TASK.id)  # a task's own envelope is no outcome


def test_a_short_key_file_is_refused_naming_it(tmp_path: Path) -> None:
    (tmp_path / "k").write_bytes(b"short")
    with pytest.raises(ConfigError, match="holds 5 bytes; it needs at least 32"):
        read_key(tmp_path / "k")
    (tmp_path / "k").write_bytes(KEY + b"\n")
    assert read_key(tmp_path / "k") == KEY


def test_the_share_hands_out_only_the_build_with_its_digest(tmp_path: Path) -> None:
    artifact = tmp_path / "a.tar.gz"
    artifact.write_bytes(b"build A")
    digest = hashlib.sha256(b"build A").hexdigest()
    publish(tmp_path / "share", artifact, digest)
    got = fetch(tmp_path / "share", digest, tmp_path / "cache", "a.tar.gz")
    assert got.read_bytes() == b"build A" and got.name == "a.tar.gz"
    (tmp_path / "share" / digest).write_bytes(b"build A, altered")
    (tmp_path / "cache" / digest / "a.tar.gz").unlink()
    with pytest.raises(InfrastructureError, match=f"expected {digest}: refusing it"):
        fetch(tmp_path / "share", digest, tmp_path / "cache", "a.tar.gz")
    assert not (tmp_path / "cache" / digest / "a.tar.gz").exists()
    with pytest.raises(InfrastructureError, match="has no build with sha256 0000"):
        fetch(tmp_path / "share", "0" * 64, tmp_path / "cache", "a.tar.gz")


def test_dispatch_rows_give_back_the_tasks_without_a_recorded_outcome(store_backend: Backend) -> None:
    store = store_backend.open()
    rows = Dispatches(store)
    other = Task("rollout-shard", task_id("x"), "lab", "r1", {"deploy": ["prod-ts-01"], "check": []})
    rows.plan("wave-2", 1, [TASK, other])
    rows.plan("wave-2", 1, [TASK])  # planned again (a resume): the same row
    assert rows.unfinished("r1", "wave-2") == [TASK, other] and rows.attempts("r1", "wave-2") == 1
    rows.finish(TASK.id)
    assert rows.unfinished("r1", "wave-2") == [other]
    assert rows.of("r1") == [(TASK.id, "wave-2", "done", TASK.kind), (other.id, "wave-2", "published", other.kind)]
    assert rows.unfinished("r1", "wave-3") == [] and rows.attempts("r1", "wave-3") == 0


def test_take_up_reattaches_to_open_tasks_and_plans_only_what_they_do_not_cover(store_backend: Backend) -> None:
    store = store_backend.open()
    rows = Dispatches(store)
    seen: list[tuple[set[str], int]] = []
    todo = ["prod-ts-01", "prod-ts-02", "prod-ts-03"]  # the hosts whose outcome is not recorded yet

    def fresh(covered: set[str], attempt: int) -> list[Task]:
        seen.append((covered, attempt))
        left = [h for h in todo if h not in covered]
        return [Task("rollout-shard", task_id("r1", "wave-2", attempt, h), "production", "r1",
                     {"deploy": [h], "check": []}) for h in left]

    def covers(task: Task) -> list[str]:
        return list(task.payload["deploy"])

    first = rows.take_up("r1", "wave-2", covers, fresh)
    assert [t.payload["deploy"] for t in first] == [["prod-ts-01"], ["prod-ts-02"], ["prod-ts-03"]]
    rows.finish(first[0].id)
    todo.remove("prod-ts-01")
    again = rows.take_up("r1", "wave-2", covers, fresh)  # a resume: the two open tasks, nothing new
    assert again == first[1:] and seen[-1] == ({"prod-ts-02", "prod-ts-03"}, 2)
    assert rows.attempts("r1", "wave-2") == 1  # attempt 2 planned nothing, so no row says it
    todo.append("prod-ts-04")  # a host no open task covers: a new task, in attempt 2
    third = rows.take_up("r1", "wave-2", covers, fresh)
    assert [t.payload["deploy"] for t in third] == [["prod-ts-02"], ["prod-ts-03"], ["prod-ts-04"]]
    assert rows.attempts("r1", "wave-2") == 2
