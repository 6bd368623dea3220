"""Signed checkpoints of the audit log, and ``lab audit verify`` checking the log against them and
the state tables against the log: a chain rewritten with every later hash and the head
recomputed, a tail cut off with the head moved back, rows written or changed behind lab's back,
forged checkpoints."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from lab.campaign import audit as campaign_audit
from lab.evidence import audit
from lab.evidence.audit import entry_hash
from lab.evidence.checkpoints import checkpoints
from lab.signoff.signing import sign
from lab.util.canonical import canonical_json
from tests.support.lab_fixtures import (
    BUILD,
    PRINCIPALS,
    T0,
    T_OPEN,
    LabTemplates,
    SeededLab,
    allowed_signers_text,
    key_pub,
    make_key,
    seed_lab,
)
from tests.support.labfiles import CliResult

Cli = Callable[..., CliResult]
LAB_PRINCIPAL = "lab-audit@example.no"
NAMESPACE = "lab-audit-checkpoint"


def with_lab_key(root: Path, keys: dict[str, Path], require: bool = False) -> Path:
    """Give the lab at ``root`` its checkpoint key (listed for the checkpoint namespace only) in lab.yml."""
    key = make_key(root / "keys", "lab-audit")
    key_type, blob = key_pub(key)
    (root / "keys" / "allowed_signers").write_text(
        allowed_signers_text(keys) + f'{LAB_PRINCIPAL} namespaces="{NAMESPACE}" {key_type} {blob}\n')
    lab_yml = root / "lab.yml"
    lab_yml.write_text(lab_yml.read_text() + "audit:\n  checkpoint_key: keys/lab-audit\n"
                       + ("  require_checkpoints: true\n" if require else ""))
    return key


@pytest.fixture
def sealed(tmp_path: Path, keys: dict[str, Path], lab_cli: Cli, lab_templates: LabTemplates) -> Iterator[SeededLab]:
    """A lab with a checkpoint key whose log holds a campaign, a waiver (record 1), the promotion
    into pilot (entry 5, sealed by checkpoint 1), two approvals (records 2 and 3, entries 6 and 7)
    and the promotion into production (entry 9, sealed by checkpoint 2)."""

    def make(root: Path) -> SeededLab:
        failing = "ts-sbx-03/care-planner-smoke/plans-a-route"
        lab = seed_lab(root, keys, (failing,), lambda text: text.replace("      waivers: false", "      waivers: true"))
        with_lab_key(root, keys)
        campaign_audit.audit_campaign_event(lab.store, lab.campaign, "start", lab.config)
        campaign_audit.audit_campaign_event(lab.store, lab.campaign, "finish")
        assert lab.cli(lab_cli, "waive", BUILD, failing, "--reason", "flaky probe", "--expires", "2026-12-31",
                       "--key", str(keys["ingrid"]), "--now", T0).code == 0
        promoted = lab.cli(lab_cli, "promote", BUILD, "--to", "pilot", "--now", T0)
        assert promoted.code == 0, promoted.err
        assert f"audit chain sealed at seq 5 by {LAB_PRINCIPAL}, " in promoted.out
        for name in ("kari", "lars"):
            assert lab.cli(lab_cli, "approve", BUILD, "--to", "production", "--key", str(keys[name]),
                           "--now", T0).code == 0
        promoted = lab.cli(lab_cli, "promote", BUILD, "--to", "production", "--now", T_OPEN)
        assert promoted.code == 0, promoted.err
        return lab

    lab = lab_templates.copy("sealed", make, tmp_path / "lab")
    yield lab
    lab.store.close()


def sql(lab: SeededLab, *statements: str) -> None:
    """Change the store behind lab's back, as someone with the file could: drop the guards, then edit."""
    db = sqlite3.connect(lab.config.state_dir / "lab.sqlite3", isolation_level=None)
    for trigger in ("audit_no_update", "audit_no_delete", "signatures_no_update", "signatures_no_delete",
                    "audit_checkpoints_no_update", "audit_checkpoints_no_delete"):
        db.execute(f"DROP TRIGGER IF EXISTS {trigger}")
    for statement in statements:
        db.execute(statement)
    db.close()


