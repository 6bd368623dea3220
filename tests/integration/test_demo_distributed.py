"""`make demo-distributed` end to end: scripts/demo-distributed.sh in a fresh copy of the repository
starts redis-server, a PostgreSQL cluster and two zone workers, tells the demo's story through them,
and stops everything. Its verdicts are `make demo`'s (tests/integration/test_demo.py holds the same
headlines and failures), the cells and shards ran on the workers, and nothing is left running."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from lxml import html

from tests.integration.test_demo import COMPAT_FAILURES, HEADLINES
from tests.support.celery import NEEDS_REDIS
from tests.support.labfiles import REPO, copy_default_lab, lab_command, processes_naming, stop_local_sandboxes

pytestmark = [pytest.mark.integration, NEEDS_REDIS, pytest.mark.skipif(
    not list(Path("/usr/lib/postgresql").glob("*/bin/initdb")),
    reason="make demo-distributed runs PostgreSQL's server: apt-get install postgresql (.ci/run does), then run "
           "pytest tests/integration/test_demo_distributed.py")]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, subprocess.CompletedProcess[str]]]:
    root = tmp_path_factory.mktemp("demo-distributed")
    copy_default_lab(root)
    shutil.copytree(REPO / "scripts", root / "scripts")
    work = root / "work"
    env = dict(os.environ, CI="1", LAB_DISTRIBUTED_DIR=str(work),
               PATH=f"{Path(lab_command()[0]).parent}:{os.environ['PATH']}")
    result = subprocess.run(["bash", str(root / "scripts" / "demo-distributed.sh")], cwd=root, env=env,
                            capture_output=True, text=True, timeout=1500, check=False)
    yield work, result
    if (work / "lab" / "lab.yml").exists():
        stop_local_sandboxes(work / "lab" / "lab.yml")


def test_the_distributed_demo_tells_the_demos_story_with_its_verdicts(
        demo: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    work, result = demo
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "PostgreSQL on a unix socket only" in result.stdout
    assert "care-planner@2.0.0 promoted to pilot (evidence: campaign " in result.stdout
    everywhere = "on ts-sbx-01, ts-sbx-02, ts-sbx-03"
    assert ("lab: care-planner@2.1.0 may not enter pilot: 12 mandatory check(s) failed: "
            f"portfolio-compat/carefmt-api-level {everywhere}; portfolio-compat/journal-health {everywhere}; "
            f"portfolio-compat/journal-records {everywhere}; portfolio-compat/journal-selftest {everywhere}\n"
            ) in result.stderr
    assert "Demo done: A went through pilot to production in waves; B is blocked in the lab; C halted in its " \
           "first\nproduction wave, which was rolled back (the other production hosts kept A)." in result.stdout
    reports = {}
    for path in (work / "lab" / "reports").glob("2*.json"):
        data = json.loads(path.read_text())
        reports[data["build"]["version"]] = (path, data)
    assert sorted(reports) == ["2.0.0", "2.1.0", "2.2.0"]
    for version, (path, _) in reports.items():  # where each build stands: make demo's headlines
        page = html.fromstring(path.with_suffix(".html").read_text(encoding="utf-8"))
        assert page.find("head/title").text_content() == f"{HEADLINES[version]} · care-planner@{version} · lab"
    assert reports["2.0.0"][1]["counts"]["pass"] == 36 and reports["2.2.0"][1]["counts"]["pass"] == 36
    failed_b = {(c["sandbox"], c["suite"], r["check_id"]) for c in reports["2.1.0"][1]["cells"]
                for r in c["results"] if r["status"] != "pass"}
    sandboxes = ("ts-sbx-01", "ts-sbx-02", "ts-sbx-03")
    assert failed_b == {(s, "portfolio-compat", check) for s in sandboxes for check in COMPAT_FAILURES} | {
        (s, "care-planner-hygiene", "release-notes") for s in sandboxes}


def test_the_cells_and_shards_ran_on_the_zone_workers(demo: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    work, result = demo
    lab_log, production_log = ((work / f"worker-{zone}.log").read_text() for zone in ("lab", "production"))
    # three campaigns of three sandboxes, two batches each (parallel: 2)
    # each answer is its outcome sealed with the lab's key (the log shows its start: JSON, keys sorted)
    assert lab_log.count("succeeded in") == 6 and """{'body': '{"outcome":{"cells":[{"results":[""" in lab_log
    # A: waves of 1, 2, 9 and 12 hosts in shards of up to 8 (forks): 1 + 1 + 2 + 2; C: its canary wave, then
    # that wave's rollback (with the health check of the host restored)
    assert production_log.count("succeeded in") == 8
    assert """{'body': '{"outcome":{"deployed":{"prod-ts-01":""" in production_log
    # C's rollback: no host deployed, the restored host's health checked ("rolled_back" sorts after the log's cut)
    assert """{'body': '{"outcome":{"health":{"prod-ts-01":""" in production_log
    assert "  lab: 6 task(s)\n  production: 8 task(s)\n" in result.stdout


def test_the_distributed_demo_stops_everything_it_started(demo: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    work, result = demo
    assert "Stop the workers, redis-server and PostgreSQL" in result.stdout
    assert list(processes_naming(work).values()) == []
    cluster = Path(result.stdout.split("a cluster of this run's own in ", 1)[1].split(")", 1)[0])
    assert cluster.parent == Path("/tmp") and cluster.name.startswith("lab-demo-pg.")
    assert list(processes_naming(cluster).values()) == []  # PostgreSQL's own processes
    assert not cluster.exists()
