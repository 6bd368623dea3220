"""Production endpoints: the hosts of the rollout settings' inventory group.

Provider ``local`` (the default lab's demo production): each host is a directory
``<state_dir>/production/<host>/root`` with its own loopback port, like a local sandbox, but it
is provisioned once (``lab production up``: the baseline playbook, one Ansible run for every
host) and never reset by campaigns. Provider ``static``: real servers reached as the inventory
says, their files under ``lab_root`` (default ``/``); lab never provisions or removes them.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lab.ansible.playbook import run_playbook_on
from lab.campaign.baseline import baseline_vars
from lab.config.labfile import LabConfig
from lab.config.rollout_plan import RolloutSettings
from lab.errors import ConfigError, InfrastructureError
from lab.sandboxes.lease import current_holder, lease
from lab.sandboxes.local import SKELETON, free_loopback_port, stop_processes
from lab.util.atomic import write_text

PROVIDERS = ("local", "static")
LEASE = "production"


@dataclass(frozen=True)
class Endpoint:
    """A production host: where its files are and the facts (never secrets) that reach Ansible,
    the transport and suites, so deploy, rollback and verify agree on how to reach it."""

    name: str
    provider: str
    host_vars: dict[str, Any]
    root: str
    facts: dict[str, Any]
    provisioned: bool

    def variables(self) -> dict[str, Any]:
        """The host's inventory variables with the provider's facts over them."""
        return {**self.host_vars, **self.facts}


@dataclass(frozen=True)
class ProvisionOutcome:
    """What ``provision`` did: hosts it provisioned, hosts that were already up, and how long it took."""

    provisioned: tuple[str, ...]
    already: tuple[str, ...]
    seconds: float


def home(config: LabConfig, host: str) -> Path:
    return config.state_dir / "production" / host


def endpoint(config: LabConfig, host: str) -> Endpoint:
    """The production host ``host`` as its provider sees it now."""
    variables = config.inventory.variables(host)
    provider = str(variables.get("lab_provider", "local"))
    if provider == "static":
        root = str(variables.get("lab_root", "/"))
        return Endpoint(host, provider, variables, root, {"sandbox_root": root, "sandbox_name": host}, True)
    if provider != "local":
        raise ConfigError(f"production host {host}: provider {provider!r} is not supported for production; "
                          f"use one of {', '.join(PROVIDERS)}", source=str(config.inventory.path))
    facts_path = home(config, host) / "facts.json"
    saved: dict[str, Any] = json.loads(facts_path.read_text()) if facts_path.exists() else {}
    root = str(home(config, host) / "root")
    return Endpoint(host, provider, variables, root, local_facts(host, root, saved.get("lab_port", 0)),
                    facts_path.exists())


def local_facts(host: str, root: str, port: int) -> dict[str, Any]:
    return {"ansible_connection": "local", "ansible_python_interpreter": sys.executable, "sandbox_root": root,
            "sandbox_name": host, "lab_port": port}


def endpoints(config: LabConfig, settings: RolloutSettings) -> list[Endpoint]:
    """Every production host of ``settings``' group, sorted by name."""
    return [endpoint(config, host) for host in settings.hosts]


@contextmanager
def production_lease(config: LabConfig, holder: str, timeout: float = 2.0) -> Iterator[None]:
    """Hold production for ``holder``: one rollout or provisioning at a time; InfrastructureError
    naming the current holder when another process has it."""
    held = ExitStack()
    try:
        held.enter_context(lease(config.state_dir, LEASE, holder, timeout))
    except InfrastructureError:
        holder_now = current_holder(config.state_dir / "leases" / f"{LEASE}.lock") or "another lab process"
        raise InfrastructureError(f"production is busy: {holder_now} holds it. Wait for it to finish (a killed "
                                  "process lets go at once)") from None
    with held:
        yield