def rewrite_chain(lab: SeededLab, seq: int, edit: Callable[[dict[str, object]], dict[str, object]]) -> None:
    """Edit entry ``seq``'s payload, then recompute its hash, every later entry's and the head, as an
    attacker who knows how the chain is made would: the chain's own check passes afterwards."""
    log = audit.entries(lab.store)
    statements, prev = [], log[seq - 2].hash if seq > 1 else audit.GENESIS
    for entry in log[seq - 1:]:
        payload = canonical_json(edit(entry.data())) if entry.seq == seq else entry.payload
        digest = entry_hash(prev, entry.seq, entry.time, entry.kind, entry.subject, payload)
        statements.append(f"UPDATE audit SET payload = '{payload}', prev_hash = '{prev}', hash = '{digest}' "
                          f"WHERE seq = {entry.seq}")
        prev = digest
    sql(lab, *statements, f"UPDATE audit_head SET hash = '{prev}' WHERE id = 1")


def verify(lab: SeededLab, lab_cli: Cli) -> tuple[int, list[str]]:
    result = lab.cli(lab_cli, "audit", "verify")
    assert result.err == ""
    return result.code, result.out.splitlines()


def test_promotions_are_sealed_and_verify_says_so(sealed: SeededLab, lab_cli: Cli) -> None:
    stored = checkpoints(sealed.store)
    log = audit.entries(sealed.store)
    assert [(c.id, c.seq, c.principal) for c in stored] == [(1, 5, LAB_PRINCIPAL), (2, 9, LAB_PRINCIPAL)]
    assert [(c.hash, c.reason) for c in stored] == [(log[4].hash, f"promotion of {BUILD} -> pilot"),
                                                    (log[8].hash, f"promotion of {BUILD} -> production")]
    signed = json.loads(stored[1].payload)
    assert signed == {"format": "lab-audit-checkpoint/1", "lab": sealed.config.name, "seq": 9, "hash": log[8].hash,
                      "signed_at": stored[1].signed_at, "principal": LAB_PRINCIPAL, "namespace": NAMESPACE,
                      "reason": f"promotion of {BUILD} -> production"}
    assert stored[1].signature.startswith("-----BEGIN SSH SIGNATURE-----")
    code, lines = verify(sealed, lab_cli)
    assert (code, lines) == (0, [f"audit log intact: 9 entries, head {log[8].hash}",
                                 f"audit chain sealed at seq 9 by {LAB_PRINCIPAL}, {stored[1].signed_at} "
                                 "(checkpoint 2)",
                                 "state tables agree with the log: promotions, signed records, rollouts"])


def test_a_recomputed_chain_passes_its_own_check_but_not_the_checkpoint(sealed: SeededLab, lab_cli: Cli) -> None:
    # entry 8 is production's decision: flip a clause, recompute entries 8 and 9 and the head
    rewrite_chain(sealed, 8, lambda data: {**data, "evaluated_at": "2026-12-04T18:00:00+00:00"})
    assert audit.verify(sealed.store).ok  # the chain alone cannot tell
    code, lines = verify(sealed, lab_cli)
    second = checkpoints(sealed.store)[1]
    assert code == 1
    assert lines[0].startswith("audit log intact: 9 entries, head ")
    assert lines[1].startswith(f"audit chain sealed at seq 9 by {LAB_PRINCIPAL}")  # checkpoint 2 is genuine
    assert lines[2:] == [
        f"  BAD entry 9 is not the one {second.label()} sealed (its hash was {second.hash[:16]}…, now "
        f"{audit.entries(sealed.store)[8].hash[:16]}…): the log was rewritten at or before entry 9 (after entry 5, "
        "which an earlier checkpoint still matches)",
        "audit log NOT verified: 1 problem(s) with its checkpoints or state tables"]


