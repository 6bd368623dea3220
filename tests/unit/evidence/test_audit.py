"""The audit log: every event is in it, hash-chained; editing, removing or reordering any entry is caught."""

from __future__ import annotations

import itertools
import json
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from lab.campaign import audit as campaign_audit
from lab.evidence import audit
from lab.evidence.audit import GENESIS, entry_hash
from lab.evidence.store import Store
from tests.support.lab_fixtures import BUILD, T0, T_OPEN, LabTemplates, SeededLab, seed_lab
from tests.support.labfiles import CliResult

Cli = Callable[..., CliResult]


@pytest.fixture
def logged(tmp_path: Path, keys: dict[str, Path], lab_cli: Cli, lab_templates: LabTemplates) -> Iterator[SeededLab]:
    """A lab whose log holds a campaign's start and finish, decisions, approvals, a waiver, promotions
    (made once per session, copied per test)."""

    def make(root: Path) -> SeededLab:
        failing = "ts-sbx-03/care-planner-smoke/plans-a-route"
        lab = seed_lab(root, keys, (failing,), lambda text: text.replace(
            "      waivers: false", "      waivers: true"))
        campaign_audit.audit_campaign_event(lab.store, lab.campaign, "start", lab.config)
        campaign_audit.audit_campaign_event(lab.store, lab.campaign, "finish")
        assert lab.cli(lab_cli, "waive", BUILD, failing, "--reason", "flaky probe", "--expires", "2026-12-31",
                       "--key", str(keys["ingrid"]), "--now", T0).code == 0
        assert lab.cli(lab_cli, "promote", BUILD, "--to", "pilot", "--now", T0).code == 0
        for name in ("kari", "lars"):
            assert lab.cli(lab_cli, "approve", BUILD, "--to", "production", "--key", str(keys[name]),
                           "--now", T0).code == 0
        assert lab.cli(lab_cli, "approve", BUILD, "--to", "production", "--key", str(keys["ingrid"]), "--reject",
                       "--now", T0).code == 0
        assert lab.cli(lab_cli, "gate", BUILD, "--to", "production", "--now", T_OPEN).code == 1
        return lab

    lab = lab_templates.copy("logged", make, tmp_path / "lab")
    yield lab
    lab.store.close()


def tamper(lab: SeededLab, *statements: str) -> None:
    """Change the store behind lab's back, as someone with the file could: drop the guards, edit rows."""
    db = sqlite3.connect(lab.config.state_dir / "lab.sqlite3", isolation_level=None)
    db.execute("DROP TRIGGER audit_no_update")
    db.execute("DROP TRIGGER audit_no_delete")
    for statement in statements:
        db.execute(statement)
    db.close()


def test_every_kind_of_event_is_logged_in_a_chain(logged: SeededLab, lab_cli: Cli) -> None:
    entries = audit.entries(logged.store)
    assert [e.kind for e in entries] == ["campaign-start", "campaign-finish", "waiver", "decision", "promotion",
                                         "approval", "approval", "rejection", "decision"]
    assert [e.seq for e in entries] == list(range(1, 10))
    assert entries[0].prev_hash == GENESIS
    for previous, entry in itertools.pairwise(entries):
        assert entry.prev_hash == previous.hash
        assert entry.hash == entry_hash(previous.hash, entry.seq, entry.time, entry.kind, entry.subject, entry.payload)
    start = entries[0].data()
    assert start["campaign"] == logged.campaign.id and "test_suites/portfolio-compat.yml" in start["files"]
    assert entries[1].data()["counts"] == {"fail": 1, "pass": 35}
    waiver = entries[2].data()
    assert (waiver["principal"], waiver["signed"]["check"], waiver["signed"]["reason"]) == (
        "ingrid.solberg@example.no", "plans-a-route", "flaky probe")
    assert waiver["signature"].startswith("-----BEGIN SSH SIGNATURE-----")
    decision = entries[-1].data()
    assert (decision["stage"], decision["allowed"], decision["evaluated_at"]) == ("production", False,
                                                                                  "2026-12-04T17:00:00+00:00")
    assert ["rejections", "not met"] == decision["clauses"][-2][:2]
    shown = logged.cli(lab_cli, "audit", "show")
    assert shown.code == 0 and len(shown.out.splitlines()) == 9
    assert shown.out.splitlines()[4].split()[2:] == ["promotion", "care-planner@2.0.0", "->", "pilot"]
    verified = logged.cli(lab_cli, "audit", "verify")
    assert (verified.code, verified.out) == (0, f"audit log intact: 9 entries, head {entries[-1].hash}\n"
                                                "audit chain not sealed: no signed checkpoint\n"
                                                "state tables agree with the log: promotions, signed records, "
                                                "rollouts\n")


