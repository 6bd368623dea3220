"""The report's promotion path: every stage of the agreement, the decision now for the next one,
the build's signed records and its production rollout; kept current by promote, approve and waive."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from lxml import html

from lab.decision.records import promotion
from lab.reports import refresh
from lab.signoff import approvals, signing
from lab.util.canonical import canonical_bytes
from lab.util.clock import parse_instant
from tests.support.lab_fixtures import BUILD, NOT_SEALED, PRINCIPALS, T0, T_OPEN, SeededLab, allowed_signers_text
from tests.support.labfiles import CliResult

Cli = Callable[..., CliResult]
KARI, LARS, MALLORY = PRINCIPALS["kari"], PRINCIPALS["lars"], PRINCIPALS["mallory"]
HOSTILE_PRINCIPAL = "<script>alert('p')</script>&\"@evil.example"
HOSTILE_REASON = "<img src=x onerror=alert(1)> ]]> \x00 NUL \x1b[31mred\x1b[0m & \"quotes\""


def table(page: html.HtmlElement, css_class: str) -> list[list[str]]:
    """The text of every data cell of the table of ``css_class``, row by row (header row left out)."""
    found = page.find_class(css_class)
    assert len(found) == 1, f"{len(found)} table(s) of class {css_class}"
    return [[" ".join("".join(td.itertext()).split()) for td in tr.findall("td")]
            for tr in found[0].findall("tr") if tr.findall("td")]


def read_page(path: Path) -> html.HtmlElement:
    return html.fromstring(path.read_text(encoding="utf-8"))


def refreshed_line(seeded: SeededLab) -> str:
    return f"report refreshed: {seeded.config.reports_dir / seeded.campaign.id}.html (and .junit.xml, .json)\n"


def test_the_path_follows_the_build_from_lab_to_production(seeded: SeededLab, keys: dict[str, Path],
                                                           lab_cli: Cli) -> None:
    report = seeded.config.reports_dir / f"{seeded.campaign.id}.html"
    campaign = f"campaign {seeded.campaign.id}"
    registered = ["lab", "registered", seeded.build.registered_at, "lab build"]
    in_pilot = ["pilot", "promoted", "2026-12-01T10:00:00+00:00", campaign]
    assert not report.exists()

    pilot = seeded.cli(lab_cli, "promote", BUILD, "--to", "pilot", "--now", T0)
    assert pilot.code == 0, pilot.err
    assert pilot.out.endswith(refreshed_line(seeded))
    page = read_page(report)
    assert table(page, "path") == [registered, in_pilot, ["production", "blocked now", "-", campaign]]
    gate = {row[0]: row[1:] for row in table(page, "gate")}
    assert gate["approvals"] == ["not met", "0 of 2 distinct approver(s) from role change-board: none"]
    assert gate["soak"] == ["not met", "in pilot for 0s since 2026-12-01T10:00:00+00:00, 2d required: soak ends at "
                                       "2026-12-03T10:00:00+00:00"]
    assert gate["mandatory checks"] == ["met", "30 mandatory check(s), none failed"]
    assert page.find_class("next-open")[0].text_content() == "Next open window: 2026-12-01T17:00:00+00:00"
    headline = page.find_class("headline")[0].text_content()  # where the build stands now, not the pilot gate
    assert headline.startswith("\u26a0 IN PILOT, not yet promotable to production: "), headline
    assert page.find_class("standing")[0].get("class") == "standing warn"
    assert page.find("head/title").text_content().startswith("\u26a0 IN PILOT, not yet promotable to production")
    assert page.find_class("signed") == [] and "No approval, rejection or waiver recorded." in page.text_content()

    for name in ("kari", "lars"):
        approved = seeded.cli(lab_cli, "approve", BUILD, "--to", "production", "--key", str(keys[name]), "--now", T0)
        assert approved.code == 0, approved.err
        assert approved.out.endswith(refreshed_line(seeded))
    page = read_page(report)
    assert table(page, "signed") == [
        ["1", "approval", KARI, "production", "2026-12-08T10:00:00+00:00", "verified", "-"],
        ["2", "approval", LARS, "production", "2026-12-08T10:00:00+00:00", "verified", "-"]]
    gate = {row[0]: row[1:] for row in table(page, "gate")}
    assert gate["approvals"] == ["met", f"2 of 2 distinct approver(s) from role change-board: {KARI} (until "
                                        f"2026-12-08T10:00:00+00:00), {LARS} (until 2026-12-08T10:00:00+00:00)"]
    assert page.find_class("signers-override") == []

    before = report.read_text()
    production = seeded.cli(lab_cli, "promote", BUILD, "--to", "production", "--now", T_OPEN)
    assert production.code == 0, production.err
    assert production.out.endswith(f"{BUILD} promoted to production (evidence: {campaign})\n"
                                   + NOT_SEALED + refreshed_line(seeded))
    assert report.read_text() != before  # `lab promote` re-wrote the file on disk
    page = read_page(report)
    assert table(page, "path") == [registered, in_pilot,
                                   ["production", "promoted", "2026-12-04T17:00:00+00:00", campaign]]
    assert table(page, "gate")[0] == ["previous stage", "met", f"in lab since {seeded.build.registered_at}"]
    assert page.find_class("next-open") == []  # in every stage: the campaign's own gate (into pilot) is shown
    assert page.find_class("headline")[0].text_content() == "\u25b6 IN PRODUCTION: promoted, not rolled out yet"
    assert "No rollout of this build recorded." in page.text_content()

    exported = json.loads((seeded.config.reports_dir / f"{seeded.campaign.id}.json").read_text())
    assert exported["verdict"]["stage"] == "pilot" and exported["verdict"]["allowed"] is True
    path = exported["promotion_path"]
    assert [(s["stage"], s["status"], s["at"], s["campaign"], s["decision"]) for s in path["stages"]] == [
        ("lab", "registered", seeded.build.registered_at, None, None),
        ("pilot", "promoted", "2026-12-01T10:00:00+00:00", seeded.campaign.id, None),
        ("production", "promoted", "2026-12-04T17:00:00+00:00", seeded.campaign.id, None)]
    assert [(s["record_id"], s["principal"], s["verified"]) for s in path["signed"]] == [(1, KARI, True),
                                                                                        (2, LARS, True)]
    assert path["evaluated_at"] == "2026-12-04T17:00:00+00:00" and path["rollout"] is None
    assert path["allowed_signers"]["override"] is False


def test_unverifiable_records_are_marked_and_hostile_text_is_escaped(seeded: SeededLab, keys: dict[str, Path]) -> None:
    at = parse_instant(T0)
    expires = at + timedelta(days=7)
    # Signed with mallory's key, which allowed_signers does not list: recorded as given, never verified.
    approval = approvals.approval_payload(seeded.build, "production", "0" * 64, seeded.campaign.id, expires,
                                          HOSTILE_PRINCIPAL, at, False)
    approvals.record(seeded.store, seeded.build, approval, signing.sign(canonical_bytes(approval), keys["mallory"]),
                     HOSTILE_PRINCIPAL, at)
    target = ("ts-sbx-01", "portfolio-compat", "journal-health")
    waiver = approvals.waiver_payload(seeded.build, target, HOSTILE_REASON, expires, MALLORY, at)
    approvals.record(seeded.store, seeded.build, waiver, signing.sign(canonical_bytes(waiver), keys["mallory"]),
                     MALLORY, at)

    paths = refresh(seeded.config, seeded.store, seeded.build, at)
    assert [p.name for p in paths] == [f"{seeded.campaign.id}{s}" for s in (".html", ".junit.xml", ".json")]
    text = paths[0].read_text()
    assert "<script" not in text and "<img" not in text and "\x00" not in text and "\x1b" not in text
    assert "&lt;script&gt;alert(&#39;p&#39;)&lt;/script&gt;&amp;&#34;@evil.example" in text
    rows = table(read_page(paths[0]), "signed")
    assert [row[:5] for row in rows] == [
        ["1", "approval", HOSTILE_PRINCIPAL, "production", "2026-12-08T10:00:00+00:00"],
        ["2", "waiver", MALLORY, "-", "2026-12-08T10:00:00+00:00"]]
    assert rows[0][5].startswith(f"not verified: signature does not verify as {HOSTILE_PRINCIPAL} against "
                                 "allowed_signers: ")
    assert rows[1][5].startswith(f"not verified: signature does not verify as {MALLORY} against allowed_signers: ")
    # control bytes shown as \xNN, markup as text
    assert rows[1][6] == (r'ts-sbx-01/portfolio-compat/journal-health: <img src=x onerror=alert(1)> ]]> \x00 NUL '
                          r'\x1b[31mred\x1b[0m & "quotes"')
    signed = json.loads(paths[2].read_text())["promotion_path"]["signed"]
    assert [(s["kind"], s["principal"], s["verified"], s["waives"], s["reason"]) for s in signed] == [
        ("approval", HOSTILE_PRINCIPAL, False, None, None),
        ("waiver", MALLORY, False, "ts-sbx-01/portfolio-compat/journal-health", HOSTILE_REASON.strip())]


def test_an_override_of_the_approver_keys_is_noted_with_its_file(seeded: SeededLab, keys: dict[str, Path],
                                                                lab_cli: Cli, tmp_path: Path) -> None:
    (seeded.root / "keys" / "allowed_signers").write_text("")  # the agreement lists no approver
    override = tmp_path / "demo_signers"
    override.write_text(allowed_signers_text(keys, ("kari",)))
    approved = seeded.cli(lab_cli, "--allowed-signers", str(override), "approve", BUILD, "--to", "production",
                          "--key", str(keys["kari"]), "--now", T0)
    assert approved.code == 0, approved.err
    assert approved.out.endswith(refreshed_line(seeded))
    report = seeded.config.reports_dir / f"{seeded.campaign.id}.html"
    page = read_page(report)
    assert [n.text_content() for n in page.find_class("signers-override")] == [
        f"Signatures in this report were checked with approver keys: {override.resolve()} (--allowed-signers / "
        "$LAB_ALLOWED_SIGNERS override; not the agreement's file)"]
    assert table(page, "signed")[0][5] == "verified"
    # Written again with the agreement's own (empty) file: no note, and the approval no longer verifies.
    assert seeded.cli(lab_cli, "report", seeded.campaign.id).code == 0
    page = read_page(report)
    assert page.find_class("signers-override") == []
    assert table(page, "signed")[0][5].startswith("not verified: ")


def test_the_latest_rollout_of_the_build_is_shown_compactly(seeded: SeededLab) -> None:
    b = seeded.build
    with seeded.store.transaction() as db:  # a canary wave that halted and was rolled back, as the store keeps it
        db.execute("INSERT INTO rollouts VALUES (?,?,?,?,?,?,?,?,?,?)",
                   ("r1", b.product, b.version, b.digest, "production", "halted", T0, T0, T0,
                    "halted in wave 1 (canary): 1 of 1 host(s) failed <health>"))
        for index, name, state, hosts in ((1, "canary", "rolled_back", ("prod-ts-01",)),
                                          (2, "early", "cancelled", ("prod-ts-02", "prod-ts-03"))):
            db.execute("INSERT INTO rollout_waves VALUES (?,?,?,?,?,?,?,NULL,NULL,NULL,?)",
                       ("r1", index, name, state, 0, None, 0, "rolled back" if index == 1 else ""))
            db.executemany("INSERT INTO rollout_hosts VALUES (?,?,?,?,?,NULL,NULL,NULL,'',?)",
                           [("r1", index, host, n, state, T0) for n, host in enumerate(hosts)])
    paths = refresh(seeded.config, seeded.store, seeded.build, parse_instant(T0))
    page = read_page(paths[0])
    assert ("Rollout r1 into production: halted - halted in wave 1 (canary): 1 of 1 host(s) failed <health>"
            in " ".join(page.text_content().split()))
    assert page.find_class("headline")[0].text_content() == (
        "\u2716 HALTED in production rollout, wave 1 canary, rolled back; 2 hosts kept no earlier build")
    assert page.find_class("standing")[0].get("class") == "standing bad"
    assert table(page, "rollout") == [["1 canary", "1: prod-ts-01", "rolled back", "rolled back"],
                                      ["2 early", "2: prod-ts-02, prod-ts-03", "cancelled", ""]]
    assert json.loads(paths[2].read_text())["promotion_path"]["rollout"] == {
        "id": "r1", "state": "halted", "detail": "halted in wave 1 (canary): 1 of 1 host(s) failed <health>",
        "created_at": T0, "finished_at": T0,
        "waves": [{"wave": 1, "name": "canary", "state": "rolled_back", "hosts": ["prod-ts-01"],
                   "detail": "rolled back"},
                  {"wave": 2, "name": "early", "state": "cancelled", "hosts": ["prod-ts-02", "prod-ts-03"],
                   "detail": ""}]}


def test_a_report_that_cannot_be_written_does_not_undo_the_promotion(seeded: SeededLab, lab_cli: Cli) -> None:
    seeded.config.reports_dir.write_text("not a directory")
    promoted = seeded.cli(lab_cli, "promote", BUILD, "--to", "pilot", "--now", T0)
    assert promoted.code == 0
    assert promoted.out.endswith(f"{BUILD} promoted to pilot (evidence: campaign {seeded.campaign.id})\n"
                                 + NOT_SEALED)
    assert promoted.err.startswith(f"lab: the reports of {BUILD} were not refreshed ([Errno 17] File exists: ")
    assert promotion(seeded.store, "care-planner", "2.0.0", "pilot") is not None


def test_lab_show_prints_the_path_in_the_terminal(seeded: SeededLab, keys: dict[str, Path], lab_cli: Cli,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    assert seeded.cli(lab_cli, "promote", BUILD, "--to", "pilot", "--now", T0).code == 0
    assert seeded.cli(lab_cli, "approve", BUILD, "--to", "production", "--key", str(keys["kari"]),
                      "--now", T0).code == 0
    assert seeded.cli(lab_cli, "approve", BUILD, "--to", "production", "--key", str(keys["mallory"]),
                      "--as", "mallory@example.org", "--now", T0).code == 2  # unlisted: refused, nothing recorded
    monkeypatch.setenv("LAB_NOW", T0)
    shown = seeded.cli(lab_cli, "show", "latest")
    assert shown.code == 0, shown.err
    path = shown.out[shown.out.index("promotion path"):]
    assert path == (
        "promotion path (as of 2026-12-01T10:00:00+00:00):\n"
        f"  lab          registered {seeded.build.registered_at}\n"
        f"  pilot        promoted 2026-12-01T10:00:00+00:00 on campaign {seeded.campaign.id}\n"
        "  production   next: BLOCKED (in pilot for 0s since 2026-12-01T10:00:00+00:00, 2d required: soak ends at "
        "2026-12-03T10:00:00+00:00; 1 of 2 distinct approver(s) from role change-board: "
        f"{KARI} (until 2026-12-08T10:00:00+00:00); closed at 2026-12-01 11:00 Europe/Oslo (Tue) (outside "
        "weekdays 18:00-06:00 Europe/Oslo; weekends 00:00-24:00 Europe/Oslo); next open window: "
        "2026-12-01 18:00 Europe/Oslo (Tue) (2026-12-01T17:00:00+00:00))\n"
        f"  #1 approval production by {KARI}, until 2026-12-08T10:00:00+00:00: verified\n")
