"""The demo, end to end, as a newcomer runs it: real Ansible, real processes, real reports."""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from lxml import etree, html

from lab.campaign.builds import sha256_file
from tests.support.chromium import browser, chromium_binary, load, pdf_pages
from tests.support.labfiles import (
    JUNIT_XSD,
    REPO,
    copy_default_lab,
    lab_command,
    needs_junit_xsd,
    processes_naming,
    stop_local_sandboxes,
)

pytestmark = pytest.mark.integration
CHROMIUM = chromium_binary()
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed: `apt-get install chromium` (.ci/run installs it), "
    "then run tests/integration/test_demo.py")
C_HEALTH_CHECK = "plans-a-route"  # the production health check build C fails under the site profile

HEADLINES = {  # where each build stands at the end of the story: the page's first line and its <title>
    "2.0.0": "\u2714 IN PRODUCTION on 24 of 24 hosts",
    "2.1.0": "\u2716 BLOCKED from pilot: 4 checks failed on 3 sandboxes",
    "2.2.0": "\u2716 HALTED in production rollout, wave 1 canary, rolled back; 23 hosts kept 2.0.0",
}
COMPAT_FAILURES = {"journal-health", "journal-records", "journal-selftest", "carefmt-api-level"}


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, subprocess.CompletedProcess[str]]]:
    """Run scripts/demo.sh in a fresh copy of the repository's default lab."""
    root = tmp_path_factory.mktemp("demo")
    lab_yml = copy_default_lab(root)
    shutil.copytree(REPO / "scripts", root / "scripts")
    (root / "reports").mkdir()
    env = dict(os.environ, CI="1", PATH=f"{Path(lab_command()[0]).parent}:{os.environ['PATH']}")
    result = subprocess.run(["bash", str(root / "scripts" / "demo.sh")], cwd=root, env=env, capture_output=True,
                            text=True, timeout=900, check=False)
    yield root, result
    stop_local_sandboxes(lab_yml)


def campaigns(root: Path) -> dict[str, str]:
    db = sqlite3.connect(root / ".lab" / "lab.sqlite3")
    return {version: cid for cid, version in db.execute("SELECT id, version FROM campaigns ORDER BY created_at")}