def provision(config: LabConfig, settings: RolloutSettings, rebuild: bool = False) -> ProvisionOutcome:
    """Bring every local production host up with the baseline playbook, in one Ansible run.

    Promises: hosts already provisioned are left exactly as they are (unless ``rebuild``: then
    their processes are stopped and they are provisioned from a fresh tree); a host counts as
    provisioned only once the baseline succeeded on it; InfrastructureError names the hosts
    the baseline failed on.
    """
    if config.baseline is None:
        raise ConfigError(f"{config.path.name} names no baseline playbook to provision production hosts with",
                          source=str(config.path))
    started = time.monotonic()
    with production_lease(config, "lab production up"):
        current = endpoints(config, settings)
        todo = [e for e in current if e.provider == "local" and (rebuild or not e.provisioned)]
        ports = {int(e.facts["lab_port"]) for e in current if e.provisioned and e not in todo}
        facts: dict[str, dict[str, Any]] = {}
        for item in todo:
            stop_processes(Path(item.root))
            shutil.rmtree(home(config, item.name), ignore_errors=True)
            for sub in SKELETON:
                (Path(item.root) / sub).mkdir(parents=True, exist_ok=True)
            port = free_loopback_port()
            while port in ports:
                port = free_loopback_port()
            ports.add(port)
            facts[item.name] = local_facts(item.name, item.root, port)
        if todo:
            outcome = run_playbook_on(config.baseline, inventory=config.inventory.path, hosts=[e.name for e in todo],
                                      extravars=baseline_vars(config.baseline, config.state_dir), host_vars=facts,
                                      work_dir=config.state_dir / "runs" / "production",
                                      timeout=config.timeouts.playbook, forks=settings.forks)
            failed = [e.name for e in todo if not outcome.host_ok(e.name)]
            for item in todo:
                if item.name not in failed:
                    write_text(home(config, item.name) / "facts.json",
                               json.dumps({"lab_port": facts[item.name]["lab_port"], "provisioned_at": time.time()}))
            if failed:
                details = "; ".join(f"{name}: {outcome.detail(name)}" for name in failed[:3])
                raise InfrastructureError(f"the baseline failed on {len(failed)} production host(s): {details}")
    return ProvisionOutcome(tuple(e.name for e in todo), tuple(e.name for e in current if e not in todo),
                            time.monotonic() - started)


def require_provisioned(config: LabConfig, hosts: list[Endpoint]) -> None:
    """InfrastructureError naming the hosts that are not provisioned yet, if any."""
    missing = [e.name for e in hosts if not e.provisioned]
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise InfrastructureError(f"production host(s) {shown} are not provisioned; run `lab production up`")


def teardown(config: LabConfig, settings: RolloutSettings) -> list[str]:
    """Stop and remove every local production host (static hosts are never touched); their names."""
    removed = []
    with production_lease(config, "lab production down"):
        for item in endpoints(config, settings):
            if item.provider == "local" and home(config, item.name).exists():
                stop_processes(Path(item.root))
                shutil.rmtree(home(config, item.name))
                removed.append(item.name)
    return removed


def journal_running(root: Path) -> bool:
    """Whether the baseline journal service of the host at ``root`` is alive."""
    try:
        pid = int((root / "run" / "journal.pid").read_text().strip())
        return str(root).encode() in Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return False


def installed(root: Path) -> dict[str, str]:
    """product -> version, from the host's install records (local hosts only)."""
    found = {}
    for record in sorted((root / "var/lib/lab/installed").glob("*.json")):
        try:
            data = json.loads(record.read_text())
            found[str(data["product"])] = str(data["version"])
        except (OSError, ValueError, KeyError, TypeError):
            found[record.stem] = "?"
    return found


def describe(item: Endpoint) -> dict[str, Any]:
    """A short status for ``lab production status``."""
    if item.provider != "local":
        return {"state": "static", "where": item.root, "installed": {}}
    if not item.provisioned:
        return {"state": "absent", "where": item.root, "installed": {}}
    root = Path(item.root)
    return {"state": "up" if journal_running(root) else "down", "where": item.root, "port": item.facts["lab_port"],
            "installed": installed(root)}
