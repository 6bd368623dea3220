"""Prove the Windows runner on a real host before the first campaign: every check type of runner.ps1
against things every Windows Server 2022 has (``lab/checks/selftest-windows.yml``), and the host facts
that decide whether runner.ps1 can work there at all (language mode, execution policy, PowerShell and
.NET versions, console code page), which the bootstrap reports before any check runs."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from lab.checks.delivery import run_runner
from lab.checks.manifest import compile_suite, parse_results, suite_budget
from lab.checks.powershell import host_facts
from lab.config.labfile import LabConfig, load_suite
from lab.errors import NotFoundError
from lab.model import Result, Suite
from lab.transports.base import transport_for

# The Release value of HKLM\SOFTWARE\Microsoft\NET Framework Setup\NDP\v4\Full: the lowest of each version.
DOTNET_RELEASES = ((533320, "4.8.1"), (528040, "4.8"), (461808, "4.7.2"), (461308, "4.7.1"), (460798, "4.7"),
                   (394802, "4.6.2"), (394254, "4.6.1"), (393295, "4.6"), (379893, "4.5.2"), (378675, "4.5.1"),
                   (378389, "4.5"))
UTF8_CODE_PAGE = "65001"
BLOCKING_POLICIES = ("AllSigned", "Restricted")


@dataclass(frozen=True)
class HostFacts:
    """What the PowerShell bootstrap found on the host (values as the host reported them)."""

    language_mode: str
    execution_policy: str
    machine_policy: str
    user_policy: str
    powershell: str
    dotnet_release: int | None
    code_page: str

    @classmethod
    def from_report(cls, facts: dict[str, Any]) -> HostFacts:
        """The facts of ``lab.checks.powershell.host_facts``; missing ones read as ``unknown``."""
        def word(name: str) -> str:
            value = facts.get(name)
            return str(value) if value not in (None, "") else "unknown"

        release = facts.get("dotnet_release")
        return cls(word("language_mode"), word("execution_policy"), word("machine_policy"), word("user_policy"),
                   word("powershell"), release if isinstance(release, int) else None, word("code_page"))

    @property
    def dotnet(self) -> str:
        """The .NET Framework version the Release number stands for."""
        if self.dotnet_release is None:
            return "unknown"
        name = next((v for floor, v in DOTNET_RELEASES if self.dotnet_release >= floor), "older than 4.5")
        return f"{name} (release {self.dotnet_release})"

    @property
    def policy_source(self) -> str:
        """Where the effective execution policy comes from: Group Policy wins over -ExecutionPolicy Bypass."""
        for scope, value in (("MachinePolicy", self.machine_policy), ("UserPolicy", self.user_policy)):
            if value not in ("Undefined", "unknown"):
                return f"set by Group Policy ({scope})"
        return "not set by Group Policy"

    def lines(self) -> list[str]:
        """The facts in words, then one line per condition that keeps runner.ps1 (or part of it) from working."""
        found = [
            f"language mode {self.language_mode}",
            f"execution policy {self.execution_policy}, {self.policy_source}",
            f"Windows PowerShell {self.powershell}, .NET Framework {self.dotnet}",
            f"console code page {self.code_page}",
        ]
        if self.language_mode not in ("FullLanguage", "unknown"):
            found.append(f"BLOCKER: {self.language_mode}: an application control policy (WDAC or AppLocker) keeps "
                         "runner.ps1 from running; every check reports error until the admin lets the WinRM "
                         "account run PowerShell in FullLanguage")
        if self.execution_policy in BLOCKING_POLICIES and self.policy_source != "not set by Group Policy":
            found.append(f"BLOCKER: execution policy {self.execution_policy} {self.policy_source} overrides "
                         "-ExecutionPolicy Bypass: unsigned Pester files (the self-test's too) will not run")
        if self.code_page not in (UTF8_CODE_PAGE, "unknown"):
            found.append(f"NOTE: code page {self.code_page}, not 65001: the WinRS shell ignored the requested "
                         "UTF-8 code page; programs' non-ASCII output may be garbled")
        return found


@dataclass(frozen=True)
class SelftestRun:
    """The self-test suite, one result per check, and the host facts (None: none came back, e.g. a host
    with ``lab_runner: python``, or a bootstrap that did not start)."""

    suite: Suite
    results: list[Result]
    facts: HostFacts | None


def selftest_suite() -> Suite:
    """The built-in Windows self-test suite shipped in the package."""
    path = resources.files("lab.checks").joinpath("selftest-windows.yml")
    return load_suite(Path(str(path)))


def run_selftest(config: LabConfig, host: str, timeout: float) -> SelftestRun:
    """Run the self-test suite on inventory host ``host`` over its own transport; the host's facts and one
    result per check.

    Raises NotFoundError for a host the inventory does not have, and the transport's errors
    (InfrastructureError, ConfigError) when the host cannot be reached or is configured wrong.
    """
    known = {h for group in config.inventory.groups for h in config.inventory.hosts_in(group)}
    if host not in known:
        raise NotFoundError(f"host {host!r} is not in the inventory {config.inventory.path}; "
                            f"hosts: {', '.join(sorted(known)) or '(none)'}")
    variables = config.inventory.variables(host)
    suite = selftest_suite()
    root = str(variables.get("lab_sandbox_root", "C:\\"))
    with transport_for(host, variables) as transport:
        output = run_runner(transport, compile_suite(suite, root, variables), suite_budget(suite, timeout))
    facts = host_facts(output.stdout)
    return SelftestRun(suite, parse_results(suite, output), HostFacts.from_report(facts) if facts else None)
