"""WINDOWS_CHECK_TYPES: valid schemas that accept what runner.ps1 reads, and the Windows self-test suite."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import pytest

from lab.checks.types.linux import CHECK_TYPES, COMMON_FIELDS
from lab.checks.types.windows import WINDOWS_CHECK_TYPES, case_clashes
from lab.config.labfile import load_suite
from lab.config.schemas import schema, validate
from lab.errors import ConfigError
from lab.util.yamlfile import load_yaml, plain

SELFTEST = Path(__file__).resolve().parents[3] / "lab" / "checks" / "selftest-windows.yml"
# Linux parameters that mean nothing on Windows (mode bits, owners, symlinks, init scripts, dpkg/rpm, comm).
LINUX_ONLY = {"file": {"mode", "follow", "owner", "group", "target"}, "service": {"process", "pid_file"},
              "package": {"manager"}, "process": {"comm", "exe", "cmdline"}}


def errors(kind: str, params: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft202012Validator(WINDOWS_CHECK_TYPES[kind])
    return [e.message for e in validator.iter_errors(params)]


@pytest.mark.parametrize("kind", sorted(WINDOWS_CHECK_TYPES))
def test_each_schema_is_a_valid_draft_2020_12_schema(kind: str) -> None:
    jsonschema.Draft202012Validator.check_schema(WINDOWS_CHECK_TYPES[kind])
    assert WINDOWS_CHECK_TYPES[kind]["additionalProperties"] is False


@pytest.mark.parametrize("kind", sorted(set(CHECK_TYPES) & set(WINDOWS_CHECK_TYPES)))
def test_shared_types_keep_the_linux_parameters(kind: str) -> None:
    """A suite written for both platforms validates on both, but for the documented Linux-only parameters."""
    linux = set(CHECK_TYPES[kind]["properties"]) - LINUX_ONLY.get(kind, set())
    assert linux <= set(WINDOWS_CHECK_TYPES[kind]["properties"])


def test_windows_only_differences_are_the_documented_ones() -> None:
    for kind, names in LINUX_ONLY.items():
        assert names & set(WINDOWS_CHECK_TYPES[kind]["properties"]) == set(), kind
    assert set(WINDOWS_CHECK_TYPES["file"]["properties"]) - set(CHECK_TYPES["file"]["properties"]) == {"file_version"}
    assert set(WINDOWS_CHECK_TYPES) - set(CHECK_TYPES) == {"registry", "launch", "eventlog", "pester"}


def test_no_parameter_is_named_like_a_field_of_the_check() -> None:
    # A suite entry is flat: a parameter called "type" or "skip" could never reach the runner.
    clashes = {(kind, name) for kind, body in WINDOWS_CHECK_TYPES.items() for name in body["properties"]
               if name in COMMON_FIELDS}
    assert clashes == {("http", "timeout")}  # inherited from CHECK_TYPES, honoured by both runners


@pytest.mark.parametrize(
    ("kind", "params", "problem"),
    [
        ("registry", {"key": "HKLM:\\SOFTWARE", "value_type": "DWord"}, "'value' is a dependency of 'value_type'"),
        ("registry", {"key": "SOFTWARE\\Microsoft"}, "does not match"),
        ("registry", {"key": "HKLM:\\SOFTWARE", "value": "x", "value_type": "REG_SZ"}, "is not one of"),
        ("service", {"name": "EventLog", "start_mode": "automatic"}, "is not one of"),
        ("package", {"version": ">=1.0"}, "is not valid under any of the given schemas"),
        ("package", {"name": "Journal", "installed": False, "version": ">=1.0"}, "True was expected"),
        ("eventlog", {"since": "yesterday"}, "does not match"),
        ("eventlog", {"since": "2024-05-01T06:00:00Z", "source": "it's"}, "does not match"),
        ("file", {"path": "C:\\x", "mode": "0644"}, "Additional properties are not allowed ('mode' was unexpected)"),
        ("launch", {"command": "notepad.exe", "alive": 0}, "less than or equal to the minimum of 0"),
    ],
)
def test_bad_parameters_are_rejected(kind: str, params: dict[str, Any], problem: str) -> None:
    found = errors(kind, params)
    assert any(problem in message for message in found), found


@pytest.mark.parametrize(
    ("kind", "params"),
    [
        ("registry", {"key": "HKEY_LOCAL_MACHINE\\SOFTWARE\\Lab", "value": "(default)", "data": 10, "view": 32}),
        ("eventlog", {"since": "2024-05-01T06:00:00+02:00", "level": "warning", "event_id": [1000, 1001]}),
        ("eventlog", {"since": "${lab_deployed_at}"}),
        ("package", {"product_id": "{90160000-0011-0000-1000-0000000FF1CE}", "version": "~=16.0"}),
        ("file", {"path": "%ProgramFiles%\\App\\app.exe", "file_version": ">=2.1, <3"}),
        ("pester", {"path": "C:\\tests\\App.Tests.ps1", "tag": ["smoke"]}),
        ("service", {"name": "Spooler", "running": False, "enabled": False}),
        ("package", {"name": "Microsoft Edge", "version": ">=120"}),
    ],
)
def test_good_parameters_are_accepted(kind: str, params: dict[str, Any]) -> None:
    assert errors(kind, params) == []


def selftest() -> tuple[Any, dict[str, Any]]:
    data = load_yaml(SELFTEST)
    return data, plain(data)


def test_selftest_is_a_valid_suite_for_windows_server_2022() -> None:
    data, raw = selftest()
    validate(data, schema("suite"), SELFTEST)
    assert raw["suite"] == "selftest-windows"
    assert raw["platforms"] == ["windows-server-2022"]
    ids = [c["id"] for c in raw["checks"]]
    assert len(ids) == len(set(ids))
    for index, check in enumerate(raw["checks"]):
        params = {k: v for k, v in check.items() if k not in COMMON_FIELDS}
        validate(params, WINDOWS_CHECK_TYPES[check["type"]], SELFTEST, base=[f"check {check['id']}"])
        assert data["checks"][index].lc.line > 0


def test_selftest_exercises_every_windows_check_type() -> None:
    _, raw = selftest()
    assert {c["type"] for c in raw["checks"]} == set(WINDOWS_CHECK_TYPES)


def test_selftest_writes_its_pester_file_before_running_it() -> None:
    _, raw = selftest()
    order = [c["id"] for c in raw["checks"]]
    pester = next(c for c in raw["checks"] if c["type"] == "pester")
    writer = next(c for c in raw["checks"] if c["id"] == "write-pester-file")
    assert order.index("write-pester-file") < order.index(pester["id"])
    script = writer["command"][-1]
    assert "Selftest.Tests.ps1" in script and "lab-selftest" in script
    assert pester["path"] == "C:\\Windows\\Temp\\lab-selftest\\Selftest.Tests.ps1"


def test_a_selftest_typo_is_a_config_error_naming_the_file(tmp_path: Path) -> None:
    broken = tmp_path / "selftest.yml"
    broken.write_text(SELFTEST.read_text().replace("value_type: DWord", "value_typ: DWord"))
    raw = plain(load_yaml(broken))
    check = next(c for c in raw["checks"] if c["id"] == "major-version")
    params = {k: v for k, v in check.items() if k not in COMMON_FIELDS}
    with pytest.raises(ConfigError, match="unknown field 'value_typ' in check major-version") as caught:
        validate(params, WINDOWS_CHECK_TYPES["registry"], broken, base=["check major-version"])
    assert caught.value.source == str(broken)


# --- issue 13: what Windows PowerShell 5.1 and Windows itself need ---------------------------------------

@pytest.mark.parametrize(
    ("kind", "params"),
    [
        ("command", {"command": "app.exe", "exit_code": 3221225477}),  # 0xC0000005, unsigned
        ("command", {"command": "app.exe", "exit_code": -1073741819}),  # the same, signed
        ("eventlog", {"since": "deploy"}),
        ("file", {"path": "C:\\x", "kind": "directory"}),
    ],
)
def test_windows_only_values_are_accepted(kind: str, params: dict[str, Any]) -> None:
    assert errors(kind, params) == []


@pytest.mark.parametrize(
    ("kind", "params", "problem"),
    [
        ("command", {"command": "app.exe", "exit_code": 2**32}, "is greater than the maximum of 4294967295"),
        ("file", {"path": "C:\\x", "kind": "symlink"}, "is not one of ['file', 'directory']"),
        ("eventlog", {"since": "deployed"}, "does not match"),
    ],
)
def test_values_runner_ps1_cannot_judge_are_rejected(kind: str, params: dict[str, Any], problem: str) -> None:
    found = errors(kind, params)
    assert any(problem in message for message in found), found


def test_case_clashes_are_named() -> None:
    assert case_clashes("command", {"command": "x", "env": {"Path": "a", "PATH": "b", "TEMP": "c"}}) == [
        "env: Path, PATH"]
    assert case_clashes("http", {"url": "http://x", "headers": {"Accept": "a", "accept": "b"}}) == [
        "headers: Accept, accept"]
    assert case_clashes("command", {"command": "x", "env": {"Path": "a", "Temp": "b"}}) == []
    assert case_clashes("registry", {"key": "HKLM:\\X", "value": "v"}) == []


def test_a_suite_with_case_only_duplicate_keys_is_refused_at_validation(tmp_path: Path) -> None:
    # PowerShell 5.1's ConvertFrom-Json rejects the whole manifest for {"Path": .., "PATH": ..}: every check
    # of the suite would error on the host. Validation names the check and its line instead.
    suite = tmp_path / "env.yml"
    suite.write_text(
        "suite: env\nplatforms: [windows-server-2022]\nchecks:\n"
        "  - id: fine\n    type: command\n    command: cmd.exe /c ver\n"
        "  - id: clash\n    type: command\n    command: cmd.exe /c set\n"
        "    env: {Path: 'C:\\\\tools', PATH: 'C:\\\\other'}\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_suite(suite)
    assert str(caught.value).endswith(
        "check 'clash': keys that differ only in case (env: Path, PATH); Windows PowerShell 5.1 cannot read a "
        "manifest with them (every check would error): keep one of each")
    assert (caught.value.source, caught.value.line) == (str(suite), 7)
    linux = tmp_path / "linux.yml"
    linux.write_text(suite.read_text().replace("windows-server-2022", "debian-12"))
    assert [c.id for c in load_suite(linux).checks] == ["fine", "clash"]  # Linux environments are case-sensitive
