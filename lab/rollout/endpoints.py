"""Production endpoints: the hosts of the rollout settings' inventory group, served by the providers.

A production host is a host like a sandbox: its provider (``lab_provider``, default ``local``)
is looked up in ``lab.sandboxes.registry`` and serves it through the provider contract
(``lab.sandboxes.base``) in the ``production`` pool. What differs is the life cycle: production
hosts are provisioned once (``lab production up``: the baseline playbook, one Ansible run for
every host that needs it) and never reset by campaigns. With the default lab's provider
``local`` each host is a directory ``<state_dir>/production/<host>/root`` with its own loopback
port; with ``static`` they are real servers reached as the inventory says (their files under
``lab_sandbox_root``, default the filesystem root), which lab never provisions or removes.

A host the lab owns counts as provisioned once the baseline succeeded on it (recorded in
``<state_dir>/production/.provisioned/<host>.json``, removed before it is provisioned again);
a host of a provider that does not own its hosts is provisioned by definition.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lab.ansible.playbook import run_playbook_on
from lab.campaign.baseline import baseline_vars
from lab.config.labfile import LabConfig
from lab.config.rollout_plan import RolloutSettings
from lab.errors import ConfigError, InfrastructureError
from lab.evidence.leases import holder_of, lease
from lab.model import SandboxSpec
from lab.sandboxes.base import PRODUCTION, HostHandle, LabSite, Provider
from lab.sandboxes.registry import provider_for, provider_names
from lab.util.atomic import write_text

LEASE = "production"
DEFAULT_PROVIDER = "local"


@dataclass(frozen=True)
class Endpoint:
    """A production host: how the inventory declares it, its provider, and its handle when it is up
    (where its files are and the facts, never secrets, that reach Ansible, the transport and suites,
    so deploy, rollback and verify agree on how to reach it)."""

    spec: SandboxSpec
    served_by: Provider = field(repr=False, compare=False)
    handle: HostHandle | None
    provisioned: bool

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def provider(self) -> str:
        return self.spec.provider

    @property
    def host_vars(self) -> dict[str, Any]:
        return self.spec.host_vars

    @property
    def root(self) -> str:
        """Where the host's files are ("" while it is not up)."""
        return self.handle.root if self.handle is not None else ""

    @property
    def facts(self) -> dict[str, Any]:
        """The provider's facts ({} while the host is not up)."""
        return self.handle.facts if self.handle is not None else {}

    def variables(self) -> dict[str, Any]:
        """The host's inventory variables with the provider's facts over them."""
        return {**self.host_vars, **self.facts}


@dataclass(frozen=True)
class ProvisionOutcome:
    """What ``provision`` did: hosts it provisioned, hosts that were already up, and how long it took."""

    provisioned: tuple[str, ...]
    already: tuple[str, ...]
    seconds: float


def marker(config: LabConfig, host: str) -> Path:
    """The file that says the baseline succeeded on ``host``."""
    return config.state_dir / "production" / ".provisioned" / f"{host}.json"


def production_provider(config: LabConfig, name: str, host: str) -> Provider:
    """Provider ``name`` serving production hosts; ConfigError naming the host and the known providers."""
    if name not in provider_names():
        raise ConfigError(f"production host {host}: unknown provider {name!r}; use one of: "
                          f"{', '.join(provider_names())}", source=str(config.inventory.path))
    site = LabSite(config.root, config.inventory.sources, config.timeouts.playbook, config.ansible)
    return provider_for(name, config.state_dir, site, PRODUCTION)


def endpoint(config: LabConfig, host: str) -> Endpoint:
    """The production host ``host`` as its provider sees it now (nothing is changed or created)."""
    variables = config.inventory.variables(host)
    spec = SandboxSpec(host, str(variables.get("lab_platform", "")),
                       str(variables.get("lab_provider", DEFAULT_PROVIDER)), variables)
    provider = production_provider(config, spec.provider, host)
    handle = provider.current(spec)
    provisioned = handle is not None and (not provider.owns_hosts or marker(config, host).exists())
    return Endpoint(spec, provider, handle, provisioned)


def endpoints(config: LabConfig, settings: RolloutSettings) -> list[Endpoint]:
    """Every production host of ``settings``' group, sorted by name."""
    return [endpoint(config, host) for host in settings.hosts]


