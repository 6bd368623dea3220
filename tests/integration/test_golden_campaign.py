"""Golden baselines and one Ansible run per step, on local sandboxes with real ansible-playbook runs.

- the first campaign installs the baseline with one run over every sandbox and keeps one of them
  as the golden image; the next campaign resets to it (no baseline run) and still passes;
- a changed baseline file gives a new key, so the baseline runs again; `lab sandbox rebaseline`
  forces it;
- one deploy run over every sandbox per campaign; a deploy that fails on one sandbox leaves the
  other's cells passing;
- the audit entries and the evidence bundle name the golden image each sandbox started from.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from lab.campaign.baseline import baseline_tree
from lab.config.labfile import load_lab
from tests.support.labfiles import copy_default_lab, run_lab, stop_local_sandboxes

pytestmark = pytest.mark.integration

BUILD = "care-planner@2.0.0"


def rows(lab_yml: Path, sql: str) -> list[tuple[object, ...]]:
    db = sqlite3.connect(f"file:{lab_yml.parent / '.lab' / 'lab.sqlite3'}?mode=ro", uri=True)
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


def baseline_steps(lab_yml: Path, campaign: str) -> dict[str, tuple[object, ...]]:
    found = rows(lab_yml, "SELECT sandbox, ok, detail, deployed_digest FROM steps "
                          f"WHERE campaign_id='{campaign}' AND step='baseline'")
    return {str(r[0]): tuple(r[1:]) for r in found}


def campaigns(lab_yml: Path) -> list[str]:
    return [str(r[0]) for r in rows(lab_yml, "SELECT id FROM campaigns ORDER BY created_at, id")]


def run_dirs(lab_yml: Path, campaign: str, step: str) -> list[Path]:
    return sorted((lab_yml.parent / ".lab" / "runs" / campaign / step).glob(f"{step}-*"))


def hosts_in(run_dir: Path) -> set[str]:
    """The hosts a run's events name."""
    found = set()
    for event_file in run_dir.glob("artifacts/*/job_events/*.json"):
        host = json.loads(event_file.read_text()).get("event_data", {}).get("host")
        if host:
            found.add(host)
    return found


def audit_payloads(lab_yml: Path, kind: str) -> list[dict[str, object]]:
    return [json.loads(str(r[0])) for r in rows(lab_yml, f"SELECT payload FROM audit WHERE kind='{kind}' ORDER BY seq")]


def test_golden_baseline_is_kept_then_reset_to_then_renewed_when_the_baseline_changes(tmp_path: Path) -> None:
    lab_yml = copy_default_lab(tmp_path / "lab", sandboxes=2)
    assert run_lab(lab_yml, "build", BUILD).returncode == 0
    try:
        first = run_lab(lab_yml, "run", BUILD, "--no-reports", timeout=300)
        assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
        (c1,) = campaigns(lab_yml)
        steps = baseline_steps(lab_yml, c1)
        assert sorted(steps) == ["ts-sbx-01", "ts-sbx-02"]
        keys = {s[2] for s in steps.values()}
        assert len(keys) == 1 and all(s[0] == 1 for s in steps.values())
        (key,) = keys
        assert isinstance(key, str) and len(key) == 64
        assert sum("kept as golden image golden-" + key[:12] in str(s[1]) for s in steps.values()) == 1
        (baseline_run,) = run_dirs(lab_yml, c1, "baseline")  # one run over both sandboxes
        assert hosts_in(baseline_run) == {"ts-sbx-01", "ts-sbx-02"}
        (deploy_run,) = run_dirs(lab_yml, c1, "deploy")
        assert hosts_in(deploy_run) == {"ts-sbx-01", "ts-sbx-02"}
        assert (lab_yml.parent / ".lab" / "golden" / "local" / f"{key}.tar").is_file()

        second = run_lab(lab_yml, "run", BUILD, "--no-reports", timeout=300)
        assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
        c2 = campaigns(lab_yml)[1]
        assert run_dirs(lab_yml, c2, "baseline") == []  # the playbook did not run
        steps = baseline_steps(lab_yml, c2)
        assert {s[2] for s in steps.values()} == {key}
        assert all(str(s[1]).startswith(f"in place: reset to golden image golden-{key[:12]}") for s in steps.values())
        pid = lab_yml.parent / ".lab" / "sandboxes" / "ts-sbx-02" / "root" / "run" / "journal.pid"
        assert Path(f"/proc/{pid.read_text().strip()}").exists()  # booted from the image: the journal runs
        finished = audit_payloads(lab_yml, "campaign-finish")
        assert finished[-1]["golden"] == {"ts-sbx-01": key, "ts-sbx-02": key}
        started = audit_payloads(lab_yml, "campaign-start")
        assert started[-1]["golden"] == {"ts-sbx-01": key, "ts-sbx-02": key}
        bundle = tmp_path / "evidence.json"
        written = run_lab(lab_yml, "evidence", "write", BUILD, "-o", str(bundle))
        assert written.returncode == 0, written.stderr
        assert json.loads(bundle.read_text())["golden_images"] == {"ts-sbx-01": key, "ts-sbx-02": key}

        config = load_lab(lab_yml)
        assert config.baseline is not None
        conf = baseline_tree(config.baseline) / "etc" / "journal" / "journal.conf"
        conf.write_text(conf.read_text() + "# changed after the golden image was kept\n")
        third = run_lab(lab_yml, "run", BUILD, "--no-reports", timeout=300)
        assert third.returncode == 0, third.stdout[-3000:] + third.stderr[-3000:]
        c3 = campaigns(lab_yml)[2]
        (rerun,) = run_dirs(lab_yml, c3, "baseline")
        assert hosts_in(rerun) == {"ts-sbx-01", "ts-sbx-02"}
        new_keys = {s[2] for s in baseline_steps(lab_yml, c3).values()}
        assert len(new_keys) == 1 and new_keys != {key}

        forced = run_lab(lab_yml, "sandbox", "rebaseline", "ts-sbx-01")
        assert forced.returncode == 0, forced.stderr
        assert "ts-sbx-01: rebaselined (baseline.yml ok" in forced.stdout
        assert f"kept as golden image golden-{str(next(iter(new_keys)))[:12]}" in forced.stdout
        installed = lab_yml.parent / ".lab" / "sandboxes" / "ts-sbx-01" / "root" / "etc" / "journal" / "journal.conf"
        assert installed.read_text() == conf.read_text()
    finally:
        stop_local_sandboxes(lab_yml)


