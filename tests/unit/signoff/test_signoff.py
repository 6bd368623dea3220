"""Signed approvals and waivers with real ssh-keygen keys: what counts, what does not, and why."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from lab.decision.evaluate import evidence_digest
from lab.decision.gather import evidence_of, verdict_for
from lab.errors import ConfigError
from lab.model import ClauseOutcome
from lab.signoff import approvals, signing
from lab.signoff.records import signed
from lab.util.canonical import canonical_bytes
from lab.util.clock import parse_instant
from tests.support.lab_fixtures import (
    BUILD,
    NOT_SEALED,
    PRINCIPALS,
    T0,
    T_OPEN,
    SeededLab,
    allowed_signers_text,
    finished_campaign,
    seed_lab,
)
from tests.support.labfiles import CliResult

Cli = Callable[..., CliResult]
KARI, LARS, INGRID = PRINCIPALS["kari"], PRINCIPALS["lars"], PRINCIPALS["ingrid"]


def approve(lab: SeededLab, cli: Cli, key: Path, *extra: str, now: str = T0) -> CliResult:
    return lab.cli(cli, "approve", BUILD, "--to", "production", "--key", str(key), "--now", now, *extra)


def production(lab: SeededLab, at: str = T_OPEN) -> dict[str, tuple[ClauseOutcome, str]]:
    verdict = verdict_for(lab.config, lab.store, lab.build, "production", now=parse_instant(at))
    return {c.name: (c.outcome, c.detail) for c in verdict.clauses}


def into_pilot(lab: SeededLab, cli: Cli) -> None:
    result = lab.cli(cli, "promote", BUILD, "--to", "pilot", "--now", T0)
    assert result.code == 0, result.err
    report = lab.config.reports_dir / f"{lab.campaign.id}.html"
    assert result.out.endswith(f"{BUILD} promoted to pilot (evidence: campaign {lab.campaign.id})\n"
                               + NOT_SEALED + f"report refreshed: {report} (and .junit.xml, .json)\n")


def test_two_valid_approvals_open_production(seeded: SeededLab, keys: dict[str, Path], lab_cli: Cli) -> None:
    into_pilot(seeded, lab_cli)
    first = approve(seeded, lab_cli, keys["kari"])
    assert first.code == 0, first.err
    assert first.out.startswith(f"{BUILD} approved for production by {KARI} (record #1), "
                                "expires 2026-12-08T10:00:00+00:00\n")
    digest = evidence_digest(evidence_of(seeded.config, seeded.store, seeded.build, seeded.campaign))
    assert f"evidence sha256 {digest}, campaign {seeded.campaign.id}" in first.out
    assert approve(seeded, lab_cli, keys["lars"], "--expires", "2026-12-10").code == 0
    gate = seeded.cli(lab_cli, "gate", BUILD, "--to", "production", "--now", T_OPEN)
    assert gate.code == 0, gate.out
    assert gate.out.startswith(f"{BUILD} (sha256 {seeded.build.digest[:12]}…): PROMOTABLE to production\n")
    assert (f"  [ok ] approvals: 2 of 2 distinct approver(s) from role change-board: {KARI} "
            f"(until 2026-12-08T10:00:00+00:00), {LARS} (until 2026-12-11T00:00:00+00:00)\n") in gate.out
    assert "        used: approval #1 by kari.nordmann@example.no; approval #2 by lars.haugen@example.no; " \
           f"evidence sha256 {digest}; clock 2026-12-04T17:00:00+00:00\n" in gate.out
    assert f"evidence sha256 {digest} (what approvers sign); clock 2026-12-04T17:00:00+00:00\n" in gate.out


def test_an_approval_over_other_evidence_does_not_count(seeded: SeededLab, keys: dict[str, Path],
                                                        lab_cli: Cli) -> None:
    assert approve(seeded, lab_cli, keys["kari"]).code == 0
    assert approve(seeded, lab_cli, keys["lars"]).code == 0
    old = evidence_digest(evidence_of(seeded.config, seeded.store, seeded.build, seeded.campaign))
    newer = finished_campaign(seeded.config, seeded.store, seeded.build)  # the evidence is now another campaign
    current = evidence_digest(evidence_of(seeded.config, seeded.store, seeded.build, newer))
    assert current != old
    outcome, detail = production(seeded)["approvals"]
    assert outcome is ClauseOutcome.NOT_MET
    assert detail == (f"0 of 2 distinct approver(s) from role change-board: none; not counted: approval #1 by {KARI} "
                      f"(signed over other evidence (sha256 {old[:12]}…, now {current[:12]}…)); approval #2 by "
                      f"{LARS} (signed over other evidence (sha256 {old[:12]}…, now {current[:12]}…))")


def test_a_key_allowed_signers_does_not_list_is_refused_and_never_counts(seeded: SeededLab, keys: dict[str, Path],
                                                                          lab_cli: Cli) -> None:
    refused = approve(seeded, lab_cli, keys["mallory"])
    assert refused.code == 2
    assert f"the key {keys['mallory']} is not listed in {seeded.root / 'keys' / 'allowed_signers'}" in refused.err
    impostor = approve(seeded, lab_cli, keys["mallory"], "--as", KARI)
    assert impostor.code == 2
    assert f"lab: not recorded: signature does not verify as {KARI} against allowed_signers" in impostor.err
    assert signed(seeded.store, "care-planner", "2.0.0") == []
    # Forged straight into the store (as someone with write access could): recorded, but it does not count.
    evidence = evidence_of(seeded.config, seeded.store, seeded.build, seeded.campaign)
    now = parse_instant(T0)
    payload = approvals.approval_payload(seeded.build, "production", evidence_digest(evidence), seeded.campaign.id,
                                         parse_instant("2026-12-08T00:00:00Z"), KARI, now, False)
    forged = signing.sign(canonical_bytes(payload), keys["mallory"])
    approvals.record(seeded.store, seeded.build, payload, forged, KARI, now)
    outcome, detail = production(seeded)["approvals"]
    assert outcome is ClauseOutcome.NOT_MET
    assert detail.startswith(f"0 of 2 distinct approver(s) from role change-board: none; not counted: approval #1 by "
                             f"{KARI} (signature does not verify as {KARI} against allowed_signers: ")


def test_an_expired_approval_does_not_count(seeded: SeededLab, keys: dict[str, Path], lab_cli: Cli) -> None:
    assert approve(seeded, lab_cli, keys["kari"], "--expires", "1h").code == 0
    assert approve(seeded, lab_cli, keys["lars"], "--expires", "30d").code == 0
    outcome, detail = production(seeded, "2026-12-01T11:00:00Z")["approvals"]
    assert outcome is ClauseOutcome.NOT_MET
    assert f"not counted: approval #1 by {KARI} (expired 2026-12-01T11:00:00+00:00)" in detail
    assert production(seeded, "2026-12-01T10:59:59Z")["approvals"][0] is ClauseOutcome.MET


def test_a_valid_rejection_blocks_until_its_signer_approves(seeded: SeededLab, keys: dict[str, Path],
                                                            lab_cli: Cli) -> None:
    into_pilot(seeded, lab_cli)
    for name in ("kari", "lars"):
        assert approve(seeded, lab_cli, keys[name]).code == 0
    rejected = approve(seeded, lab_cli, keys["ingrid"], "--reject")
    assert rejected.out.startswith(f"{BUILD} rejected for production by {INGRID} (record #3)")
    blocked = seeded.cli(lab_cli, "promote", BUILD, "--to", "production", "--now", T_OPEN)
    assert blocked.code == 1
    assert blocked.err == (f"lab: {BUILD} may not enter production: rejected by {INGRID} (rejection #3, until "
                           "2026-12-08T10:00:00+00:00)\n")
    assert approve(seeded, lab_cli, keys["ingrid"]).code == 0
    assert seeded.cli(lab_cli, "promote", BUILD, "--to", "production", "--now", T_OPEN).code == 0


def test_the_store_keeps_payload_signature_and_principal_never_the_key(seeded: SeededLab, keys: dict[str, Path],
                                                                       lab_cli: Cli) -> None:
    assert approve(seeded, lab_cli, keys["kari"]).code == 0
    [record] = signed(seeded.store, "care-planner", "2.0.0")
    assert (record.kind, record.principal) == ("approval", KARI)
    assert record.signature.startswith("-----BEGIN SSH SIGNATURE-----\n")
    payload = json.loads(record.payload)
    assert sorted(payload) == ["approver", "build", "build_digest", "campaign", "evidence_digest", "expires",
                               "format", "kind", "signed_at", "stage"]
    assert (payload["approver"], payload["stage"], payload["build_digest"]) == (KARI, "production",
                                                                                 seeded.build.digest)
    secret = keys["kari"].read_text()
    body = "".join(secret.splitlines()[1:-1])
    raw = b"".join(p.read_bytes() for p in seeded.config.state_dir.glob("lab.sqlite3*"))
    assert b"PRIVATE KEY" not in raw and body[:40].encode() not in raw
    row = sqlite3.connect(seeded.config.state_dir / "lab.sqlite3").execute(
        "SELECT payload, signature, principal FROM signatures").fetchone()
    assert row == (record.payload, record.signature, KARI)


def test_ssh_keygen_gets_the_key_path_never_its_content(keys: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[list[str]] = []
    real = signing.subprocess.run

    def spy(args: list[str], **options: object) -> object:
        seen.append(list(args))
        return real(args, **options)  # type: ignore[call-overload]

    monkeypatch.setattr(signing.subprocess, "run", spy)
    signature = signing.sign(b"payload", keys["ingrid"])
    assert seen == [["ssh-keygen", "-Y", "sign", "-q", "-f", str(keys["ingrid"]), "-n", "lab-approval"]]
    assert signature.startswith("-----BEGIN SSH SIGNATURE-----")


def test_a_waived_failure_does_not_block_and_stays_visible(tmp_path: Path, keys: dict[str, Path], lab_cli: Cli) -> None:
    failing = "ts-sbx-02/portfolio-compat/journal-health"
    lab = seed_lab(tmp_path / "lab", keys, (failing,))
    into = lab.cli(lab_cli, "promote", BUILD, "--to", "pilot", "--now", T0)
    assert into.code == 1 and "1 mandatory check(s) failed: portfolio-compat/journal-health on ts-sbx-02" in into.err
    waived = lab.cli(lab_cli, "waive", BUILD, failing, "--reason", "JRN-42: health probe timing, fixed in 2.0.1",
                     "--expires", "2026-12-31", "--key", str(keys["kari"]), "--now", T0)
    assert waived.code == 0, waived.err
    assert waived.out == (f"{failing} of {BUILD} waived by {KARI} (record #1) until 2027-01-01T00:00:00+00:00: "
                          "JRN-42: health probe timing, fixed in 2.0.1\n"
                          f"report refreshed: {lab.config.reports_dir / lab.campaign.id}.html "
                          "(and .junit.xml, .json)\n")
    assert lab.cli(lab_cli, "promote", BUILD, "--to", "pilot", "--now", T0).code == 1  # pilot allows no waivers
    clauses = production(lab)
    assert clauses["mandatory checks"] == (ClauseOutcome.MET, "29 mandatory check(s), none failed; 1 waived "
                                                              "failure(s) do not block")
    assert clauses["waivers"] == (ClauseOutcome.MET, f"1 failure(s) waived: {failing} by {KARI} until "
                                                     "2027-01-01T00:00:00+00:00: JRN-42: health probe timing, fixed "
                                                     "in 2.0.1")
    assert production(lab, "2027-01-01T00:00:00Z")["mandatory checks"][0] is ClauseOutcome.NOT_MET  # expired
    lab.store.close()


def test_only_a_failed_check_can_be_waived_with_a_reason_and_a_future_expiry(seeded: SeededLab, keys: dict[str, Path],
                                                                            lab_cli: Cli) -> None:
    def waive(target: str, reason: str, expires: str) -> CliResult:
        return seeded.cli(lab_cli, "waive", BUILD, target, "--reason", reason, "--expires", expires, "--key",
                          str(keys["kari"]), "--now", T0)

    passing = waive("ts-sbx-01/portfolio-compat/journal-health", "why", "2026-12-31")
    assert (passing.code, passing.err) == (2, "lab: ts-sbx-01/portfolio-compat/journal-health cannot be waived "
                                              "(its result is pass); only a failed check can be\n")
    assert waive("ts-sbx-01/portfolio-compat/nope", "why", "2026-12-31").err.endswith("(no such check); only a "
                                                                                      "failed check can be\n")
    assert waive("ts-sbx-01/portfolio-compat", "why", "2026-12-31").err == (
        "lab: 'ts-sbx-01/portfolio-compat' is not SANDBOX/SUITE/CHECK "
        "(e.g. ts-sbx-01/portfolio-compat/journal-health)\n")
    missing_reason = seeded.cli(lab_cli, "waive", BUILD, "a/b/c", "--expires", "2026-12-31", "--key", "k")
    assert missing_reason.code == 2 and "Missing option '--reason'" in missing_reason.err
    with pytest.raises(ConfigError, match="a waiver needs a justification"):
        approvals.waiver_payload(seeded.build, ("a", "b", "c"), "  ", datetime(2027, 1, 1, tzinfo=UTC), KARI,
                                 datetime(2026, 12, 1, tzinfo=UTC))
    past = waive("ts-sbx-01/portfolio-compat/journal-health", "why", "2026-11-30")
    assert "expiry '2026-11-30' is not in the future (now is 2026-12-01T10:00:00+00:00)" in past.err


def test_a_signature_is_checked_once_per_process_until_allowed_signers_changes(
        keys: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runs: list[str] = []
    real = signing.subprocess.run

    def spy(args: list[str], **options: object) -> object:
        runs.append(args[2])
        return real(args, **options)  # type: ignore[call-overload]

    monkeypatch.setattr(signing.subprocess, "run", spy)
    listed = tmp_path / "allowed_signers"
    listed.write_text(allowed_signers_text(keys, ("kari",)))
    payload = b"the same record, checked by several gates and a report"
    signature = signing.sign(payload, keys["kari"])
    first = [signing.verify(payload, signature, KARI, listed) for _ in range(3)]
    assert first == [signing.Verification(True)] * 3 and runs == ["sign", "verify"]
    listed.write_text(allowed_signers_text(keys, ("lars",)))  # kari's key removed: checked afresh
    after = signing.verify(payload, signature, KARI, listed)
    assert (after.ok, runs) == (False, ["sign", "verify", "verify"])
    assert after.problem.startswith(f"signature does not verify as {KARI} against allowed_signers: ")


@pytest.mark.parametrize(("change", "why"), [
    ({"reason": ""}, "it gives no justification (an empty reason)"),
    ({"reason": " . "}, "its reason '.' justifies nothing"),
    ({"reason": None}, "it gives no justification (an empty reason)"),
    ({"expires": None}, "its expiry None is missing or not an ISO 8601 time with an offset"),
    ({"expires": "2027-01-01T00:00:00"}, "its expiry '2027-01-01T00:00:00' is missing or not an ISO 8601 time"),
    ({"expires": "2026-11-01T00:00:00+00:00"}, "it expires (2026-11-01T00:00:00+00:00) before it was signed"),
    ({"check": ""}, "its check is missing or empty"),
    ({"suite": None}, "its suite is missing or empty"),
])
def test_a_waiver_signed_by_hand_counts_only_with_every_promised_field(
        tmp_path: Path, keys: dict[str, Path], change: dict[str, object], why: str) -> None:
    failing = "ts-sbx-02/portfolio-compat/journal-health"
    lab = seed_lab(tmp_path / "lab", keys, (failing,))
    at = parse_instant(T0)
    payload = approvals.waiver_payload(lab.build, ("ts-sbx-02", "portfolio-compat", "journal-health"),
                                       "JRN-42 accepted", parse_instant("2027-01-01T00:00:00Z"), KARI, at)
    payload.update(change)  # what a hand-made record could hold: ssh-keygen signs whatever it is given
    approvals.record(lab.store, lab.build, payload, signing.sign(canonical_bytes(payload), keys["kari"]), KARI, at)
    outcome, detail = production(lab)["waivers"]
    assert outcome is ClauseOutcome.NOT_APPLICABLE
    assert detail.startswith("not counted: ts-sbx-02/") and "the signed payload is incomplete: " \
        f"{why}" in detail, detail
    assert production(lab)["mandatory checks"][0] is ClauseOutcome.NOT_MET
    lab.store.close()


def test_an_approval_signed_by_hand_without_an_expiry_or_evidence_does_not_count(
        seeded: SeededLab, keys: dict[str, Path], lab_cli: Cli) -> None:
    into_pilot(seeded, lab_cli)
    digest = evidence_digest(evidence_of(seeded.config, seeded.store, seeded.build, seeded.campaign))
    at = parse_instant(T0)
    for name, change in (("kari", {"expires": "soon"}), ("lars", {"evidence_digest": ""})):
        payload = approvals.approval_payload(seeded.build, "production", digest, seeded.campaign.id,
                                             parse_instant("2026-12-08T10:00:00Z"), PRINCIPALS[name], at, False)
        payload.update(change)
        approvals.record(seeded.store, seeded.build, payload,
                         signing.sign(canonical_bytes(payload), keys[name]), PRINCIPALS[name], at)
    outcome, detail = production(seeded)["approvals"]
    assert outcome is ClauseOutcome.NOT_MET
    assert f"approval #1 by {KARI} (the signed payload is incomplete: its expiry 'soon' is missing" in detail
    assert f"approval #2 by {LARS} (the signed payload is incomplete: its evidence_digest is missing or empty)" \
        in detail


def test_lab_waive_refuses_a_reason_without_words(seeded: SeededLab, keys: dict[str, Path], lab_cli: Cli) -> None:
    result = seeded.cli(lab_cli, "waive", BUILD, "ts-sbx-01/portfolio-compat/journal-health", "--reason", " - ",
                        "--expires", "2026-12-31", "--key", str(keys["kari"]), "--now", T0)
    assert result.code == 2
    assert result.err.startswith("lab: a waiver needs a justification, but its reason '-' justifies nothing")
