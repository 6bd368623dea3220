"""kill -9 of `lab run` while Ansible deploys: no artifact under the state dir holds the lab's
environment (a canary variable stands for a credential), and the next start removes the dead
run's directory (its extra vars and temp files) and still finds no canary."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.support.labfiles import copy_default_lab, lab_command, run_lab, stop_local_sandboxes

pytestmark = pytest.mark.integration

BUILD = "care-planner@2.0.0"
CANARY = "LAB_TEST_CANARY_SECRET"
CANARY_VALUE = "canary-7c1e5f0d9b2a-do-not-write"


def files_holding(root: Path, needle: bytes) -> list[str]:
    return sorted(str(p) for p in root.rglob("*") if p.is_file() and not p.is_symlink() and needle in p.read_bytes())


def deploy_started(state: Path) -> list[Path]:
    """The ``command`` files of running deploy runs (ansible-runner writes it before it starts Ansible)."""
    return sorted((state / "runs").glob("*/deploy/*/artifacts/*/command"))


def test_kill_9_during_deploy_leaves_no_environment_on_disk(tmp_path: Path) -> None:
    lab_yml = copy_default_lab(tmp_path / "lab", sandboxes=1)
    state = lab_yml.parent / ".lab"
    assert run_lab(lab_yml, "build", BUILD).returncode == 0
    env = dict(os.environ, CI="1", **{CANARY: CANARY_VALUE})
    proc = subprocess.Popen([*lab_command(), "--lab", str(lab_yml), "run", BUILD, "--no-reports"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while not deploy_started(state) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert proc.poll() is None, "lab run ended before its deploy started"
        time.sleep(0.5)  # Ansible is under way
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        command = deploy_started(state)[0]
        recorded = json.loads(command.read_text())
        assert "PATH" in recorded["env"] and recorded["env"]["ANSIBLE_HOST_KEY_CHECKING"] == "True"
        assert CANARY not in recorded["env"]
        assert files_holding(state, CANARY_VALUE.encode()) == []
        assert files_holding(state, CANARY.encode()) == []
        killed_run = command.parents[2]
        assert (killed_run / "extravars.json").exists()  # what the kill left behind, until the next start

        resumed = subprocess.run([*lab_command(), "--lab", str(lab_yml), "resume", "latest", "--no-reports"],
                                 env=env, capture_output=True, text=True, timeout=600, check=False)
        assert resumed.returncode == 0, resumed.stderr
        assert not killed_run.exists()  # removed by the next run under the state dir
        assert list((state / "runs").glob("*/deploy/*/artifacts/*/command"))  # runs that ended keep theirs
        assert files_holding(state, CANARY_VALUE.encode()) == []
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        stop_local_sandboxes(lab_yml)