def test_a_recomputed_chain_before_every_checkpoint_is_named_by_each(sealed: SeededLab, lab_cli: Cli) -> None:
    rewrite_chain(sealed, 4, lambda data: {**data, "allowed": False})
    code, lines = verify(sealed, lab_cli)
    assert code == 1
    bad = [line for line in lines if line.startswith("  BAD ")]
    assert [line.split(": the log was ")[1] for line in bad] == [
        "rewritten at or before entry 5 (no earlier checkpoint narrows it down)",
        "rewritten at or before entry 9 (no earlier checkpoint narrows it down)"]


def test_a_tail_cut_off_with_the_head_moved_back_is_caught(sealed: SeededLab, lab_cli: Cli) -> None:
    seventh = audit.entries(sealed.store)[6]
    sql(sealed, "DELETE FROM audit WHERE seq > 7", f"UPDATE audit_head SET seq = 7, hash = '{seventh.hash}'")
    assert audit.verify(sealed.store).ok
    code, lines = verify(sealed, lab_cli)
    second = checkpoints(sealed.store)[1]
    assert code == 1
    assert lines[2:] == [
        f"  BAD {second.label()} sealed entry 9, but the log ends at entry 7: entries 8..9 were removed and the "
        "head moved back",
        f"  BAD promotions {BUILD} -> production: no promotion entry in the audit log recorded this row (it was "
        "written behind lab's back)",
        "audit log NOT verified: 2 problem(s) with its checkpoints or state tables"]


def test_a_promotion_row_inserted_by_sql_is_named(sealed: SeededLab, lab_cli: Cli) -> None:
    sql(sealed, f"INSERT INTO promotions VALUES ('care-planner', '9.9.9', '{'e' * 64}', 'production', 'x', '{{}}', "
                "'2026-12-04T17:00:00+00:00')")
    code, lines = verify(sealed, lab_cli)
    assert (code, lines[2:]) == (1, [
        "  BAD promotions care-planner@9.9.9 -> production: no promotion entry in the audit log recorded this row (it "
        "was written behind lab's back)",
        "audit log NOT verified: 1 problem(s) with its checkpoints or state tables"])
    document = json.loads(sealed.cli(lab_cli, "audit", "verify", "--json").out)
    assert (document["format"], document["ok"], document["chain"]["intact"], document["checkpoint"]["seq"]) == (
        1, False, True, 9)
    assert document["findings"] == [{"where": "promotions care-planner@9.9.9 -> production", "seq": None,
                                     "problem": lines[2][6:]}]


def test_a_deleted_promotion_row_is_named_with_its_entry(sealed: SeededLab, lab_cli: Cli) -> None:
    sql(sealed, "DELETE FROM promotions WHERE stage = 'pilot'")
    code, lines = verify(sealed, lab_cli)
    assert (code, lines[2]) == (1, f"  BAD promotions {BUILD} -> pilot: entry 5 recorded this promotion, but its row "
                                   "is missing")


def test_an_approval_whose_principal_differs_from_its_entry_is_named(sealed: SeededLab, lab_cli: Cli) -> None:
    sql(sealed, f"UPDATE signatures SET principal = '{PRINCIPALS['mallory']}' WHERE id = 2")
    code, lines = verify(sealed, lab_cli)
    assert (code, lines[2:]) == (1, [
        f"  BAD signatures 2 (approval of {BUILD}): the row's principal is 'mallory@example.org', but entry 6 "
        "recorded 'kari.nordmann@example.no'",
        "audit log NOT verified: 1 problem(s) with its checkpoints or state tables"])


def forge(lab: SeededLab, key: Path, seq: int, hash_: str) -> None:
    """Store checkpoint 3 sealing ``seq``/``hash_`` in the lab's name, signed with ``key``."""
    payload = canonical_json({"format": "lab-audit-checkpoint/1", "lab": lab.config.name, "seq": seq,
                              "hash": hash_, "signed_at": "2026-12-05T00:00:00.000+00:00",
                              "principal": LAB_PRINCIPAL, "namespace": NAMESPACE, "reason": "on demand"})
    signature = sign(payload.encode(), key, NAMESPACE)
    db = sqlite3.connect(lab.config.state_dir / "lab.sqlite3")
    with db:
        db.execute("INSERT INTO audit_checkpoints VALUES (3, ?, ?, ?, ?, 'on demand', ?, ?)",
                   (seq, hash_, LAB_PRINCIPAL, "2026-12-05T00:00:00.000+00:00", payload, signature))
    db.close()


