"""Prove the Windows runner on a real host before the first campaign: every check type of runner.ps1
against things every Windows Server 2022 has (``lab/checks/selftest-windows.yml``)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from lab.checks.manifest import run_suite
from lab.config.labfile import LabConfig, load_suite
from lab.errors import NotFoundError
from lab.model import Result, Suite
from lab.transports.base import transport_for


def selftest_suite() -> Suite:
    """The built-in Windows self-test suite shipped in the package."""
    path = resources.files("lab.checks").joinpath("selftest-windows.yml")
    return load_suite(Path(str(path)))


def run_selftest(config: LabConfig, host: str, timeout: float) -> tuple[Suite, list[Result]]:
    """Run the self-test suite on inventory host ``host`` over its own transport; one result per check.

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
        return suite, run_suite(transport, suite, root, variables, timeout)
