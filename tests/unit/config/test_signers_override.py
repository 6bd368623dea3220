"""``lab --allowed-signers FILE`` / ``$LAB_ALLOWED_SIGNERS``: approvals verified against another
file than the agreement's, never silently: decisions, bundles and the terminal say so."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from lab.evidence import audit
from tests.support.lab_fixtures import BUILD, T0, T_OPEN, SeededLab, allowed_signers_text
from tests.support.labfiles import CliResult

Cli = Any


def approve_both(seeded: SeededLab, keys: dict[str, Path], lab_cli: Cli, *extra: str) -> list[CliResult]:
    return [seeded.cli(lab_cli, *extra, "approve", BUILD, "--to", "production", "--key", str(keys[name]),
                       "--now", T0) for name in ("kari", "lars")]


def test_an_override_verifies_approvals_the_agreements_file_does_not_list(seeded: SeededLab, keys: dict[str, Path],
                                                                         lab_cli: Cli, tmp_path: Path) -> None:
    (seeded.root / "keys" / "allowed_signers").write_text("")  # the agreement lists no approver
    override = tmp_path / "demo_signers"
    override.write_text(allowed_signers_text(keys, ("kari", "lars")))
    assert seeded.cli(lab_cli, "promote", BUILD, "--to", "pilot", "--now", T0).code == 0

    refused = approve_both(seeded, keys, lab_cli)
    assert [r.code for r in refused] == [2, 2]
    agreements = (seeded.root / "keys" / "allowed_signers").resolve()
    assert refused[0].err == (f"lab: the key {keys['kari']} is not listed in {agreements}; add its public key "
                              "there for your principal, or say who you are with --as PRINCIPAL\n")

    approved = approve_both(seeded, keys, lab_cli, "--allowed-signers", str(override))
    assert [r.code for r in approved] == [0, 0], approved[0].err
    note = (f"approver keys: {override} (--allowed-signers / $LAB_ALLOWED_SIGNERS override; "
            "not the agreement's file)\n")
    assert approved[0].out.startswith(note)

    without = seeded.cli(lab_cli, "gate", BUILD, "--to", "production", "--now", T_OPEN)
    assert without.code == 1
    assert "[NO ] approvals: 0 of 2 distinct approver(s) from role change-board" in without.out
    assert "approver keys:" not in without.out

    promoted = seeded.cli(lab_cli, "--allowed-signers", str(override), "promote", BUILD, "--to", "production",
                          "--now", T_OPEN)
    assert promoted.code == 0, promoted.err
    assert note in promoted.out

    decisions = [e.data() for e in audit.entries(seeded.store, "decision")]
    assert [d["allowed_signers"] for d in decisions[-2:]] == [
        {"file": str((seeded.root / "keys" / "allowed_signers").resolve()),
         "sha256": hashlib.sha256(b"").hexdigest(), "override": False},
        {"file": str(override.resolve()), "sha256": hashlib.sha256(override.read_bytes()).hexdigest(),
         "override": True},
    ]
    bundle = tmp_path / "bundle.json"
    assert seeded.cli(lab_cli, "--allowed-signers", str(override), "evidence", BUILD, "--output", str(bundle),
                      "--now", T_OPEN).code == 0
    data = json.loads(bundle.read_text())
    assert data["allowed_signers_source"]["override"] is True
    assert data["allowed_signers"] == override.read_text()


def test_the_environment_variable_is_the_same_override(seeded: SeededLab, keys: dict[str, Path], lab_cli: Cli,
                                                       tmp_path: Path, monkeypatch: Any) -> None:
    (seeded.root / "keys" / "allowed_signers").write_text("")
    override = tmp_path / "signers"
    override.write_text(allowed_signers_text(keys, ("kari", "lars")))
    monkeypatch.setenv("LAB_ALLOWED_SIGNERS", str(override))
    approved = approve_both(seeded, keys, lab_cli)
    assert [r.code for r in approved] == [0, 0], approved[0].err
    note = (f"approver keys: {override} (--allowed-signers / $LAB_ALLOWED_SIGNERS override; "
            "not the agreement's file)")
    assert [r.out.splitlines()[0] for r in approved] == [note, note]


def test_an_override_that_is_not_a_file_is_refused(seeded: SeededLab, lab_cli: Cli, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "allowed_signers"
    result = seeded.cli(lab_cli, "--allowed-signers", str(missing), "gate", BUILD, "--to", "production")
    assert result.code == 2
    assert result.err == (f"lab: --allowed-signers / $LAB_ALLOWED_SIGNERS names {str(missing)!r}, which is not a "
                          "file; give an ssh-keygen ALLOWED SIGNERS file or leave it unset to use the agreement's\n")
    assert result.out == ""