def test_the_store_refuses_to_change_or_delete_entries(logged: SeededLab) -> None:
    db = sqlite3.connect(logged.config.state_dir / "lab.sqlite3")
    with pytest.raises(sqlite3.IntegrityError, match="the audit log is append-only"):
        db.execute("UPDATE audit SET subject = 'x' WHERE seq = 1")
    with pytest.raises(sqlite3.IntegrityError, match="the audit log is append-only"):
        db.execute("DELETE FROM audit WHERE seq = 9")
    with pytest.raises(sqlite3.IntegrityError, match="signed records are append-only"):
        db.execute("DELETE FROM signatures")


@pytest.mark.parametrize(("statements", "first_bad", "problem"), [
    (["UPDATE audit SET payload = replace(payload, '\"allowed\":true', '\"allowed\":false') WHERE seq = 4"], 4,
     "entry 4 does not match its hash: it was edited"),
    (["UPDATE audit SET time = '2026-01-01T00:00:00+00:00' WHERE seq = 7"], 7,
     "entry 7 does not match its hash: it was edited"),
    (["DELETE FROM audit WHERE seq = 3"], 3, "entry 3 is missing (the next entry is 4): removed or reordered"),
    (["DELETE FROM audit WHERE seq = 9"], 9, "the log ends at entry 8, but its head says 9: entries were removed "
                                             "from the end or the head was changed"),
    # reorder: entries 5 and 6 swap places (their seq numbers stay in sequence)
    (["UPDATE audit SET seq = -5 WHERE seq = 5", "UPDATE audit SET seq = 5 WHERE seq = 6",
      "UPDATE audit SET seq = 6 WHERE seq = -5"], 5,
     "entry 5 does not follow entry 4 (prev_hash differs): an entry was removed, reordered or replaced"),
    # reorder by content: the rows keep their seq, their contents swap
    (["CREATE TEMP TABLE keep AS SELECT * FROM audit WHERE seq IN (6, 7)",
      "UPDATE audit SET time=(SELECT time FROM keep WHERE seq=7), kind=(SELECT kind FROM keep WHERE seq=7), "
      "subject=(SELECT subject FROM keep WHERE seq=7), payload=(SELECT payload FROM keep WHERE seq=7), "
      "prev_hash=(SELECT prev_hash FROM keep WHERE seq=7), hash=(SELECT hash FROM keep WHERE seq=7) WHERE seq=6",
      "UPDATE audit SET time=(SELECT time FROM keep WHERE seq=6), kind=(SELECT kind FROM keep WHERE seq=6), "
      "subject=(SELECT subject FROM keep WHERE seq=6), payload=(SELECT payload FROM keep WHERE seq=6), "
      "prev_hash=(SELECT prev_hash FROM keep WHERE seq=6), hash=(SELECT hash FROM keep WHERE seq=6) WHERE seq=7"], 6,
     "entry 6 does not follow entry 5 (prev_hash differs): an entry was removed, reordered or replaced"),
], ids=["edit-payload", "edit-time", "delete", "delete-last", "reorder-seq", "reorder-content"])
def test_tampering_is_detected_at_the_first_bad_entry(logged: SeededLab, lab_cli: Cli, statements: list[str],
                                                      first_bad: int, problem: str) -> None:
    tamper(logged, *statements)
    check = audit.verify(Store(logged.config.state_dir / "lab.sqlite3"))
    assert (check.ok, check.first_bad, check.problem) == (False, first_bad, problem)
    result = logged.cli(lab_cli, "audit", "verify")
    assert result.code == 1
    assert result.out.startswith(f"audit log BROKEN at seq {first_bad}: {problem}\n")


def test_an_edit_that_recomputes_its_own_hash_breaks_the_next_link(logged: SeededLab) -> None:
    entry = audit.entries(logged.store)[3]
    payload = json.dumps({**entry.data(), "allowed": False}, sort_keys=True, separators=(",", ":"))
    forged = entry_hash(entry.prev_hash, entry.seq, entry.time, entry.kind, entry.subject, payload)
    tamper(logged, f"UPDATE audit SET payload = '{payload}', hash = '{forged}' WHERE seq = 4")
    check = audit.verify(logged.store)
    assert (check.first_bad, check.problem) == (5, "entry 5 does not follow entry 4 (prev_hash differs): an entry "
                                                   "was removed, reordered or replaced")


def test_campaign_events_only_for_known_kinds(seeded: SeededLab) -> None:
    with pytest.raises(ValueError, match="unknown campaign event 'pause'"):
        campaign_audit.audit_campaign_event(seeded.store, seeded.campaign, "pause")
    entry = campaign_audit.audit_campaign_event(seeded.store, seeded.campaign, "resume")
    assert (entry.seq, entry.kind, entry.subject) == (1, "campaign-resume",
                                                      f"{BUILD} campaign {seeded.campaign.id}")
