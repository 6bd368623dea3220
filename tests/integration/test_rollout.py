"""Staged rollout to production, end to end: real Ansible (one run per wave), real health suites,
real rollback. What happened on each production host is read from the host itself (its own
deploy log, install record and files under its root), never from the orchestrator's records.

Lab 1 (6 hosts, waves 1 host / 50% / 100%): build A rolls out completely; build C fails the
production health suite, halts in wave 1, is rolled back, and no later host is touched. Each
rollout leaves exactly its sequence of entries in the audit log, which still verifies.
Lab 2 (4 hosts): a rollout killed with SIGKILL mid-wave finishes with `lab rollout resume`, each host
deployed once; a rollout killed mid-wave and then aborted rolls its current wave back; C again,
on hosts that all have the municipal roster C needs but one: that host fails within the last
wave's threshold and is rolled back on its own (killed mid-rollback and resumed), the others
keep C.

Promotions into production are recorded directly in the store: what is tested here is the
rollout, which only needs the record (the promotion gate has its own tests).
"""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from lab.config.store_location import StoreLocation
from lab.decision.records import record_promotion
from lab.evidence import audit
from lab.evidence.store import Store
from lab.model import Campaign, CampaignState
from lab.sandboxes.lease import lease
from tests.support.labfiles import copy_default_lab, lab_command, run_lab, set_rollout, stop_local_sandboxes

pytestmark = pytest.mark.integration

A, C = "care-planner@2.0.0", "care-planner@2.2.0"
# The tests of a lab build on one another, in order; run alone, a later one skips and says so.
WHOLE_MODULE = "; run the whole module: pytest tests/integration/test_rollout.py"
WAVES = """rollout:
  group: production
  health_suite: production-health
  forks: 8
  waves:
    - {name: first, hosts: 1}
    - {name: half, hosts: 50%}
    - {name: all, hosts: 100%, max_failures: 1}
"""


def production_lab(root: Path, hosts: int, store: str | None = None) -> Path:
    """A copy of the default lab with ``hosts`` production hosts and three waves, A and C built
    and promoted into production, the production hosts provisioned; its store the PostgreSQL
    ``store`` (a DSN, as lab.yml's ``store:``) when given, else SQLite in its state_dir."""
    lab_yml = copy_default_lab(root, sandboxes=1)
    if store is not None:
        with lab_yml.open("a") as handle:
            handle.write(f"store: {store}\n")
    inventory = root / "inventory" / "hosts.yml"
    kept = [line for line in inventory.read_text().splitlines()
            if not (m := re.match(r"\s+prod-ts-(\d+):", line)) or int(m.group(1)) <= hosts]
    inventory.write_text("\n".join(kept) + "\n")
    set_rollout(root, WAVES)
    for ref in (A, C):
        built = run_lab(lab_yml, "build", ref)
        assert built.returncode == 0, built.stderr
    promote_to_production(root, location=None if store is None else StoreLocation(dsn=store))
    up = run_lab(lab_yml, "production", "up")
    assert up.returncode == 0, up.stdout + up.stderr
    assert f"production: {hosts} host(s) provisioned, 0 already up" in up.stdout
    return lab_yml


def promote_to_production(root: Path, versions: tuple[str, ...] = ("2.0.0", "2.2.0"),
                          location: StoreLocation | None = None) -> None:
    store = Store(location or root / ".lab" / "lab.sqlite3")
    try:
        for version in versions:
            build = store.build("care-planner", version)
            assert build is not None
            evidence = Campaign(f"test-{version}", build.product, build.version, build.digest, CampaignState.FINISHED,
                                build.registered_at, build.registered_at, (), (), "lab.yml")
            assert record_promotion(store, evidence, "production", {"allowed": True, "note": "recorded by the test"})
    finally:
        store.close()


def host_root(lab_yml: Path, host: str) -> Path:
    return lab_yml.parent / ".lab" / "production" / host / "root"