FAIL_ON_ONE = """
- name: Fail on the sandbox named by fail_host only
  hosts: all
  gather_facts: false
  tasks:
    - name: Refuse this sandbox
      ansible.builtin.fail:
        msg: "deliberately broken on {{ inventory_hostname }}"
      when: inventory_hostname == fail_host

"""


def test_a_deploy_failing_on_one_sandbox_leaves_the_others_passing(tmp_path: Path) -> None:
    lab_yml = copy_default_lab(tmp_path / "lab", sandboxes=2)
    deploy = lab_yml.parent / "playbooks" / "deploy.yml"
    deploy.write_text("---\n" + FAIL_ON_ONE + deploy.read_text().removeprefix("---\n"))
    hosts = lab_yml.parent / "inventory" / "hosts.yml"
    text = hosts.read_text()
    group = "        lab_platform: debian-12\n      hosts:\n        ts-sbx-01"
    assert group in text
    hosts.write_text(text.replace(group, group.replace("debian-12\n", "debian-12\n        fail_host: ts-sbx-02\n"), 1))
    assert run_lab(lab_yml, "build", BUILD).returncode == 0
    try:
        result = run_lab(lab_yml, "run", BUILD, "--no-reports", timeout=300)
        assert result.returncode == 1, result.stdout[-3000:] + result.stderr[-3000:]
        (campaign,) = campaigns(lab_yml)
        deploys = {str(r[0]): (r[1], r[2], str(r[3])) for r in rows(
            lab_yml, f"SELECT sandbox, ok, infrastructure_error, detail FROM steps WHERE campaign_id='{campaign}' "
                     "AND step='deploy'")}
        assert deploys["ts-sbx-01"][:2] == (1, 0)
        assert deploys["ts-sbx-02"][:2] == (0, 0)  # the build's failure, not infrastructure
        assert "deliberately broken on ts-sbx-02" in deploys["ts-sbx-02"][2]
        (deploy_run,) = run_dirs(lab_yml, campaign, "deploy")
        assert hosts_in(deploy_run) == {"ts-sbx-01", "ts-sbx-02"}
        statuses = {(str(s), str(st)) for s, st in rows(
            lab_yml, f"SELECT sandbox, status FROM results WHERE campaign_id='{campaign}'")}
        assert {st for s, st in statuses if s == "ts-sbx-02"} == {"fail"}
        assert {st for s, st in statuses if s == "ts-sbx-01"} <= {"pass", "skip"}
        assert ("ts-sbx-01", "pass") in statuses
    finally:
        stop_local_sandboxes(lab_yml)