def test_a_checkpoint_signed_by_an_unlisted_key_is_forged(sealed: SeededLab, keys: dict[str, Path],
                                                          lab_cli: Cli) -> None:
    rewrite_chain(sealed, 8, lambda data: {**data, "allowed": False})
    forge(sealed, keys["mallory"], 9, audit.entries(sealed.store)[8].hash)  # re-seal the rewritten chain
    code, lines = verify(sealed, lab_cli)
    assert code == 1
    assert lines[1].endswith("(checkpoint 2)")  # the forged one is not taken as the seal
    assert lines[2].startswith(f"  BAD checkpoint 3 (seq 9, signed by {LAB_PRINCIPAL} at "
                               "2026-12-05T00:00:00.000+00:00): its signature is not valid: signature does not "
                               f"verify as {LAB_PRINCIPAL} against allowed_signers")
    assert lines[3].startswith("  BAD entry 9 is not the one checkpoint 2 ")


def test_a_checkpoint_beyond_the_head_is_named(sealed: SeededLab, lab_cli: Cli) -> None:
    forge(sealed, sealed.root / "keys" / "lab-audit", 12, "f" * 64)
    code, lines = verify(sealed, lab_cli)
    assert (code, lines[1:]) == (1, [
        f"audit chain sealed at seq 12 by {LAB_PRINCIPAL}, 2026-12-05T00:00:00.000+00:00 (checkpoint 3)",
        f"  BAD checkpoint 3 (seq 12, signed by {LAB_PRINCIPAL} at 2026-12-05T00:00:00.000+00:00) sealed entry 12, "
        "but the log ends at entry 9: entries 10..12 were removed and the head moved back",
        "audit log NOT verified: 1 problem(s) with its checkpoints or state tables"])


def test_deleted_checkpoints_leave_a_gap(sealed: SeededLab, lab_cli: Cli) -> None:
    sql(sealed, "DELETE FROM audit_checkpoints WHERE id = 1")
    code, lines = verify(sealed, lab_cli)
    assert (code, lines[2]) == (1, "  BAD checkpoint 1 is missing (the next one is 2): checkpoints were deleted")


def test_on_demand_checkpoints_need_a_key_listed_for_the_namespace(sealed: SeededLab, keys: dict[str, Path],
                                                                   lab_cli: Cli) -> None:
    kari = sealed.cli(lab_cli, "audit", "checkpoint", "--key", str(keys["kari"]))
    assert kari.code == 2 and kari.out == ""
    assert kari.err.startswith("lab: the checkpoint would not verify: signature does not verify as "
                               f"{PRINCIPALS['kari']} against allowed_signers")
    assert f'list the key for {PRINCIPALS["kari"]} in allowed_signers with namespaces="{NAMESPACE}"' in kari.err
    assert len(checkpoints(sealed.store)) == 2  # nothing written
    assert len(audit.entries(sealed.store)) == 9
    done = sealed.cli(lab_cli, "audit", "checkpoint")
    assert done.code == 0 and done.out.startswith(f"audit chain sealed at seq 9 by {LAB_PRINCIPAL}, ")
    assert done.out.endswith("(checkpoint 3)\n")
    assert [c.reason for c in checkpoints(sealed.store)][-1] == "on demand"


def test_without_a_key_promotions_go_on_unsealed_and_on_demand_is_refused(seeded: SeededLab, lab_cli: Cli) -> None:
    promoted = seeded.cli(lab_cli, "promote", BUILD, "--to", "pilot", "--now", T0)
    assert promoted.code == 0
    assert "audit chain not sealed: no audit.checkpoint_key in lab.yml; name the lab's signing key there " \
           "(audit: {checkpoint_key: PATH}) or seal with `lab audit checkpoint --key KEY`\n" in promoted.out
    refused = seeded.cli(lab_cli, "audit", "checkpoint")
    assert (refused.code, refused.err.split(";")[0]) == (2, "lab: no audit.checkpoint_key in lab.yml")
    code, lines = verify(seeded, lab_cli)
    assert (code, lines[1]) == (0, "audit chain not sealed: no signed checkpoint")