def host_log(lab_yml: Path, host: str) -> list[list[str]]:
    """The host's own deploy log: [time, action, product, version-or-digest, ...] per line."""
    path = host_root(lab_yml, host) / "var" / "log" / "lab-deploy.log"
    return [line.split() for line in path.read_text().splitlines()] if path.exists() else []


def deploys(lab_yml: Path, host: str, version: str) -> list[list[str]]:
    return [entry for entry in host_log(lab_yml, host) if entry[1:4] == ["deploy", "care-planner", version]]


def install_record(lab_yml: Path, host: str) -> Path:
    """The host's own record of the care-planner it runs (written atomically by each install)."""
    return host_root(lab_yml, host) / "var" / "lib" / "lab" / "installed" / "care-planner.json"


def installed(lab_yml: Path, host: str) -> str:
    return str(json.loads(install_record(lab_yml, host).read_text())["version"])


def planner(lab_yml: Path, host: str, *args: str) -> subprocess.CompletedProcess[str]:
    """care-planner as installed on the host, run under the host's own site configuration."""
    return subprocess.run([str(host_root(lab_yml, host) / "usr" / "local" / "bin" / "care-planner"), *args],
                          capture_output=True, text=True, timeout=30, check=False)


def query(lab_yml: Path, sql: str) -> list[tuple[object, ...]]:
    db = sqlite3.connect(f"file:{lab_yml.parent / '.lab' / 'lab.sqlite3'}?mode=ro", uri=True, timeout=10)
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


def waves_of(lab_yml: Path, version: str) -> list[tuple[object, ...]]:
    """(wave, name, state, hosts) of the newest rollout of ``version``."""
    return query(lab_yml, "SELECT w.wave, w.name, w.state, group_concat(h.host, ' ') FROM rollout_waves w "
                          "JOIN rollout_hosts h ON h.rollout_id = w.rollout_id AND h.wave = w.wave "
                          "WHERE w.rollout_id = (SELECT id FROM rollouts WHERE version = "
                          f"'{version}' ORDER BY created_at DESC LIMIT 1) GROUP BY w.wave ORDER BY w.wave")


def audited(lab_yml: Path, version: str) -> list[tuple[str, str]]:
    """(kind, subject) of every audit entry of the newest rollout of ``version``, in order, the
    subject shortened to what follows the rollout id (`` wave 2 (half)`` or nothing)."""
    (rollout_id,) = query(lab_yml, f"SELECT id FROM rollouts WHERE version='{version}' ORDER BY created_at DESC "
                                   "LIMIT 1")[0]
    prefix = f"care-planner@{version} rollout {rollout_id}"
    rows = query(lab_yml, f"SELECT kind, subject FROM audit WHERE subject LIKE '{prefix}%' ORDER BY seq")
    return [(str(kind), str(subject)[len(prefix):]) for kind, subject in rows]


def snapshot(lab_yml: Path, host: str) -> tuple[str, int, list[str]]:
    """What would show any contact by a deploy: the log, the install record's mtime, the artifacts."""
    root = host_root(lab_yml, host)
    log = root / "var" / "log" / "lab-deploy.log"
    return (log.read_text() if log.exists() else "", install_record(lab_yml, host).stat().st_mtime_ns,
            sorted(p.name for p in (root / "var" / "lib" / "lab" / "artifacts").iterdir()))


def kill_when(lab_yml: Path, args: list[str], ready: Callable[[], bool]) -> None:
    """Start ``lab ARGS``, wait until ``ready()``, then SIGKILL the lab process and the Ansible run
    it started (which runs in a session of its own)."""
    proc = subprocess.Popen([*lab_command(), "--lab", str(lab_yml), *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True, env=dict(os.environ, CI="1"))
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if ready():
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the rollout ended before the kill point"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    runs = str(lab_yml.parent / ".lab" / "runs")
    for _ in range(50):  # the orphaned ansible-playbook and its workers, found by their own run directory
        found = [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit() and runs in cmdline(p)]
        if not found:
            return
        for pid in found:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.1)
    raise AssertionError("the killed rollout's Ansible run did not stop")


