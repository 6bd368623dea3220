"""`kill -9` of `lab run` mid-campaign, then `lab resume`: nothing lost, nothing duplicated, and an
unfinished cell never counts as passed. Compared with an uninterrupted run of the same build."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab.config.labfile import load_lab
from tests.support.labfiles import copy_default_lab, lab_command, run_lab, stop_local_sandboxes

pytestmark = pytest.mark.integration

BUILD = "care-planner@2.1.0"  # build B: a mix of passing and failing checks makes the comparison meaningful


def query(db_path: Path, sql: str) -> list[tuple[object, ...]]:
    if not db_path.exists():
        return []
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=10)
    try:
        return db.execute(sql).fetchall()
    except sqlite3.OperationalError:
        return []  # the schema is not there yet
    finally:
        db.close()


def outcomes(db_path: Path, campaign: str) -> dict[tuple[str, str, str], str]:
    rows = query(db_path, f"SELECT sandbox, suite, check_id, status FROM results WHERE campaign_id='{campaign}'")
    result = {(str(s), str(n), str(c)): str(st) for s, n, c, st in rows}
    assert len(result) == len(rows), "a check was recorded twice"
    return result


def new_lab(root: Path) -> Path:
    lab_yml = copy_default_lab(root, sandboxes=2)
    built = run_lab(lab_yml, "build", BUILD)
    assert built.returncode == 0, built.stderr
    return lab_yml


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, dict[tuple[str, str, str], str]]]:
    lab_yml = new_lab(tmp_path_factory.mktemp("uninterrupted"))
    try:
        result = run_lab(lab_yml, "run", BUILD, "--no-reports")
        db = lab_yml.parent / ".lab" / "lab.sqlite3"
        (campaign,) = query(db, "SELECT id FROM campaigns")[0]
        yield result.returncode, outcomes(db, str(campaign))
    finally:
        stop_local_sandboxes(lab_yml)


KILL_POINTS = {
    "after-first-deploy": "SELECT count(*) FROM steps WHERE step='deploy'",
    "after-first-cell": "SELECT count(*) FROM cells WHERE state='done'",
}


@pytest.mark.parametrize("kill_point", sorted(KILL_POINTS))
def test_kill_then_resume_equals_an_uninterrupted_run(
    tmp_path: Path, reference: tuple[int, dict[tuple[str, str, str], str]], kill_point: str
) -> None:
    ref_code, ref_outcomes = reference
    assert ref_code == 1 and len(ref_outcomes) == 24
    lab_yml = new_lab(tmp_path / "lab")
    db = lab_yml.parent / ".lab" / "lab.sqlite3"
    config = load_lab(lab_yml)
    checks_per_suite = {name: len(suite.checks) for name, suite in config.suites.items()}
    try:
        proc = subprocess.Popen([*lab_command(), "--lab", str(lab_yml), "run", BUILD, "--no-reports"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                                env=dict(os.environ, CI="1"))
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            rows = query(db, KILL_POINTS[kill_point])
            if rows and int(str(rows[0][0])) >= 1:
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the campaign ended before the kill point"
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

        (campaign,) = query(db, "SELECT id FROM campaigns")[0]
        cells = query(db, f"SELECT sandbox, suite, state FROM cells WHERE campaign_id='{campaign}'")
        assert len(cells) == 6
        unfinished = [(s, n) for s, n, state in cells if state != "done"]
        assert unfinished, "the kill came too late to test anything"
        recorded = outcomes(db, str(campaign))
        for sandbox, suite, state in cells:  # a cell has all its results or none
            count = sum(1 for (s, n, _) in recorded if (s, n) == (sandbox, suite))
            assert count == (checks_per_suite[str(suite)] if state == "done" else 0), (sandbox, suite, state)
        assert all(recorded[key] == ref_outcomes[key] for key in recorded)

        shown = run_lab(lab_yml, "show", str(campaign))
        assert shown.returncode == 0
        assert f"campaign {campaign} has not finished; resume it" in shown.stdout
        assert "BLOCKED from pilot" in shown.stdout

        resumed = run_lab(lab_yml, "resume", str(campaign), "--no-reports")
        assert resumed.returncode == ref_code, resumed.stdout + resumed.stderr
        assert outcomes(db, str(campaign)) == ref_outcomes
        assert {state for _, _, state in query(db, "SELECT sandbox, suite, state FROM cells")} == {"done"}
        assert query(db, "SELECT state FROM campaigns") == [("finished",)]
    finally:
        stop_local_sandboxes(lab_yml)