def test_a_lab_that_requires_checkpoints_refuses_an_unsealable_promotion(seeded: SeededLab, keys: dict[str, Path],
                                                                         lab_cli: Cli) -> None:
    with_lab_key(seeded.root, keys, require=True)
    (seeded.root / "keys" / "lab-audit").unlink()  # the key is configured but not there
    refused = seeded.cli(lab_cli, "promote", BUILD, "--to", "pilot", "--now", T0)
    assert refused.code == 2
    assert "no key at " in refused.err and "lab.yml requires a signed checkpoint (audit.require_checkpoints), so " \
        "nothing was recorded" in refused.err
    assert [e.kind for e in audit.entries(seeded.store)] == []
    assert seeded.cli(lab_cli, "audit", "verify").code == 0  # an empty log needs no seal


def test_the_bundle_and_the_report_carry_the_seal(sealed: SeededLab, lab_cli: Cli, tmp_path: Path) -> None:
    bundle = tmp_path / "evidence.json"
    assert sealed.cli(lab_cli, "evidence", BUILD, "-o", str(bundle), "--now", T_OPEN).code == 0
    data = json.loads(bundle.read_text())
    second = checkpoints(sealed.store)[1]
    assert data["audit_checkpoint"] == second.to_json()
    checked = sealed.cli(lab_cli, "evidence", "verify", str(bundle))
    assert checked.code == 0
    assert f"  ok  audit chain sealed at seq 9 by {LAB_PRINCIPAL}, {second.signed_at} (checkpoint 2): the " \
           "checkpoint's signature verifies\n" in checked.out
    approvers_only = tmp_path / "approvers"
    approvers_only.write_text(data["allowed_signers"].splitlines()[0] + "\n")
    other = sealed.cli(lab_cli, "evidence", "verify", str(bundle), "--allowed-signers", str(approvers_only))
    assert other.code == 1
    assert f"  BAD audit {second.label()}: its signature is not valid: signature does not verify as " \
           f"{LAB_PRINCIPAL}" in other.out
    report = sealed.cli(lab_cli, "report", "latest", "--format", "json", "-o", "-")
    seal = json.loads(report.out)["audit_seal"]
    assert seal["line"] == f"audit chain sealed at seq 9 by {LAB_PRINCIPAL}, {second.signed_at} (checkpoint 2)"
    assert seal["checkpoint"]["hash"] == second.hash
    html = (sealed.config.reports_dir / f"{sealed.campaign.id}.html").read_text()
    assert f'<p class="small audit-seal">audit chain sealed at seq 9 by {LAB_PRINCIPAL}, ' in html


def test_an_operators_key_given_on_the_command_line_seals_without_lab_yml_naming_one(
        seeded: SeededLab, keys: dict[str, Path], tmp_path: Path, lab_cli: Cli) -> None:
    operator = make_key(tmp_path / "operator", "seal")  # outside the lab, as a CI secret would be
    key_type, blob = key_pub(operator)
    signers = tmp_path / "operator" / "allowed_signers"
    signers.write_text(allowed_signers_text(keys) + f'{LAB_PRINCIPAL} namespaces="{NAMESPACE}" {key_type} {blob}\n')
    promoted = lab_cli("--lab", str(seeded.lab_yml), "--allowed-signers", str(signers), "--checkpoint-key",
                       str(operator), "promote", BUILD, "--to", "pilot", "--now", T0)
    assert promoted.code == 0, promoted.err
    (checkpoint,) = checkpoints(seeded.store)
    assert (checkpoint.principal, checkpoint.reason) == (LAB_PRINCIPAL, f"promotion of {BUILD} -> pilot")
    assert f"audit chain sealed at seq {checkpoint.seq} by {LAB_PRINCIPAL}, " in promoted.out
    missing = lab_cli("--lab", str(seeded.lab_yml), "--checkpoint-key", str(tmp_path / "nowhere"), "audit", "verify")
    assert missing.code == 2 and "'--checkpoint-key': File " in missing.err and "does not exist" in missing.err