def cmdline(proc: Path) -> str:
    try:
        return (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
    except OSError:
        return ""


HOSTS_1 = [f"prod-ts-{i:02d}" for i in range(1, 7)]
OPEN = "2026-12-04T17:00:00Z"  # Friday 19:00 in Trondheim: production's maintenance window is open
CLOSED = "2026-12-04T10:00:00Z"  # Friday 12:00 in Trondheim: closed until 18:00
HOSTS_2 = [f"prod-ts-{i:02d}" for i in range(1, 5)]


@pytest.fixture(scope="module", autouse=True)
def open_window() -> Iterator[None]:
    """Waves start only inside the agreement's maintenance window: every rollout here runs at a
    time it is open ($LAB_NOW, which every `lab` process of this module inherits)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LAB_NOW", OPEN)
        yield


@pytest.fixture(scope="module")
def lab1(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    lab_yml = production_lab(tmp_path_factory.mktemp("rollout") / "lab", hosts=6)
    yield lab_yml
    stop_local_sandboxes(lab_yml)


@pytest.fixture(scope="module")
def lab2(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    lab_yml = production_lab(tmp_path_factory.mktemp("rollout-crash") / "lab", hosts=4)
    yield lab_yml
    stop_local_sandboxes(lab_yml)


def test_a_build_without_a_promotion_into_production_is_refused(tmp_path: Path) -> None:
    lab_yml = copy_default_lab(tmp_path / "lab", sandboxes=1)
    assert run_lab(lab_yml, "build", A).returncode == 0
    result = run_lab(lab_yml, "rollout", "start", A)
    assert result.returncode == 1
    assert f"lab: {A} has no recorded promotion into production; it may not be rolled out" in result.stderr
    promote_to_production(tmp_path / "lab", ("2.0.0",))
    closed = run_lab(lab_yml, "rollout", "start", A, "--now", CLOSED)  # promoted, but outside the maintenance window
    assert closed.returncode == 1
    assert closed.stderr == (
        f"lab: {A} may not be rolled out to production now: closed at 2026-12-04 11:00 Europe/Oslo (Fri) "
        "(outside weekdays 18:00-06:00 Europe/Oslo; weekends 00:00-24:00 Europe/Oslo); next open window: "
        "2026-12-04 18:00 Europe/Oslo (Fri) (2026-12-04T17:00:00+00:00)\n")
    result = run_lab(lab_yml, "rollout", "start", A)  # promoted, but production was never provisioned: infrastructure
    assert result.returncode == 3
    assert "production host(s) prod-ts-01, prod-ts-02, prod-ts-03, prod-ts-04, prod-ts-05 and 19 more are not " \
           "provisioned; run `lab production up`" in result.stderr
    assert not (tmp_path / "lab" / ".lab" / "production").exists()
    assert query(lab_yml, "SELECT count(*) FROM rollouts") == [(0,)]


def test_build_a_rolls_out_wave_by_wave_to_every_host(lab1: Path) -> None:
    result = run_lab(lab1, "rollout", "start", A)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{A} (sha256 " in result.stdout and "to production: COMPLETE" in result.stdout
    assert waves_of(lab1, "2.0.0") == [(1, "first", "done", "prod-ts-01"), (2, "half", "done", "prod-ts-02 prod-ts-03"),
                                      (3, "all", "done", "prod-ts-04 prod-ts-05 prod-ts-06")]
    (rollout_id,) = query(lab1, "SELECT id FROM rollouts WHERE version='2.0.0'")[0]
    (digest,) = query(lab1, "SELECT digest FROM builds WHERE version='2.0.0'")[0]
    wave_of = {"prod-ts-01": 1, "prod-ts-02": 2, "prod-ts-03": 2, "prod-ts-04": 3, "prod-ts-05": 3, "prod-ts-06": 3}
    for host in HOSTS_1:  # each host got exactly A, once, in its own wave, with the registered digest
        (entry,) = deploys(lab1, host, "2.0.0")
        assert entry[4:] == [str(digest), f"rollout={rollout_id}", f"wave={wave_of[host]}"]
        assert installed(lab1, host) == "2.0.0"
        assert planner(lab1, host, "--version").stdout == "care-planner 2.0.0\n"
    stamps = {n: [deploys(lab1, h, "2.0.0")[0][0] for h in HOSTS_1 if wave_of[h] == n] for n in (1, 2, 3)}
    assert max(stamps[1]) < min(stamps[2]) and max(stamps[2]) < min(stamps[3])  # by the hosts' own clocks
    runs = lab1.parent / ".lab" / "runs" / str(rollout_id)
    assert [len(list((runs / f"wave-{n}").glob("deploy-*"))) for n in (1, 2, 3)] == [1, 1, 1]  # one run per wave
    status = run_lab(lab1, "production", "status")
    assert status.returncode == 0 and status.stdout.count(" up ") == 6
    assert status.stdout.count("runs: care-planner 2.0.0") == 6
    up = run_lab(lab1, "production", "up")  # provisioned once: nothing happens again
    assert up.returncode == 0 and "production: 0 host(s) provisioned, 6 already up" in up.stdout
    assert all(len(deploys(lab1, host, "2.0.0")) == 1 for host in HOSTS_1)
    waves = [" wave 1 (first)", " wave 2 (half)", " wave 3 (all)"]
    assert audited(lab1, "2.0.0") == [("rollout-start", ""), *[(kind, wave) for wave in waves for kind in (
        "rollout-wave-start", "rollout-wave-done")], ("rollout-complete", "")]
    start = json.loads(str(query(lab1, "SELECT payload FROM audit WHERE kind='rollout-start'")[0][0]))
    assert (start["build"], start["digest"], start["stage"], start["settings"]) == (A, digest, "production",
                                                                                    "agreement.yml")
    assert [(w["name"], w["hosts"], w["threshold"]) for w in start["waves"]] == [
        ("first", ["prod-ts-01"], "at most 0 of 1 host(s) may fail"),
        ("half", ["prod-ts-02", "prod-ts-03"], "at most 0 of 2 host(s) may fail"),
        ("all", ["prod-ts-04", "prod-ts-05", "prod-ts-06"], "at most 1 of 3 host(s) may fail")]
    done = json.loads(str(query(lab1, "SELECT payload FROM audit WHERE kind='rollout-wave-done' ORDER BY seq")[2][0]))
    assert (done["hosts"], done["checks"], done["rolled_back"]) == ({"healthy": 3}, {"pass": 12}, [])


def test_build_c_halts_in_wave_1_is_rolled_back_and_later_waves_are_untouched(lab1: Path) -> None:
    if waves_of(lab1, "2.0.0") == [] or installed(lab1, "prod-ts-06") != "2.0.0":
        pytest.skip(f"needs build A rolled out by the test before it{WHOLE_MODULE}")
    before = {host: snapshot(lab1, host) for host in HOSTS_1[1:]}
    result = run_lab(lab1, "rollout", "start", C)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "to production: HALTED - halted in wave 1 (first)" in result.stdout
    assert "prod-ts-01 unhealthy: plans-a-route fail" in result.stdout
    assert waves_of(lab1, "2.2.0") == [(1, "first", "rolled_back", "prod-ts-01"),
                                      (2, "half", "cancelled", "prod-ts-02 prod-ts-03"),
                                      (3, "all", "cancelled", "prod-ts-04 prod-ts-05 prod-ts-06")]
    # the canary host: got C, then the rollback; it runs A again, healthy under its production profile
    actions = [entry[1:4] for entry in host_log(lab1, "prod-ts-01")]
    (digest_c,) = query(lab1, "SELECT digest FROM builds WHERE version='2.2.0'")[0]
    assert actions == [["deploy", "care-planner", "2.0.0"], ["deploy", "care-planner", "2.2.0"],
                       ["rollback", "care-planner", str(digest_c)]]
    assert host_log(lab1, "prod-ts-01")[-1][4:6] == ["->", "2.0.0"]
    assert installed(lab1, "prod-ts-01") == "2.0.0"
    assert planner(lab1, "prod-ts-01", "--version").stdout == "care-planner 2.0.0\n"
    route = planner(lab1, "prod-ts-01", "plan", "--demo")
    assert (route.returncode, route.stdout.splitlines()[0], route.stderr) == (0, "Route for team North (3 visits)", "")
    root = host_root(lab1, "prod-ts-01")
    assert "profile = production" in (root / "etc" / "care-planner" / "site.conf").read_text()
    assert "site_profile" not in (root / "opt" / "care-planner" / "care_planner.py").read_text()  # C's code is gone
    assert sorted(p.name for p in (root / "var" / "lib" / "lab" / "artifacts").iterdir()) == \
        ["care-planner-2.0.0.tar.gz"]
    health = query(lab1, "SELECT state, health FROM rollout_hosts WHERE host='prod-ts-01' AND rollout_id = "
                         "(SELECT id FROM rollouts WHERE version='2.2.0')")
    assert health[0][0] == "rolled_back" and json.loads(str(health[0][1]))["counts"] == {"pass": 4}
    # every later host: not contacted at all (same log, same install record, no copy of C)
    assert {host: snapshot(lab1, host) for host in HOSTS_1[1:]} == before
    # the audit log: the halt with the failed host and threshold, the rollback and its outcome
    entries = [("rollout-start", ""), ("rollout-wave-start", " wave 1 (first)"),
               ("rollout-wave-halted", " wave 1 (first)"), ("rollout-rollback", " wave 1 (first)"),
               ("rollout-halted", "")]
    assert audited(lab1, "2.2.0") == entries
    halted, rollback = (json.loads(str(row[0])) for row in query(
        lab1, "SELECT payload FROM audit WHERE kind IN ('rollout-wave-halted', 'rollout-rollback') ORDER BY seq"))
    assert (halted["threshold"], [f["host"] for f in halted["failed"]]) == ("at most 0 of 1 host(s) may fail",
                                                                           ["prod-ts-01"])
    assert halted["failed"][0]["detail"].startswith("unhealthy: plans-a-route fail")
    assert (rollback["hosts"], rollback["rolled_back"], rollback["outcome"], rollback["why"]) == (
        ["prod-ts-01"], ["prod-ts-01"], "rolled back", "the wave failed over its threshold")
    # asking again repeats the outcome and touches nothing (and audits nothing)
    again = run_lab(lab1, "rollout", "start", C)
    assert again.returncode == 1 and "HALTED" in again.stdout
    assert [entry[1:4] for entry in host_log(lab1, "prod-ts-01")] == actions
    assert audited(lab1, "2.2.0") == entries
    shown = run_lab(lab1, "audit", "show", "--kind", "rollout-halted")
    (line,) = shown.stdout.splitlines()
    assert line.split()[2:] == ["rollout-halted", C, "rollout", str(query(
        lab1, "SELECT id FROM rollouts WHERE version='2.2.0'")[0][0])]
    verified = run_lab(lab1, "audit", "verify")
    # 15: the setup's two promotions, then the rollouts' own 13
    assert verified.returncode == 0 and verified.stdout.startswith("audit log intact: 15 entries, head ")


def test_a_tampered_rollout_entry_is_detected(lab1: Path, tmp_path: Path) -> None:
    if not query(lab1, "SELECT seq FROM audit WHERE kind='rollout-halted'"):
        pytest.skip(f"needs build C's rollout halted by the test before it{WHOLE_MODULE}")
    copy = tmp_path / "lab.sqlite3"
    source = sqlite3.connect(lab1.parent / ".lab" / "lab.sqlite3")
    target = sqlite3.connect(copy, isolation_level=None)
    source.backup(target)
    source.close()
    (seq,) = target.execute("SELECT seq FROM audit WHERE kind='rollout-wave-halted'").fetchone()
    target.execute("DROP TRIGGER audit_no_update")
    target.execute("UPDATE audit SET payload = replace(payload, 'prod-ts-01', 'prod-ts-02') WHERE seq = ?", (seq,))
    target.close()
    store = Store(copy)
    try:
        check = audit.verify(store)
    finally:
        store.close()
    assert (check.ok, check.first_bad, check.problem) == (False, seq, f"entry {seq} does not match its hash: it "
                                                                      "was edited")


def test_one_rollout_at_a_time_holds_production(lab1: Path) -> None:
    with lease(lab1.parent / ".lab", "production", "lab rollout care-planner@9.9.9", 1):
        busy = run_lab(lab1, "rollout", "start", C)
    assert busy.returncode == 3
    assert "production is busy: lab rollout care-planner@9.9.9 holds it" in busy.stderr


def test_resume_after_kill_9_mid_wave_deploys_each_host_once(lab2: Path) -> None:
    # killed while wave 2's Ansible run is under way: its host already has A, the store does not know yet.
    # "Has A" is the host's install record, not its log line: the install writes the line first, and a
    # loaded machine (the suite runs on every core) can be caught between the two.
    kill_when(lab2, ["rollout", "start", A],
              lambda: install_record(lab2, "prod-ts-02").exists() and installed(lab2, "prod-ts-02") == "2.0.0")
    assert query(lab2, "SELECT state FROM rollout_waves WHERE wave=2") == [("deploying",)]
    assert query(lab2, "SELECT state FROM rollouts") == [("running",)]
    blocked = run_lab(lab2, "rollout", "start", A)  # a second rollout of the product is refused while one is unfinished
    assert blocked.returncode == 2 and f"`lab rollout resume {A}` continues it" in blocked.stderr
    resumed = run_lab(lab2, "rollout", "resume", A)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "to production: COMPLETE" in resumed.stdout
    assert [row[2] for row in waves_of(lab2, "2.0.0")] == ["done", "done", "done"]
    for host in HOSTS_2:
        assert len(deploys(lab2, host, "2.0.0")) == 1, host_log(lab2, host)
        assert installed(lab2, host) == "2.0.0"


def test_abort_rolls_back_the_current_wave(lab2: Path) -> None:
    if [row[2] for row in waves_of(lab2, "2.0.0")] != ["done", "done", "done"]:
        pytest.skip(f"needs build A rolled out by the test before it{WHOLE_MODULE}")
    before = {host: snapshot(lab2, host) for host in HOSTS_2[1:]}
    kill_when(lab2, ["rollout", "start", C], lambda: bool(deploys(lab2, "prod-ts-01", "2.2.0")))
    assert [row[2] for row in waves_of(lab2, "2.2.0")] == ["deploying", "planned", "planned"]
    aborted = run_lab(lab2, "rollout", "abort", C)
    assert aborted.returncode == 0, aborted.stdout + aborted.stderr
    assert "to production: ABORTED - aborted by the operator during wave 1 (first)" in aborted.stdout
    assert [row[2] for row in waves_of(lab2, "2.2.0")] == ["rolled_back", "cancelled", "cancelled"]
    assert installed(lab2, "prod-ts-01") == "2.0.0"
    route = planner(lab2, "prod-ts-01", "plan", "--demo")
    assert (route.returncode, route.stdout.splitlines()[0], route.stderr) == (0, "Route for team North (3 visits)", "")
    assert [entry[1:4] for entry in host_log(lab2, "prod-ts-01")][-2:] == [
        ["deploy", "care-planner", "2.2.0"], ["rollback", "care-planner", str(query(
            lab2, "SELECT digest FROM builds WHERE version='2.2.0'")[0][0])]]
    assert {host: snapshot(lab2, host) for host in HOSTS_2[1:]} == before
    ended = run_lab(lab2, "rollout", "resume", C)
    assert ended.returncode == 2 and "has ended (aborted): nothing to resume or abort" in ended.stderr


ROSTER = {"North": [["08:00", "Aino K.", "medication"], ["09:15", "Eero L.", "shower"], ["11:00", "Sofia M.", "lunch"]]}


def test_a_failed_host_within_the_threshold_is_rolled_back_on_its_own_and_the_rollout_goes_on(lab2: Path) -> None:
    if [row[2] for row in waves_of(lab2, "2.2.0")] != ["rolled_back", "cancelled", "cancelled"]:
        pytest.skip(f"needs build C's rollout aborted by the test before it{WHOLE_MODULE}")
    for host in HOSTS_2[:3]:  # C needs the municipal roster under its production profile; prod-ts-04 lacks it
        roster = host_root(lab2, host) / "var" / "lib" / "care-planner" / "roster.json"
        roster.parent.mkdir(parents=True, exist_ok=True)
        roster.write_text(json.dumps(ROSTER))
    (digest_c,) = query(lab2, "SELECT digest FROM builds WHERE version='2.2.0'")[0]
    # killed once prod-ts-04 has been rolled back, before the lab recorded it: resume must finish the step
    kill_when(lab2, ["rollout", "start", C],
              lambda: host_log(lab2, "prod-ts-04")[-1][1:4] == ["rollback", "care-planner", str(digest_c)])
    assert [row[2] for row in waves_of(lab2, "2.2.0")] == ["done", "done", "rolling_back_hosts"]
    assert query(lab2, "SELECT host, state FROM rollout_hosts WHERE wave=3 AND rollout_id = (SELECT id FROM "
                       "rollouts WHERE version='2.2.0' ORDER BY created_at DESC LIMIT 1) ORDER BY host") == [
        ("prod-ts-03", "healthy"), ("prod-ts-04", "rolling_back")]
    resumed = run_lab(lab2, "rollout", "resume", C)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "[wave 3/3] done: 1/2 healthy, 1 failed host rolled back: prod-ts-04" in resumed.stdout
    assert "to production: COMPLETE - every wave done; 1 failed host rolled back: prod-ts-04" in resumed.stdout
    # what the hosts recorded: prod-ts-04 got C, failed, and runs A again (one rollback despite the kill)
    assert [entry[1:4] for entry in host_log(lab2, "prod-ts-04")] == [
        ["deploy", "care-planner", "2.0.0"], ["deploy", "care-planner", "2.2.0"],
        ["rollback", "care-planner", str(digest_c)]]
    assert host_log(lab2, "prod-ts-04")[-1][4:6] == ["->", "2.0.0"]
    assert installed(lab2, "prod-ts-04") == "2.0.0"
    assert planner(lab2, "prod-ts-04", "plan", "--demo").stdout.startswith("Route for team North (3 visits)")
    for host, wave in (("prod-ts-01", 1), ("prod-ts-02", 2), ("prod-ts-03", 3)):  # the others run C, with their roster
        assert installed(lab2, host) == "2.2.0"
        assert deploys(lab2, host, "2.2.0")[-1][-1] == f"wave={wave}"
        assert planner(lab2, host, "--version").stdout == "care-planner 2.2.0\n"
        route = planner(lab2, host, "plan", "--demo")
        assert (route.returncode, route.stdout.splitlines()[0], route.stderr) == (0, "Route for team North (3 visits)",
                                                                                  "")
    status = run_lab(lab2, "rollout", "status", C)
    assert status.returncode == 0
    assert "  wave 3 all        done                 2 host(s): 1 healthy, 1 rolled_back" in status.stdout
    assert "      prod-ts-04: rolled_back: failed (unhealthy: plans-a-route fail" in status.stdout
    assert "rolled back on its own; back on 2.0.0: healthy: 4 check(s) of production-health passed" in status.stdout
    assert audited(lab2, "2.2.0") == [
        ("rollout-start", ""), ("rollout-wave-start", " wave 1 (first)"), ("rollout-wave-done", " wave 1 (first)"),
        ("rollout-wave-start", " wave 2 (half)"), ("rollout-wave-done", " wave 2 (half)"),
        ("rollout-wave-start", " wave 3 (all)"), ("rollout-resume", ""), ("rollout-rollback", " wave 3 (all)"),
        ("rollout-wave-done", " wave 3 (all)"), ("rollout-complete", "")]
    verified = run_lab(lab2, "audit", "verify")
    assert verified.returncode == 0 and verified.stdout.startswith("audit log intact: ")
