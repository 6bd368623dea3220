"""kill_group signals a check's session, and nobody else's once that session is gone and its pid reused."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator

import pytest

from lab.checks import runner


@pytest.fixture
def stranger() -> Iterator[subprocess.Popen[bytes]]:
    """A live session leader that no check started."""
    proc = subprocess.Popen(["sleep", "60"], start_new_session=True)
    yield proc
    proc.kill()
    proc.wait()


class ReapedCheck:
    """What the runner keeps of a check process that was reaped: its pid and when it started."""

    def __init__(self, pid: int, started: int | None) -> None:
        self.pid = pid
        self.lab_started = started


def test_a_pid_now_held_by_a_stranger_is_left_alone(stranger: subprocess.Popen[bytes]) -> None:
    started = runner.start_time(stranger.pid)
    assert isinstance(started, int) and started > 0
    runner.kill_group(ReapedCheck(stranger.pid, started - 1))  # our check ran under this pid earlier
    time.sleep(0.2)
    assert stranger.poll() is None


def test_the_checks_own_session_is_killed_with_what_it_left_behind(stranger: subprocess.Popen[bytes]) -> None:
    runner.kill_group(ReapedCheck(stranger.pid, runner.start_time(stranger.pid)))
    assert stranger.wait(timeout=5) == -signal.SIGKILL

