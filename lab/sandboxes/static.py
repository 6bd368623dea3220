"""Provider ``static``: existing hosts from the Ansible inventory (Windows VMs, say), taken as they are.

Sandboxes or production servers: the lab neither creates nor destroys them (``destroy`` only
forgets what the lab recorded); the inventory says how to reach them (Ansible and the transport
read the same variables). ``reset`` runs the host's reset playbook, if it has
one: the inventory variable ``lab_reset_playbook``, a path relative to the lab's root (the
directory of lab.yml), run through ansible-runner limited to that host. Typically it reverts a
snapshot on Hyper-V, vSphere or libvirt and waits for the host to come back. Without one,
``reset`` changes nothing on the host and the campaign's reset step says so.

The host's root is ``lab_sandbox_root`` if set, else the host's filesystem root: ``C:\\`` on
Windows hosts (a ``winrm``/``psrp`` connection with the PowerShell runner, or an
``ansible_shell_type`` of powershell or cmd), ``/`` elsewhere. Both runners read a filesystem
root as "paths as the suite writes them".

The handle's facts are ``sandbox_root`` and ``sandbox_name`` only: connection settings and
credentials stay in the inventory, so nothing secret reaches extra vars, the store or reports.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lab.ansible.playbook import run_playbook
from lab.errors import ConfigError, InfrastructureError
from lab.model import SandboxSpec
from lab.sandboxes.base import HostHandle, Provider
from lab.util.atomic import write_text

WINDOWS_CONNECTIONS = ("winrm", "psrp")
WINDOWS_SHELLS = ("powershell", "cmd")


def is_windows(variables: Mapping[str, Any]) -> bool:
    """True when the inventory says the host runs Windows (see the module docstring)."""
    if str(variables.get("ansible_shell_type", "")).lower() in WINDOWS_SHELLS:
        return True
    connection = str(variables.get("ansible_connection", "")).lower()
    runner = str(variables.get("lab_runner", "powershell")).lower()
    return connection in WINDOWS_CONNECTIONS and runner == "powershell"


def sandbox_root(spec: SandboxSpec) -> str:
    """Where the sandbox's files live: ``lab_sandbox_root``, or the host's filesystem root."""
    raw = spec.host_vars.get("lab_sandbox_root")
    if raw is None:
        return "C:\\" if is_windows(spec.host_vars) else "/"
    if not isinstance(raw, str) or not raw.strip():
        raise ConfigError(f"host {spec.name}: lab_sandbox_root must be a non-empty path, not {raw!r}")
    return raw


class StaticProvider(Provider):
    """Hosts as the inventory declares them; reset by their reset playbook or not at all."""

    name = "static"
    owns_hosts = False

    def home(self, spec: SandboxSpec) -> Path:
        """Where the lab keeps what it knows about the host (its last reset), never the host itself."""
        return self.state_dir / "static" / spec.name

    def reset_playbook(self, spec: SandboxSpec) -> Path | None:
        """The host's reset playbook, resolved against the lab's root; None if it has none."""
        raw = spec.host_vars.get("lab_reset_playbook")
        if raw is None or raw == "":
            return None
        if not isinstance(raw, str):
            raise ConfigError(f"host {spec.name}: lab_reset_playbook must be a path, not {raw!r}")
        if self.site is None:
            raise ConfigError(f"host {spec.name}: lab_reset_playbook {raw!r} is relative to the lab's root, "
                              "which this caller did not give the static provider (pass a LabSite)")
        path = (self.site.root / raw).resolve()
        if not path.is_file():
            raise ConfigError(f"host {spec.name}: lab_reset_playbook {raw!r} not found (looked for {path}); "
                              "create it or fix the inventory")
        return path

    def reset(self, spec: SandboxSpec) -> HostHandle:
        """Run the host's reset playbook (InfrastructureError if it fails), or leave the host as it is."""
        facts = self.current(spec).facts
        root = str(facts["sandbox_root"])
        playbook = self.reset_playbook(spec)
        if playbook is None:
            note = (f"not reset: static host {spec.name} has no lab_reset_playbook, so it is used as it is "
                    f"(root {root})")
        else:
            assert self.site is not None  # reset_playbook() checked it
            outcome = run_playbook(playbook, inventory=self.site.inventory, ansible=self.site.ansible, host=spec.name,
                                   extravars=dict(facts),
                                   work_dir=self.home(spec) / "runs", timeout=self.site.playbook_timeout)
            if not outcome.host_ok(spec.name):
                self.remember(spec, playbook, ok=False)
                raise InfrastructureError(f"host {spec.name}: reset playbook failed: {outcome.detail(spec.name)}")
            note = f"reset by {playbook.name}: {outcome.detail(spec.name)} (root {root})"
        self.remember(spec, playbook, ok=True)
        return HostHandle(spec.name, root, facts, note)

    def current(self, spec: SandboxSpec) -> HostHandle:
        """The host as the inventory declares it: a static host is always up, as far as the lab can tell."""
        root = sandbox_root(spec)
        return HostHandle(spec.name, root, {"sandbox_root": root, "sandbox_name": spec.name})

    def remember(self, spec: SandboxSpec, playbook: Path | None, *, ok: bool) -> None:
        """Record the last reset (when, how, whether it worked) for ``lab sandbox list``."""
        state = {"reset_at": time.time(), "reset_playbook": str(playbook) if playbook else None, "ok": ok}
        write_text(self.home(spec) / "state.json", json.dumps(state), mode=0o600)

    def destroy(self, spec: SandboxSpec) -> None:
        """Forget what the lab recorded about the host; the host itself is not the lab's to remove."""
        home = self.home(spec)
        if home.exists():
            shutil.rmtree(home)

    def describe(self, spec: SandboxSpec) -> dict[str, Any]:
        """``static`` with the address, and the time and outcome of the last reset if there was one."""
        variables = spec.host_vars
        where = str(variables.get("ansible_host") or spec.name)
        port = variables.get("ansible_port") or variables.get("ansible_winrm_port")
        info: dict[str, Any] = {"state": "static", "where": where, "reset": "playbook" if
                                variables.get("lab_reset_playbook") else "none"}
        if port:
            info["port"] = port
        try:
            state = json.loads((self.home(spec) / "state.json").read_text())
        except (OSError, ValueError):
            return info
        if isinstance(state, dict):
            info["since"] = state.get("reset_at")
            if state.get("ok") is False:
                info["state"] = "degraded"
                info["detail"] = "its last reset playbook failed; reset it again"
        return info
