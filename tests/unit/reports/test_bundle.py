"""The evidence bundle: written once, checked offline; any change to what it proves is caught."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from lab.campaign import audit as campaign_audit
from lab.errors import ConfigError
from lab.reports.bundle import read_bundle, verify_bundle
from lab.util.canonical import digest_of
from tests.support.lab_fixtures import (
    BUILD,
    PRINCIPALS,
    T0,
    T_OPEN,
    LabTemplates,
    SeededLab,
    allowed_signers_text,
    seed_lab,
)
from tests.support.labfiles import CliResult

Cli = Callable[..., CliResult]


@pytest.fixture
def bundled(tmp_path: Path, keys: dict[str, Path], lab_cli: Cli, lab_templates: LabTemplates) -> Iterator[SeededLab]:
    """A seeded lab whose build went to pilot and was approved for production by two people, its
    bundle written to ``evidence.json`` (made once per session, copied per test)."""

    def make(root: Path) -> SeededLab:
        seeded = seed_lab(root, keys)
        campaign_audit.audit_campaign_event(seeded.store, seeded.campaign, "start", seeded.config)
        assert seeded.cli(lab_cli, "promote", BUILD, "--to", "pilot", "--now", T0).code == 0
        for name in ("kari", "lars"):
            assert seeded.cli(lab_cli, "approve", BUILD, "--to", "production", "--key", str(keys[name]),
                              "--now", T0).code == 0
        path = seeded.root / "evidence.json"
        written = seeded.cli(lab_cli, "evidence", BUILD, "-o", str(path), "--now", T_OPEN)
        assert written.code == 0, written.err
        assert written.out.startswith(f"evidence bundle of {BUILD}: {path}\n")
        return seeded

    lab = lab_templates.copy("bundled", make, tmp_path / "lab")
    yield lab
    lab.store.close()


@pytest.fixture
def bundle(bundled: SeededLab) -> Path:
    """The bundle of a build that went to pilot and was approved for production by two people."""
    return bundled.root / "evidence.json"


def rewrite(path: Path, change: Callable[[dict[str, Any]], None], reseal: bool = False) -> None:
    data = json.loads(path.read_text())
    change(data)
    if reseal:  # a forger who also recomputes the bundle's own digest
        data["bundle_digest"] = digest_of({k: v for k, v in data.items() if k != "bundle_digest"})
    path.write_text(json.dumps(data))


def test_a_bundle_holds_what_was_tested_and_who_signed(bundle: Path, bundled: SeededLab, lab_cli: Cli) -> None:
    data = read_bundle(bundle)
    assert data["build"] == {"product": "care-planner", "version": "2.0.0", "digest": bundled.build.digest,
                             "artifact": "care-planner-2.0.0.tar.gz"}
    assert sorted(data["files"]) == ["agreement.yml", "lab.yml", "playbooks/baseline.yml", "playbooks/deploy.yml",
                                     "playbooks/files/baseline/",
                                     "test_suites/care-planner-hygiene.yml", "test_suites/care-planner-smoke.yml",
                                     "test_suites/portfolio-compat.yml"]
    assert data["files"] == data["files_at_campaign_start"]
    assert data["results"] == {"counts": {"pass": 36}, "cells": 9}
    assert data["decisions"]["pilot"]["allowed"] is True and data["decisions"]["production"]["allowed"] is True
    assert [(s["kind"], s["principal"], s["valid"]) for s in data["signatures"]] == [
        ("approval", PRINCIPALS["kari"], True), ("approval", PRINCIPALS["lars"], True)]
    assert [p["stage"] for p in data["promotions"]] == ["pilot"]
    assert [d["kind"] for d in data["recorded_decisions"]] == ["decision", "promotion"]
    assert data["audit"]["intact"] is True
    checked = bundled.cli(lab_cli, "evidence", "verify", str(bundle))
    assert checked.code == 0, checked.out
    assert checked.out.splitlines() == [
        f"  ok  approval #1 by {PRINCIPALS['kari']}: verifies (production, until 2026-12-08T10:00:00+00:00)",
        f"  ok  approval #2 by {PRINCIPALS['lars']}: verifies (production, until 2026-12-08T10:00:00+00:00)",
        "  --  audit chain not sealed: the bundle carries no signed checkpoint of the audit log",
        f"{BUILD} (sha256 {bundled.build.digest[:12]}…): evidence bundle verified"]


def test_a_changed_result_is_caught_even_when_the_bundle_is_resealed(bundle: Path, lab_cli: Cli) -> None:
    def fail_one(data: dict[str, Any]) -> None:
        data["evidence"]["cells"][0][3][0][1] = "fail"

    rewrite(bundle, fail_one)
    check = verify_bundle(read_bundle(bundle))
    assert check.problems == ["the bundle's content does not match its bundle_digest: it was changed",
                              "the evidence does not match evidence_digest",
                              "the results summary does not match the evidence's results"]
    rewrite(bundle, lambda data: data.update(evidence_digest=digest_of(data["evidence"])), reseal=True)
    check = verify_bundle(read_bundle(bundle))
    assert check.problems == ["the results summary does not match the evidence's results",
                              "the decision for pilot was made on other evidence",
                              "the decision for production was made on other evidence"]
    assert [n.split(":")[1] for n in check.notes] == [" verifies, but was signed over other evidence; it does not "
                                                      "count here"] * 2


def test_a_changed_signed_payload_does_not_verify(bundle: Path, lab_cli: Cli) -> None:
    def extend(data: dict[str, Any]) -> None:
        data["signatures"][0]["payload"] = data["signatures"][0]["payload"].replace("2026-12-08", "2027-12-08")

    rewrite(bundle, extend, reseal=True)
    result = lab_cli("evidence", "verify", str(bundle))
    assert result.code == 1
    assert f"  BAD approval #1 by {PRINCIPALS['kari']}: does not verify (signature does not verify as " \
           f"{PRINCIPALS['kari']} against allowed_signers: " in result.out
    assert result.out.endswith("evidence bundle NOT verified\n")


def test_signatures_are_checked_against_the_allowed_signers_given(bundle: Path, keys: dict[str, Path],
                                                                  tmp_path: Path, lab_cli: Cli) -> None:
    other = tmp_path / "board_signers"
    other.write_text(allowed_signers_text(keys, ("lars",)))
    result = lab_cli("evidence", "verify", str(bundle), "--allowed-signers", str(other))
    assert result.code == 1
    assert [line[:60] for line in result.out.splitlines()[:3]] == [
        f"  ok  approval #2 by {PRINCIPALS['lars']}: verifies (production, unt"[:60],
        "  --  audit chain not sealed: the bundle carries no signed checkpoint"[:60],
        f"  BAD approval #1 by {PRINCIPALS['kari']}: does not verify (signatur"[:60]]


@pytest.mark.parametrize(("changed", "key"), [
    ("test_suites/portfolio-compat.yml", "test_suites/portfolio-compat.yml"),
    ("playbooks/files/baseline/opt/shared/python/carefmt.py", "playbooks/files/baseline/"),  # the installed tree
], ids=["suite", "baseline-tree"])
def test_a_file_changed_since_the_campaign_is_reported(seeded: SeededLab, lab_cli: Cli, changed: str,
                                                       key: str) -> None:
    campaign_audit.audit_campaign_event(seeded.store, seeded.campaign, "start", seeded.config)
    edited = seeded.root / changed
    before = campaign_audit.used_files(seeded.config, "care-planner")[key]
    edited.write_text(edited.read_text() + "# edited after the campaign\n")
    path = seeded.root / "evidence.json"
    assert seeded.cli(lab_cli, "evidence", "write", BUILD, "-o", str(path), "--now", T_OPEN).code == 0
    check = verify_bundle(read_bundle(path))
    now = read_bundle(path)["files"][key]
    assert check.problems == [f"{key} changed since the campaign started ({before[:12]} then, {now[:12]} now)"]


def test_not_a_bundle(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    path.write_text('{"format": "something else"}')
    with pytest.raises(ConfigError, match="not a lab evidence bundle"):
        read_bundle(path)