@contextmanager
def production_lease(config: LabConfig, holder: str, timeout: float = 2.0) -> Iterator[None]:
    """Hold production for ``holder``: one rollout or provisioning at a time; InfrastructureError
    naming the current holder when another process has it."""
    held = ExitStack()
    try:
        held.enter_context(lease(config, LEASE, holder, timeout))
    except InfrastructureError:
        holder_now = holder_of(config, LEASE) or "another lab process"
        raise InfrastructureError(f"production is busy: {holder_now} holds it. Wait for it to finish (a killed "
                                  "process lets go at once)") from None
    with held:
        yield


def provision(config: LabConfig, settings: RolloutSettings, rebuild: bool = False) -> ProvisionOutcome:
    """Bring every production host the lab owns up with the baseline playbook, in one Ansible run.

    Promises: hosts already provisioned are left exactly as they are (unless ``rebuild``: then
    their providers reset them and they are provisioned from a fresh state); a host counts as
    provisioned only once the baseline succeeded on it; InfrastructureError names the hosts
    the baseline failed on.
    """
    if config.baseline is None:
        raise ConfigError(f"{config.path.name} names no baseline playbook to provision production hosts with",
                          source=str(config.path))
    started = time.monotonic()
    with production_lease(config, "lab production up"):
        current = endpoints(config, settings)
        todo = [e for e in current if e.served_by.owns_hosts and (rebuild or not e.provisioned)]
        facts: dict[str, dict[str, Any]] = {}
        for item in todo:
            marker(config, item.name).unlink(missing_ok=True)  # not provisioned until the baseline succeeds again
            facts[item.name] = item.served_by.reset(item.spec).facts
        if todo:
            outcome = run_playbook_on(config.baseline, inventory=config.inventory.sources, ansible=config.ansible,
                                      hosts=[e.name for e in todo],
                                      extravars=baseline_vars(config.baseline, config.state_dir), host_vars=facts,
                                      work_dir=config.state_dir / "runs" / "production",
                                      timeout=config.timeouts.playbook, forks=settings.forks)
            failed = [e.name for e in todo if not outcome.host_ok(e.name)]
            for item in todo:
                if item.name not in failed:
                    write_text(marker(config, item.name), json.dumps({"provisioned_at": time.time()}))
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
    """Destroy every production host the lab owns (hosts of providers that do not own them, such as
    static, are never touched); the names of those that existed."""
    removed = []
    with production_lease(config, "lab production down"):
        for item in endpoints(config, settings):
            if not item.served_by.owns_hosts:
                continue
            existed = item.served_by.describe(item.spec).get("state") != "absent"
            item.served_by.destroy(item.spec)
            marker(config, item.name).unlink(missing_ok=True)
            if existed:
                removed.append(item.name)
    return removed


def halt_hosts(config: LabConfig, settings: RolloutSettings) -> list[str]:
    """Stop what every production host the lab owns runs, side by side, keeping their files (what each
    host installed and logged stays readable); the names of those that were up. A halted host is
    provisioned again, from a fresh state, by the next ``provision``."""
    with production_lease(config, "lab production stop"):
        owned = [item for item in endpoints(config, settings) if item.served_by.owns_hosts]
        with ThreadPoolExecutor(max_workers=max(1, min(len(owned), 32))) as pool:
            for done in [pool.submit(item.served_by.halt, item.spec) for item in owned]:
                done.result()
    return [item.name for item in owned if item.handle is not None]


def journal_running(root: Path) -> bool:
    """Whether the baseline journal service of the host whose tree is ``root`` is alive."""
    try:
        pid = int((root / "run" / "journal.pid").read_text().strip())
        return str(root).encode() in Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return False


def installed(root: Path) -> dict[str, str]:
    """product -> version, from the install records in the host's tree ``root``."""
    found = {}
    for record in sorted((root / "var/lib/lab/installed").glob("*.json")):
        try:
            data = json.loads(record.read_text())
            found[str(data["product"])] = str(data["version"])
        except (OSError, ValueError, KeyError, TypeError):
            found[record.stem] = "?"
    return found


def describe(item: Endpoint) -> dict[str, Any]:
    """A short status for ``lab production status``: ``absent`` until provisioned; for a host whose
    files are on this machine, ``up`` or ``down`` (its baseline journal service) and what it runs;
    otherwise the provider's own word (``static``, ``running``, ...)."""
    if not item.provisioned:
        where = item.root or str(item.served_by.describe(item.spec).get("where", "-"))
        return {"state": "absent", "where": where, "installed": {}}
    tree = item.served_by.tree(item.spec)
    if tree is None:
        info = item.served_by.describe(item.spec)
        return {"state": str(info.get("state", "?")), "where": str(info.get("where", item.root)), "installed": {}}
    return {"state": "up" if journal_running(tree) else "down", "where": item.root, "port": item.facts["lab_port"],
            "installed": installed(tree)}
