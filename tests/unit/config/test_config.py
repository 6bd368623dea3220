"""Bad input: one clear message naming file and line (or the value), exit code 2, no traceback,
nothing written to the store."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from lab.config.labfile import load_lab
from lab.errors import ConfigError
from tests.support.labfiles import CliResult, copy_default_lab, write

SUITE = "test_suites/portfolio-compat.yml"


@pytest.fixture
def lab_yml(tmp_path: Path) -> Path:
    return copy_default_lab(tmp_path / "lab")


def replace(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, 1))


def error_of(lab_yml: Path) -> str:
    with pytest.raises(ConfigError) as info:
        load_lab(lab_yml)
    return str(info.value)


def test_the_default_lab_is_valid(lab_yml: Path) -> None:
    config = load_lab(lab_yml)
    assert [s.name for s in config.sandboxes] == ["ts-sbx-01", "ts-sbx-02", "ts-sbx-03"]
    assert {s.platform for s in config.sandboxes} == {"debian-12"}
    assert sorted(config.suites) == ["care-planner-hygiene", "care-planner-smoke", "portfolio-compat",
                                     "production-health"]
    assert config.suites["care-planner-hygiene"].mandatory is False
    assert list(config.products["care-planner"].builds) == ["2.0.0", "2.1.0", "2.2.0"]
    assert [s.name for s in config.agreement.stages] == ["lab", "pilot", "production"]
    gate = config.agreement.stage("pilot").gate  # type: ignore[union-attr]
    assert gate is not None and gate.platforms == ("debian-12",) and gate.suites is None


def test_malformed_yaml_names_file_and_line(lab_yml: Path) -> None:
    suite = lab_yml.parent / SUITE
    lines = suite.read_text().splitlines()
    assert lines[10] == "    type: process"
    lines[9] = "  - id: [unclosed"  # line 10; the parser notices at line 11, whose ':' cannot follow it
    suite.write_text("\n".join(lines) + "\n")
    message = error_of(lab_yml)
    assert message.startswith(f"{suite}:11: ")
    assert "malformed YAML" in message


def test_unknown_check_type_names_file_and_line(lab_yml: Path) -> None:
    suite = lab_yml.parent / SUITE
    replace(suite, "type: process", "type: teleport")
    line = suite.read_text().splitlines().index("    type: teleport") + 1
    message = error_of(lab_yml)
    assert message.startswith(f"{suite}:{line}: ")
    assert "unknown check type 'teleport'" in message
    known = message.split("known types: ", 1)[1].split(", ")
    assert known == sorted(known) and {"command", "file", "http"} <= set(known)


def test_unknown_field_in_a_check_names_file_and_line(lab_yml: Path) -> None:
    suite = lab_yml.parent / SUITE
    replace(suite, "    pid_file: /run/journal.pid", "    pid_file: /run/journal.pid\n    pidfile: /run/x.pid")
    line = suite.read_text().splitlines().index("    pidfile: /run/x.pid") + 1
    message = error_of(lab_yml)
    assert message.startswith(f"{suite}:{line}: ")
    assert "unknown field 'pidfile'" in message


def test_unknown_field_in_lab_yml(lab_yml: Path) -> None:
    replace(lab_yml, "parallel: 2", "paralel: 2")
    line = lab_yml.read_text().splitlines().index("paralel: 2") + 1
    assert error_of(lab_yml).startswith(f"{lab_yml}:{line}: unknown field 'paralel'")


def test_duplicate_check_ids(lab_yml: Path) -> None:
    suite = lab_yml.parent / SUITE
    replace(suite, "id: journal-listening", "id: journal-running")
    lines = suite.read_text().splitlines()
    second = [i for i, text in enumerate(lines) if text == "  - id: journal-running"][1] + 1
    message = error_of(lab_yml)
    assert message.startswith(f"{suite}:{second}: duplicate check id 'journal-running'")


def test_duplicate_yaml_keys(lab_yml: Path) -> None:
    replace(lab_yml, "parallel: 2", "parallel: 2\nparallel: 3")
    message = error_of(lab_yml)
    assert message.startswith(str(lab_yml))
    assert "duplicate" in message


def test_missing_playbook(lab_yml: Path) -> None:
    replace(lab_yml, "deploy: playbooks/deploy.yml", "deploy: playbooks/deploy-missing.yml")
    line = lab_yml.read_text().splitlines().index("    deploy: playbooks/deploy-missing.yml") + 1
    message = error_of(lab_yml)
    assert message.startswith(f"{lab_yml}:{line}: playbook 'playbooks/deploy-missing.yml' not found")


def test_unknown_suite_of_a_product(lab_yml: Path) -> None:
    replace(lab_yml, "care-planner-hygiene]", "care-planner-hygene]")
    assert "unknown suite 'care-planner-hygene'" in error_of(lab_yml)


def test_unknown_variable_in_a_suite(lab_yml: Path) -> None:
    suite = lab_yml.parent / SUITE
    replace(suite, 'port: "${lab_port}"', 'port: "${journal_port}"')
    message = error_of(lab_yml)
    assert message.startswith(str(suite))
    assert "unknown variable ${journal_port}" in message


def test_wrong_parameter_type(lab_yml: Path) -> None:
    suite = lab_yml.parent / SUITE
    replace(suite, "exit_code: 0", "exit_code: zero")
    message = error_of(lab_yml)
    assert "exit_code" in message and "found 'zero'; write a whole number" in message


def test_sandbox_without_platform(lab_yml: Path) -> None:
    replace(lab_yml.parent / "inventory" / "hosts.yml", "        lab_platform: debian-12\n", "")
    assert "has no lab_platform variable" in error_of(lab_yml)


def test_inventory_with_unknown_group_key(lab_yml: Path) -> None:
    hosts = lab_yml.parent / "inventory" / "hosts.yml"
    replace(hosts, "      hosts:\n", "      host:\n")
    line = hosts.read_text().splitlines().index("      host:") + 1
    message = error_of(lab_yml)  # Ansible only warns and carries on without the hosts; lab refuses
    assert message.startswith(f"{hosts}:{line}: ")
    assert "unexpected key (host) in group (sandboxes)" in message


def test_missing_lab_file_through_the_cli(tmp_path: Path, run_cli: Callable[..., CliResult]) -> None:
    result = run_cli("--lab", str(tmp_path / "nowhere.yml"), "validate")
    assert result.code == 2
    expected = "lab file not found; run from a lab directory or pass --lab PATH"
    assert result.err == f"lab: {tmp_path / 'nowhere.yml'}: {expected}\n"


@pytest.mark.parametrize("command", [
    ["validate"], ["build", "care-planner@2.0.0"], ["run", "care-planner@2.0.0"], ["list"],
])
def test_bad_config_through_the_cli_exits_2_without_traceback_or_store(
    lab_yml: Path, run_cli: Callable[..., CliResult], command: list[str]
) -> None:
    replace(lab_yml.parent / SUITE, "type: process", "type: teleport")
    result = run_cli("--lab", str(lab_yml), *command)
    assert result.code == 2
    assert "Traceback" not in result.err
    assert len(result.err.strip().splitlines()) == 1
    assert "unknown check type 'teleport'" in result.err
    assert not (lab_yml.parent / ".lab").exists()


def test_unknown_build_through_the_cli(lab_yml: Path, run_cli: Callable[..., CliResult]) -> None:
    result = run_cli("--lab", str(lab_yml), "run", "care-planner@9.9.9")
    assert result.code == 2
    assert result.err == "lab: unknown build 'care-planner@9.9.9'; versions of care-planner: 2.0.0, 2.1.0, 2.2.0\n"
    result = run_cli("--lab", str(lab_yml), "build", "spreadsheet@1.0")
    assert result.code == 2
    assert "unknown build 'spreadsheet@1.0'; builds in lab.yml: care-planner@2.0.0, care-planner@2.1.0, " \
           "care-planner@2.2.0" in result.err
    assert not (lab_yml.parent / ".lab").exists()


def test_unregistered_build_cannot_run(lab_yml: Path, run_cli: Callable[..., CliResult]) -> None:
    result = run_cli("--lab", str(lab_yml), "run", "care-planner@2.0.0")
    assert result.code == 2
    assert "build care-planner@2.0.0 is not registered; run `lab build care-planner@2.0.0` first" in result.err


def test_artifact_whose_digest_changed(lab_yml: Path, run_cli: Callable[..., CliResult]) -> None:
    assert run_cli("--lab", str(lab_yml), "build", "care-planner@2.0.0").code == 0
    artifact = lab_yml.parent / "artifacts" / "care-planner-2.0.0.tar.gz"
    artifact.write_bytes(artifact.read_bytes() + b"tampered")
    result = run_cli("--lab", str(lab_yml), "run", "care-planner@2.0.0")
    assert result.code == 2
    assert "the artifact changed since registration" in result.err
    assert str(artifact) in result.err
    listing = run_cli("--lab", str(lab_yml), "list")
    assert listing.out == "no campaigns yet; start one with `lab run PRODUCT@VERSION`\n"


def test_changed_source_cannot_be_registered_under_the_same_version(
    lab_yml: Path, run_cli: Callable[..., CliResult]
) -> None:
    assert run_cli("--lab", str(lab_yml), "build", "care-planner@2.0.0").code == 0
    artifact = lab_yml.parent / "artifacts" / "care-planner-2.0.0.tar.gz"
    before = artifact.read_bytes()
    write(lab_yml.parent / "products/care-planner/2.0.0/opt/care-planner/extra.txt", "changed\n")
    result = run_cli("--lab", str(lab_yml), "build", "care-planner@2.0.0")
    assert result.code == 2
    assert "a build's identity is its digest: give the changed artifact a new version" in result.err
    assert artifact.read_bytes() == before


def test_pinned_digest_mismatch_names_lab_yml_line(lab_yml: Path, run_cli: Callable[..., CliResult]) -> None:
    replace(lab_yml, "        artifact: artifacts/care-planner-2.0.0.tar.gz",
            "        artifact: artifacts/care-planner-2.0.0.tar.gz\n        sha256: '" + "0" * 64 + "'")
    result = run_cli("--lab", str(lab_yml), "build", "care-planner@2.0.0")
    assert result.code == 2
    line = lab_yml.read_text().splitlines().index("      - version: 2.0.0") + 1
    assert result.err.startswith(f"lab: {lab_yml}:{line}: build care-planner@2.0.0: the artifact's sha256 is ")
    assert not (lab_yml.parent / "artifacts" / "care-planner-2.0.0.tar.gz").exists()


def test_provider_override_runs_every_sandbox_on_it(lab_yml: Path) -> None:
    config = load_lab(lab_yml, provider="namespace")
    assert {s.provider for s in config.sandboxes} == {"namespace"}
    assert {s.provider for s in load_lab(lab_yml).sandboxes} == {"local"}


def test_unknown_provider_in_the_inventory(lab_yml: Path) -> None:
    replace(lab_yml.parent / "inventory" / "hosts.yml", "lab_provider: local", "lab_provider: docker")
    assert "host 'ts-sbx-01': unknown sandbox provider 'docker'; use one of: local, namespace, static" in error_of(
        lab_yml)