def test_the_demo_script_succeeds_and_tells_the_story(demo: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    _, result = demo
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "care-planner@2.0.0 (sha256 " in result.stdout
    assert "care-planner@2.0.0 promoted to pilot (evidence: campaign " in result.stdout
    assert "BLOCKED from pilot" in result.stdout
    everywhere = "on ts-sbx-01, ts-sbx-02, ts-sbx-03"
    assert ("lab: care-planner@2.1.0 may not enter pilot: 12 mandatory check(s) failed: "
            f"portfolio-compat/carefmt-api-level {everywhere}; portfolio-compat/journal-health {everywhere}; "
            f"portfolio-compat/journal-records {everywhere}; portfolio-compat/journal-selftest {everywhere}\n"
            ) in result.stderr
    assert "Demo done: A went through pilot to production in waves; B is blocked in the lab; C halted in its " \
           "first\nproduction wave, which was rolled back (the other production hosts kept A)." in result.stdout


def test_the_demo_leaves_nothing_running(demo: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    root, result = demo
    assert "production: 24 local host(s) stopped; their files stay under the state dir" in result.stdout
    assert list(processes_naming(root).values()) == []
    assert (root / ".lab" / "production" / "prod-ts-01" / "root" / "var" / "log").is_dir()  # files kept


def test_builds_are_registered_with_the_artifacts_digests(demo: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    root, _ = demo
    db = sqlite3.connect(root / ".lab" / "lab.sqlite3")
    rows = dict(db.execute("SELECT version, digest FROM builds"))
    versions = ("2.0.0", "2.1.0", "2.2.0")
    assert rows == {v: sha256_file(root / "artifacts" / f"care-planner-{v}.tar.gz") for v in versions}
    deployed = {d for (d,) in db.execute("SELECT DISTINCT deployed_digest FROM steps WHERE step='deploy'")}
    assert deployed == set(rows.values())


def test_build_a_passes_everything_and_b_breaks_only_compatibility(
    demo: tuple[Path, subprocess.CompletedProcess[str]]
) -> None:
    root, _ = demo
    ids = campaigns(root)
    a = json.loads((root / "reports" / f"{ids['2.0.0']}.json").read_text())
    b = json.loads((root / "reports" / f"{ids['2.1.0']}.json").read_text())
    assert a["verdict"]["allowed"] is True and b["verdict"]["allowed"] is False
    assert a["counts"] == {"pass": 36, "fail": 0, "error": 0, "skip": 0, "flaky": 0, "waived": 0}
    failed_b = {(c["sandbox"], c["suite"], r["check_id"]) for c in b["cells"] for r in c["results"]
                if r["status"] != "pass"}
    sandboxes = ("ts-sbx-01", "ts-sbx-02", "ts-sbx-03")
    assert failed_b == {(s, "portfolio-compat", check) for s in sandboxes for check in COMPAT_FAILURES} | {
        (s, "care-planner-hygiene", "release-notes") for s in sandboxes}
    smoke_b = [r["status"] for c in b["cells"] if c["suite"] == "care-planner-smoke" for r in c["results"]]
    assert smoke_b == ["pass"] * 12


@needs_junit_xsd
def test_reports_are_written_and_valid(demo: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    root, _ = demo
    schema = etree.XMLSchema(etree.parse(str(JUNIT_XSD)))
    for version, campaign in campaigns(root).items():
        junit = etree.parse(str(root / "reports" / f"{campaign}.junit.xml"))
        assert schema.validate(junit), schema.error_log
        assert len(junit.findall("testsuite")) == 9
        page = html.fromstring((root / "reports" / f"{campaign}.html").read_text(encoding="utf-8"))
        assert page.find("head/title").text_content() == f"{HEADLINES[version]} · care-planner@{version} · lab"
    listing = subprocess.run([*lab_command(), "--lab", str(root / "lab.yml"), "list"], capture_output=True, text=True,
                             check=True).stdout
    assert listing.count("finished") == 3 and listing.count(" 9/9 ") == 3


def test_promoting_again_changes_nothing(demo: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    root, _ = demo
    again = subprocess.run([*lab_command(), "--lab", str(root / "lab.yml"), "promote", "care-planner@2.0.0",
                            "--to", "pilot"], capture_output=True, text=True, check=False)
    assert again.returncode == 0
    assert again.stdout.endswith("care-planner@2.0.0 was already promoted to pilot; nothing changed\n")
    db = sqlite3.connect(root / ".lab" / "lab.sqlite3")
    assert sorted(db.execute("SELECT version, stage FROM promotions").fetchall()) == [
        ("2.0.0", "pilot"), ("2.0.0", "production"), ("2.2.0", "pilot"), ("2.2.0", "production")]


def test_a_rolls_out_to_every_production_host_and_c_halts_in_its_first_wave(
    demo: tuple[Path, subprocess.CompletedProcess[str]]
) -> None:
    root, result = demo
    assert "rollout " in result.stdout and "care-planner@2.0.0 (sha256 " in result.stdout
    assert "to production: COMPLETE - every wave done" in result.stdout
    assert "to production: HALTED - halted in wave 1 (canary)" in result.stdout
    db = sqlite3.connect(root / ".lab" / "lab.sqlite3")
    assert db.execute("SELECT version, state FROM rollouts ORDER BY created_at").fetchall() == [
        ("2.0.0", "complete"), ("2.2.0", "halted")]
    for number in range(1, 25):  # what each production host itself recorded
        host = root / ".lab" / "production" / f"prod-ts-{number:02d}" / "root"
        assert json.loads((host / "var/lib/lab/installed/care-planner.json").read_text())["version"] == "2.0.0"
        log = (host / "var/log/lab-deploy.log").read_text()
        assert log.count(" deploy care-planner 2.0.0 ") == 1
        assert log.count(" deploy care-planner 2.2.0 ") == log.count(" rollback care-planner ") == (number == 1)


def test_production_approvals_are_signed_by_the_demo_approvers_keys(
    demo: tuple[Path, subprocess.CompletedProcess[str]]
) -> None:
    root, _ = demo
    keys = root / ".lab" / "demo-approvers"
    assert sorted(p.name for p in keys.iterdir()) == [
        "allowed_signers", "kari.nordmann", "kari.nordmann.pub", "lab-audit", "lab-audit.pub", "lars.haugen",
        "lars.haugen.pub"]
    assert (keys.stat().st_mode & 0o777, (keys / "kari.nordmann").stat().st_mode & 0o777) == (0o700, 0o600)
    db = sqlite3.connect(root / ".lab" / "lab.sqlite3")
    signed = sorted(db.execute("SELECT version, kind, principal FROM signatures"))
    assert signed == [(v, "approval", p) for v in ("2.0.0", "2.2.0")
                      for p in ("kari.nordmann@example.no", "lars.haugen@example.no")]
    promoted = [json.loads(payload) for (payload,) in db.execute(
        "SELECT payload FROM audit WHERE kind = 'promotion' OR kind = 'decision' ORDER BY seq")]
    production = [d for d in promoted if d.get("stage") == "production" and "allowed_signers" in d]
    assert production and all(d["allowed_signers"]["override"] is True for d in production)
    dump = "\n".join(db.iterdump())
    for key in ("kari.nordmann", "lab-audit"):
        assert (keys / key).read_text().split("\n")[1] not in dump  # a line of the key's base64 body


def test_the_demo_seals_its_audit_log_at_every_promotion_and_rollout_end(
    demo: tuple[Path, subprocess.CompletedProcess[str]]
) -> None:
    root, result = demo
    db = sqlite3.connect(root / ".lab" / "lab.sqlite3")
    reasons = [json.loads(payload)["reason"] for (payload,) in db.execute(
        "SELECT payload FROM audit_checkpoints ORDER BY id")]
    rollouts = dict(db.execute("SELECT version, id FROM rollouts").fetchall())
    assert reasons == ["promotion of care-planner@2.0.0 -> pilot", "promotion of care-planner@2.0.0 -> production",
                       f"rollout {rollouts['2.0.0']} complete", "promotion of care-planner@2.2.0 -> pilot",
                       "promotion of care-planner@2.2.0 -> production", f"rollout {rollouts['2.2.0']} halted"]
    assert result.stdout.count("audit chain sealed at seq ") == 6 + 1  # each seal, then the demo's lab audit verify
    verified = subprocess.run([*lab_command(), "--lab", str(root / "lab.yml"), "audit", "verify"],
                              capture_output=True, text=True, check=False,
                              env={**os.environ,
                                   "LAB_ALLOWED_SIGNERS": str(root / ".lab/demo-approvers/allowed_signers")})
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "audit chain sealed at seq " in verified.stdout and "lab-audit@example.no" in verified.stdout


def test_the_change_boards_reports_show_where_each_build_stands(
    demo: tuple[Path, subprocess.CompletedProcess[str]]
) -> None:
    root, _ = demo
    ids = campaigns(root)

    def cells(version: str, css_class: str) -> list[list[str]]:
        page = html.fromstring((root / "reports" / f"{ids[version]}.html").read_text(encoding="utf-8"))
        (found,) = page.find_class(css_class)
        return [[" ".join("".join(td.itertext()).split()) for td in tr.findall("td")]
                for tr in found.findall("tr") if tr.findall("td")]

    assert [row[:2] for row in cells("2.0.0", "path")] == [["lab", "registered"], ["pilot", "promoted"],
                                                           ["production", "promoted"]]
    assert cells("2.0.0", "rollout")[0][:3] == ["1 canary", "1: prod-ts-01", "done"]
    assert [row[2] for row in cells("2.0.0", "rollout")] == ["done"] * 4
    assert [row[2] for row in cells("2.2.0", "rollout")] == ["rolled back", "cancelled", "cancelled", "cancelled"]
    assert [row[:2] for row in cells("2.1.0", "path")] == [["lab", "registered"], ["pilot", "blocked now"],
                                                           ["production", "later"]]
    assert [row[1] for row in cells("2.0.0", "signed")] == ["approval", "approval"]


def test_the_portfolio_page_shows_every_build_where_it_stands_with_working_links(
    demo: tuple[Path, subprocess.CompletedProcess[str]]
) -> None:
    root, _ = demo
    ids = campaigns(root)
    page = html.fromstring((root / "reports" / "index.html").read_text(encoding="utf-8"))
    rows = {row.get("data-build"): row for row in page.find_class("build")}
    assert sorted(rows) == [f"care-planner@{v}" for v in ("2.0.0", "2.1.0", "2.2.0")]
    for version, headline in HEADLINES.items():
        row = rows[f"care-planner@{version}"]
        assert " ".join(row.find_class("headline")[0].text_content().split()) == headline
        assert row.find("td/a").get("href") == f"{ids[version]}.html"  # the build's page: its latest campaign
    links = {a.get("href").split("#")[0] for a in page.iter("a")}
    assert links >= {f"{cid}.html" for cid in ids.values()}
    assert all((root / "reports" / link).is_file() for link in links)
    assert len(page.findall(".//svg")) == 4 and "<script" not in (root / "reports" / "index.html").read_text()


def test_c_names_the_failed_hosts_health_checks_and_their_output(
    demo: tuple[Path, subprocess.CompletedProcess[str]]
) -> None:
    root, _ = demo
    page = html.fromstring((root / "reports" / f"{campaigns(root)['2.2.0']}.html").read_text(encoding="utf-8"))
    (host,) = page.find_class("host")
    assert host.text_content() == "prod-ts-01: rolled back"
    reasons = [li.text_content() for li in page.find_class("reasons")[0].findall("li")]
    assert len(reasons) == 1 and reasons[0].startswith(f"prod-ts-01: {C_HEALTH_CHECK} fail: ")
    evidence = host.getnext().getnext()  # the host's detail, then each failing check with its evidence
    assert f"{C_HEALTH_CHECK}" in evidence.text_content() and evidence.findall(".//pre")


@needs_chromium
def test_the_pages_as_a_person_sees_them_in_chromium(demo: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    root, _ = demo
    ids = campaigns(root)
    pages = {version: root / "reports" / f"{cid}.html" for version, cid in ids.items()}
    with browser(CHROMIUM) as chrome:
        for version, path in [*pages.items(), ("portfolio", root / "reports" / "index.html")]:
            page = load(chrome, path.as_uri())
            assert page.errors == [], (version, page.errors)
            assert page.requests == [path.as_uri()], (version, page.requests)  # the page itself, nothing else
            if version in HEADLINES:
                assert page.evaluate("document.title") == f"{HEADLINES[version]} · care-planner@{version} · lab"
                assert page.evaluate("document.querySelector('.headline').innerText") == HEADLINES[version]
        b = load(chrome, pages["2.1.0"].as_uri())
        first = b.evaluate("(() => { const row = document.querySelector('table.failing tr:nth-child(2)');"
                           " const box = row.getBoundingClientRect();"
                           " return [row.cells[0].innerText, box.top, box.bottom, window.innerHeight]; })()")
        assert first[0] == "carefmt-api-level" and 0 < first[1] < first[2] <= first[3] == 800, first
        printed = b.pdf()
        assert printed.startswith(b"%PDF") and 1 <= pdf_pages(printed) <= 3, pdf_pages(printed)
        assert re.search(rb"/MediaBox \[0 0 59[45]\.?\d* 84[12]\.?\d*\]", printed)  # A4, 210 x 297 mm
