"""Per-host outcomes of one playbook run over several hosts, from ansible-runner's events
(the real runs are in tests/integration/test_deploy.py and test_rollout.py)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from lab.ansible.playbook import HostWatcher, PlaybookOutcome
from lab.ansible.playbook import collect as collect_watched


def collect(runner: Any, playbook: str, artifact_dir: str) -> PlaybookOutcome:
    """The outcome of a run whose events a ``HostWatcher`` saw as they came, as in ``run_playbook_on``."""
    watcher = HostWatcher()
    for event in runner.events:
        watcher(event)
    return collect_watched(runner, playbook, artifact_dir, watcher)


def run(status: str, events: list[dict[str, Any]]) -> Any:
    return SimpleNamespace(status=status, rc=2 if status == "failed" else 0, events=events)


def stats(**per_host: dict[str, int]) -> dict[str, Any]:
    data: dict[str, Any] = {key: {} for key in ("ok", "failures", "dark", "changed")}
    for host, counts in per_host.items():
        for key, count in counts.items():
            data[key][host] = count
    return {"event": "playbook_on_stats", "event_data": data}


FAILED_B = {"event": "runner_on_failed", "event_data": {"host": "b", "task": "Install", "res": {"msg": "disk full"}}}


def test_one_failing_host_fails_the_run_but_not_the_others() -> None:
    outcome = collect(run("failed", [FAILED_B, stats(a={"ok": 5, "changed": 2}, b={"ok": 2, "failures": 1})]),
                      "deploy.yml", "")
    assert (outcome.host_ok("a"), outcome.host_ok("b")) == (True, False)
    assert (outcome.detail("a"), outcome.detail("b")) == ("deploy.yml ok (2 changed)",
                                                          "deploy.yml failed: task 'Install': disk full")
    assert (outcome.infrastructure_error("a"), outcome.infrastructure_error("b")) == (False, False)


def test_a_run_that_never_reached_its_stats_passes_no_host() -> None:
    started = {"event": "runner_on_ok", "event_data": {"host": "a", "task": "Gather"}}
    outcome = collect(run("failed", [started]), "deploy.yml", "")
    assert outcome.hosts["a"].finished is False and outcome.host_ok("a") is False
    timed_out = collect(run("timeout", [started, stats(a={"ok": 1})]), "deploy.yml", "")
    assert timed_out.host_ok("a") is False and timed_out.infrastructure_error("a") is True


def test_a_failed_script_is_described_by_its_stderr_not_by_ansibles_generic_words() -> None:
    said = "lab_host place: artifact on the target has sha256 ab, expected cd"
    script = {"event": "runner_on_failed", "event_data": {"host": "b", "task": "Check and install", "res": {
        "msg": "non-zero return code", "rc": 1, "stderr": said + "\n", "stdout": "unpacking\n"}}}
    over_a_pty = {"event": "runner_on_failed", "event_data": {"host": "p", "task": "Check and install", "res": {
        "msg": "non-zero return code", "rc": 1, "stdout": f"unpacking\r\n{said}\r\n",
        "stderr": "Shared connection to p closed.\r\n"}}}
    quiet = {"event": "runner_on_failed", "event_data": {"host": "c", "task": "Run", "res": {
        "msg": "non-zero return code", "rc": 1, "stderr": "", "stdout": ""}}}
    outcome = collect(run("failed", [script, over_a_pty, quiet, stats(b={"failures": 1}, c={"failures": 1},
                                                                      p={"failures": 1})]), "deploy.yml", "")
    assert outcome.detail("b") == f"deploy.yml failed: task 'Check and install': {said}"
    assert outcome.detail("p") == f"deploy.yml failed: task 'Check and install': {said}"
    assert outcome.detail("c") == "deploy.yml failed: task 'Run': non-zero return code"
