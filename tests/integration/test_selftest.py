"""`lab selftest HOST`: the Windows self-test's plumbing, proven against the WinRM test endpoint.

The endpoint's shell is POSIX, so the host runs the Python runner (`lab_runner: python`): checks
of Windows-only types come back as `error` (the Python runner does not have them), which proves
the suite travels, every check is reported, and the exit code says not everything passed. On a
real Windows host the same command runs runner.ps1.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from lab.campaign.selftest import selftest_suite
from lab.checks.types.windows import WINDOWS_CHECK_TYPES
from tests.support.labfiles import CliResult, copy_default_lab
from tests.support.powershell_model import FACTS, powershell_stand_in
from tests.support.winrm_endpoint import WinRMEndpoint
from tests.support.winrm_lab import PASSWORD, USER, host_vars

pytestmark = pytest.mark.integration


def test_the_selftest_suite_covers_every_windows_check_type() -> None:
    suite = selftest_suite()
    assert {c.type for c in suite.checks} == set(WINDOWS_CHECK_TYPES)
    assert suite.platforms == ("windows-server-2022",)


def test_selftest_reports_every_check_of_the_host(tmp_path: Path, run_cli: Callable[..., CliResult]) -> None:
    lab_yml = copy_default_lab(tmp_path / "lab")
    with WinRMEndpoint(users={USER: PASSWORD}) as ep:
        inventory = lab_yml.parent / "inventory" / "hosts.yml"
        data = yaml.safe_load(inventory.read_text())
        data["all"]["children"]["windows_vms"] = {"hosts": {"win-vm-01": host_vars(ep)}}
        inventory.write_text(yaml.safe_dump(data))
        result = run_cli("--lab", str(lab_yml), "selftest", "win-vm-01", "--timeout", "120")
        assert ep.counters.shells_created == 1
    suite = selftest_suite()
    facts, *lines = result.out.splitlines()
    assert result.code == 1, result.out + result.err
    assert facts == "host  not reported (the host does not run the PowerShell runner)"  # a Python-runner host
    assert len(lines) == len(suite.checks) + 1
    # On the endpoint's Linux host only the check for a file that must be absent can pass; the
    # Python runner lacks the Windows-only types, and cmd.exe / powershell.exe cannot start.
    assert lines[-1] == "1/19 self-test checks passed on win-vm-01"
    reported = {line.split()[2].rstrip(":"): line.split()[0] for line in lines[:-1]}
    assert reported == {
        "no-such-file": "PASS",
        **dict.fromkeys(["notepad-version", "hosts-file", "eventlog-service", "no-such-service", "lsass-running",
                         "winrm-listening", "wsman-answers"], "FAIL"),
        **dict.fromkeys(["product-name", "major-version", "uninstall-key-32bit", "package-lookup", "cmd-ver",
                         "argv-quoting", "windows-version", "notepad-launches", "eventlog-query",
                         "write-pester-file", "pester-selftest"], "ERROR"),
    }
    assert set(reported) == {c.id for c in suite.checks}
    registry = [line for line in lines if line.split()[1] == "registry"]
    assert len(registry) == 3 and all("unknown check type 'registry'" in line for line in registry)
    assert PASSWORD not in result.out + result.err


def test_selftest_of_an_unknown_host(tmp_path: Path, run_cli: Callable[..., CliResult]) -> None:
    result = run_cli("--lab", str(copy_default_lab(tmp_path / "lab")), "selftest", "win-nowhere")
    assert result.code == 2
    assert "host 'win-nowhere' is not in the inventory" in result.err


def test_selftest_prints_the_host_facts_before_any_check(tmp_path: Path, run_cli: Callable[..., CliResult]) -> None:
    # The whole PowerShell path: the lab's transport sends POWERSHELL_ARGV and the framed runner through a
    # real WinRS shell; on the endpoint a powershell.exe stand-in answers as the bootstrap model does on a
    # host under WDAC/AppLocker (ConstrainedLanguage) with AllSigned set by Group Policy.
    facts = {**FACTS, "language_mode": "ConstrainedLanguage", "execution_policy": "AllSigned",
             "machine_policy": "AllSigned", "code_page": "65001"}
    bin_dir = tmp_path / "bin"
    powershell_stand_in(bin_dir, facts)
    lab_yml = copy_default_lab(tmp_path / "lab")
    with WinRMEndpoint(users={USER: PASSWORD}, env={"PATH": f"{bin_dir}:{os.environ['PATH']}"}) as ep:
        inventory = lab_yml.parent / "inventory" / "hosts.yml"
        data = yaml.safe_load(inventory.read_text())
        data["all"]["children"]["windows_vms"] = {"hosts": {"win-vm-01": host_vars(ep, lab_runner="powershell")}}
        inventory.write_text(yaml.safe_dump(data))
        result = run_cli("--lab", str(lab_yml), "selftest", "win-vm-01", "--timeout", "120")
        assert (ep.counters.shells_created, ep.counters.commands_run) == (1, 1)
    lines = result.out.splitlines()
    assert result.code == 1, result.out + result.err
    assert lines[:6] == [
        "host  language mode ConstrainedLanguage",
        "host  execution policy AllSigned, set by Group Policy (MachinePolicy)",
        "host  Windows PowerShell 5.1.20348.2849, .NET Framework 4.8 (release 528449)",
        "host  console code page 65001",
        "host  BLOCKER: ConstrainedLanguage: an application control policy (WDAC or AppLocker) keeps runner.ps1 "
        "from running; every check reports error until the admin lets the WinRM account run PowerShell in "
        "FullLanguage",
        "host  BLOCKER: execution policy AllSigned set by Group Policy (MachinePolicy) overrides -ExecutionPolicy "
        "Bypass: unsigned Pester files (the self-test's too) will not run",
    ]
    checks = lines[6:-1]
    assert len(checks) == len(selftest_suite().checks)
    assert all(line.startswith("ERROR") and "PowerShell runs in ConstrainedLanguage mode on this host" in line
               for line in checks)
    assert lines[-1] == "0/19 self-test checks passed on win-vm-01"
