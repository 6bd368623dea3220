"""`--json` on every read command: stdout is one JSON document (and nothing else), with the documented
field names and the values the lab holds."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lab.config.rollout_plan import WavePlan
from lab.rollout.records import RolloutStore
from tests.support.lab_fixtures import T0, SeededLab
from tests.support.labfiles import CliResult, copy_default_lab

SANDBOXES = ["ts-sbx-01", "ts-sbx-02", "ts-sbx-03"]
SUITES = ["care-planner-smoke", "portfolio-compat", "care-planner-hygiene"]


def document(result: CliResult, code: int = 0) -> dict[str, Any]:
    """stdout parsed whole as one JSON object (json.loads refuses anything around it)."""
    assert result.code == code, result.err
    parsed = json.loads(result.out)
    assert isinstance(parsed, dict)
    assert parsed["format"] == 1
    return parsed


def test_list_json_names_every_campaign_with_its_build(seeded: SeededLab, lab_cli: Callable[..., CliResult]) -> None:
    listed = document(seeded.cli(lab_cli, "list", "--json"))
    [row] = listed["campaigns"]
    assert (row["id"], row["build"], row["product"], row["version"], row["digest"]) == (
        seeded.campaign.id, "care-planner@2.0.0", "care-planner", "2.0.0", seeded.build.digest)
    assert (row["state"], row["created_at"], row["cells_done"], row["cells_total"]) == (
        "finished", seeded.campaign.created_at, 9, 9)
    assert set(row) == {"id", "build", "product", "version", "digest", "state", "created_at", "finished_at",
                        "cells_done", "cells_total"}


def test_list_json_of_an_empty_store(tmp_path: Path, lab_cli: Callable[..., CliResult]) -> None:
    lab_yml = copy_default_lab(tmp_path / "lab")
    assert document(lab_cli("--lab", str(lab_yml), "list", "--json")) == {"format": 1, "campaigns": []}


def test_show_json_is_the_campaign_with_its_cells_and_verdict(seeded: SeededLab,
                                                              lab_cli: Callable[..., CliResult]) -> None:
    shown = document(seeded.cli(lab_cli, "show", "latest", "--json"))
    assert shown["campaign"]["id"] == seeded.campaign.id
    assert shown["build"] == {"product": "care-planner", "version": "2.0.0", "digest": seeded.build.digest,
                              "artifact": seeded.build.artifact.name}
    assert sorted((c["sandbox"], c["suite"]) for c in shown["cells"]) == sorted(
        (s, suite) for s in SANDBOXES for suite in SUITES)
    assert shown["verdict"]["stage"] == "pilot" and shown["verdict"]["allowed"] is True
    assert shown["counts"]["fail"] == 0 and shown["counts"]["pass"] > 0


def test_gate_json_allows_and_blocks_with_the_exit_code(seeded: SeededLab, lab_cli: Callable[..., CliResult]) -> None:
    allowed = document(seeded.cli(lab_cli, "gate", "care-planner@2.0.0", "--to", "pilot", "--now", T0, "--json"))
    assert (allowed["build"], allowed["product"], allowed["version"], allowed["stage"], allowed["allowed"]) == (
        "care-planner@2.0.0", "care-planner", "2.0.0", "pilot", True)
    assert allowed["digest"] == seeded.build.digest and allowed["reasons"] == []
    assert len(allowed["evidence_digest"]) == 64 and allowed["evaluated_at"].startswith("2026-12-01T10:00:00")
    clause = next(c for c in allowed["clauses"] if c["name"] == "campaign")
    assert clause["outcome"] == "met" and seeded.campaign.id in clause["detail"]
    # production needs pilot first: blocked, exit 1, still one JSON document and nothing else
    blocked = document(seeded.cli(lab_cli, "gate", "care-planner@2.0.0", "--to", "production", "--now", T0,
                                  "--json"), code=1)
    assert blocked["allowed"] is False and blocked["stage"] == "production"
    assert blocked["reasons"] and any(c["outcome"] == "not met" for c in blocked["clauses"])


def test_validate_json_lists_what_the_lab_holds(seeded: SeededLab, lab_cli: Callable[..., CliResult]) -> None:
    checked = document(seeded.cli(lab_cli, "validate", "--json"))
    assert checked["valid"] is True and checked["lab"] == "municipal-test-lab"
    assert [s["name"] for s in checked["sandboxes"]] == SANDBOXES
    assert {s["provider"] for s in checked["sandboxes"]} == {"local"}
    product = checked["products"][0]
    assert (product["name"], product["builds"], product["suites"]) == ("care-planner", ["2.0.0", "2.1.0", "2.2.0"],
                                                                       SUITES)
    assert product["ci_builds"]["artifacts"] == str(seeded.root / "artifacts" / "ci")
    assert checked["agreement"]["stages"] == ["lab", "pilot", "production"]
    smoke = next(s for s in checked["suites"] if s["name"] == "care-planner-smoke")
    assert smoke["mandatory"] is True and smoke["checks"] > 0


def test_validate_json_of_a_broken_lab_names_file_and_line(seeded: SeededLab,
                                                           lab_cli: Callable[..., CliResult]) -> None:
    text = seeded.lab_yml.read_text()
    seeded.lab_yml.write_text(text.replace("parallel: 2", "parallel: many"))
    failed = document(seeded.cli(lab_cli, "validate", "--json"), code=2)
    assert failed["valid"] is False
    assert failed["error"]["file"] == str(seeded.lab_yml)
    assert failed["error"]["line"] == text.splitlines().index("parallel: 2") + 1
    assert failed["error"]["exit_code"] == 2 and "parallel" in failed["error"]["message"]
    assert "parallel" in seeded.cli(lab_cli, "validate", "--json").err


def test_sandbox_list_json(seeded: SeededLab, lab_cli: Callable[..., CliResult]) -> None:
    listed = document(seeded.cli(lab_cli, "sandbox", "list", "--json"))
    assert [s["name"] for s in listed["sandboxes"]] == SANDBOXES
    first = listed["sandboxes"][0]
    assert set(first) == {"name", "provider", "state", "port", "lease_holder", "reset_at", "where", "detail"}
    assert (first["provider"], first["lease_holder"]) == ("local", None)
    assert first["where"] == str(seeded.root / ".lab" / "sandboxes" / "ts-sbx-01")


def test_audit_show_json_is_one_document_with_the_chain(seeded: SeededLab, lab_cli: Callable[..., CliResult]) -> None:
    seeded.cli(lab_cli, "gate", "care-planner@2.0.0", "--to", "pilot", "--now", T0)
    shown = document(seeded.cli(lab_cli, "audit", "show", "--json"))
    entries = shown["entries"]
    assert [e["seq"] for e in entries] == list(range(1, len(entries) + 1))
    assert entries[-1]["kind"] == "decision" and entries[-1]["subject"] == "care-planner@2.0.0 -> pilot"
    assert entries[-1]["payload"]["stage"] == "pilot" and len(entries[-1]["hash"]) == 64
    assert all(later["prev_hash"] == earlier["hash"] for earlier, later in itertools.pairwise(entries))
    only = document(seeded.cli(lab_cli, "audit", "show", "--kind", "decision", "--json"))
    assert [e["kind"] for e in only["entries"]] == ["decision"]


def test_rollout_status_json_has_every_wave_and_host(seeded: SeededLab, lab_cli: Callable[..., CliResult]) -> None:
    waves = [WavePlan(1, "canary", ("prod-ts-01",), 0, None, 0),
             WavePlan(2, "rest", ("prod-ts-02", "prod-ts-03"), None, 0.5, 600)]
    record = RolloutStore(seeded.store).create(seeded.build, "production", waves, {"prod-ts-01": None}, lambda r: [])
    status = document(seeded.cli(lab_cli, "rollout", "status", "care-planner@2.0.0", "--json"))
    assert (status["id"], status["build"], status["state"], status["digest"]) == (
        record.id, "care-planner@2.0.0", "running", seeded.build.digest)
    assert [(w["wave"], w["name"], w["state"], w["max_failure_rate"], w["pause_seconds"]) for w in status["waves"]] == [
        (1, "canary", "planned", None, 0), (2, "rest", "planned", 0.5, 600)]
    assert status["waves"][1]["hosts"][1] == {"host": "prod-ts-03", "state": "planned", "previous": None,
                                              "deployed_digest": None, "health": None, "detail": ""}
