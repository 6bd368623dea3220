"""Provider ``namespace``: each sandbox is a Linux server on this machine. Needs root.

A sandbox has its own copy-on-write root filesystem (overlayfs: the host's ``/``, or the image
directory named by the host variable ``lab_image``, under an upper layer in
``<state_dir>/namespaces/<name>/gen-<n>/``), its own mount, PID and UTS namespaces (its hostname
is its name), and an OpenSSH sshd on ``127.0.0.1:<port>`` that accepts only the lab's key for
root, with a host key the lab generated and pinned in its known_hosts. The network namespace
is the host's, so each sandbox also gets its own loopback port for its services (``lab_port``).

``reset`` kills every process of the sandbox (SIGKILL to its init ends its PID namespace, and
its mounts go with its mount namespace), throws its upper layer away and boots a fresh one:
about a quarter of a second. State is a JSON file per sandbox, written atomically; pids are
checked against their start times, so a crash or a recycled pid never confuses the provider.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from lab.errors import ConfigError, InfrastructureError
from lab.model import SandboxSpec
from lab.sandboxes.base import HostHandle, Provider
from lab.sandboxes.lease import locked
from lab.sandboxes.namespace import boot as nsboot
from lab.sandboxes.namespace import linux, sshkeys
from lab.util.atomic import write_text

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")
UNSAFE_PATH = re.compile(r"[\s,:\\]")  # overlayfs options and ssh_config values cannot hold these
BOOT_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0
PYTHON = "/usr/bin/python3"


@dataclass(frozen=True)
class NamespaceState:
    """What the lab knows about one sandbox, as its ``state.json`` holds it."""

    name: str
    generation: int
    ssh_port: int
    lab_port: int
    lower: str
    init_pid: int | None = None
    init_started: int | None = None  # /proc start time of init_pid, so a recycled pid is not ours
    pid_namespace: str | None = None
    unshare_pid: int | None = None  # the init's parent on the host, outside the sandbox's namespaces
    unshare_started: int | None = None
    created_at: float = 0.0
    reset_at: float = 0.0

    @classmethod
    def load(cls, path: Path) -> NamespaceState | None:
        """The state at ``path``, or None if there is none or it cannot be read (a crash mid-write)."""
        try:
            raw = json.loads(path.read_text())
            return cls(**{k: raw[k] for k in cls.__dataclass_fields__ if k in raw})
        except (OSError, ValueError, TypeError):
            return None


class NamespaceProvider(Provider):
    """Sandboxes as namespaced Linux servers with sshd on a loopback port (see the module docstring)."""

    name = "namespace"

    # --- the provider contract ----------------------------------------------------------------

    def reset(self, spec: SandboxSpec) -> HostHandle:
        """Boot the sandbox fresh (creating it if needed): nothing written since its last reset survives.

        Returns once its sshd answers on its port; raises InfrastructureError if it does not boot.
        """
        home = self.home(spec)
        lower = self.lower(spec)
        self.preflight(lower)
        with locked(self.lock_path(spec)):
            old = NamespaceState.load(home / "state.json")
            self.stop(spec, old)
            now = time.time()
            lab_key = sshkeys.lab_key(self.state_dir)
            host_key = sshkeys.ensure_key(home / "hostkey" / "ssh_host_ed25519_key", f"lab sandbox {spec.name}")
            with locked(self.namespaces / ".ports.lock"):
                taken = self.claimed_ports(spec)
                ssh_port = self.keep_or_pick(old.ssh_port if old else None, taken)
                lab_port = self.keep_or_pick(old.lab_port if old else None, taken | {ssh_port})
                state = NamespaceState(spec.name, (old.generation if old else 0) + 1, ssh_port, lab_port,
                                       str(lower), created_at=old.created_at if old else now, reset_at=now)
                self.save(home, state)  # claims the ports before the lock is released
            stale_port = (old.ssh_port,) if old and old.ssh_port != ssh_port else ()
            sshkeys.pin_host_key(self.state_dir, "127.0.0.1", ssh_port, sshkeys.public_key(host_key), stale_port)
            paths = self.prepare_generation(home, state, lower)
            nsboot.seed_upper(paths, spec.name, ssh_port, host_key, sshkeys.public_key(lab_key))
            state = self.boot(spec, paths, state)  # saves the state once the init's pid is known
        return self.handle(spec, state)

    def destroy(self, spec: SandboxSpec) -> None:
        """Stop every process of the sandbox, forget its host key and delete its files. Safe to repeat."""
        home = self.home(spec)
        with locked(self.lock_path(spec)):
            state = NamespaceState.load(home / "state.json")
            self.stop(spec, state)
            if state is not None:
                sshkeys.forget_host(self.state_dir, "127.0.0.1", state.ssh_port)
            if home.exists():
                shutil.rmtree(home)

    def halt(self, spec: SandboxSpec) -> None:
        """Stop every process of the sandbox; its files (upper layer, host key, state) stay until a reset."""
        with locked(self.lock_path(spec)):
            self.stop(spec, NamespaceState.load(self.home(spec) / "state.json"))

    def current(self, spec: SandboxSpec) -> HostHandle | None:
        """The handle of the running sandbox; None when it is absent, stopped or its sshd does not listen."""
        state = NamespaceState.load(self.home(spec) / "state.json")
        if state is None or self.condition(state) != "running":
            return None
        return self.handle(spec, state)

    def describe(self, spec: SandboxSpec) -> dict[str, Any]:
        """State (absent, running, degraded, stopped), where it lives, its ports, since when and its init pid."""
        home = self.home(spec)
        state = NamespaceState.load(home / "state.json")
        if state is None:
            return {"state": "absent", "where": str(home)}
        info: dict[str, Any] = {"where": str(home), "port": state.ssh_port, "lab_port": state.lab_port,
                                "since": state.reset_at, "generation": state.generation, "pid": state.init_pid,
                                "state": self.condition(state)}
        if info["state"] == "degraded":
            info["detail"] = f"sshd does not listen on 127.0.0.1:{state.ssh_port}; reset the sandbox"
        return info

    @staticmethod
    def condition(state: NamespaceState) -> str:
        """``running``, ``stopped`` (its init is gone) or ``degraded`` (its sshd does not listen)."""
        if not linux.is_running(state.init_pid, state.init_started):
            return "stopped"
        if f"127.0.0.1:{state.ssh_port}" not in linux.listening_addresses(state.ssh_port):
            return "degraded"
        return "running"

    # --- what the handle carries --------------------------------------------------------------

    def handle(self, spec: SandboxSpec, state: NamespaceState) -> HostHandle:
        """The handle: how Ansible and the ssh transport reach the sandbox (the same variables for both)."""
        common = shlex.join(["-o", f"UserKnownHostsFile={sshkeys.known_hosts_file(self.state_dir)}",
                             "-o", "StrictHostKeyChecking=yes", "-o", "IdentitiesOnly=yes"])
        return HostHandle(spec.name, "/", {
            "ansible_connection": "ssh",
            "ansible_host": "127.0.0.1",
            "ansible_port": state.ssh_port,
            "ansible_user": "root",
            "ansible_ssh_private_key_file": str(self.state_dir / "ssh" / sshkeys.KEY_NAME),
            "ansible_ssh_common_args": common,
            "ansible_python_interpreter": PYTHON,
            "sandbox_root": "/",
            "sandbox_name": spec.name,
            "lab_port": state.lab_port,
        })

    # --- paths and checks ---------------------------------------------------------------------

    @property
    def namespaces(self) -> Path:
        """``<state_dir>/namespaces``: one directory per sandbox, and the provider's lock files."""
        return self.state_dir / "namespaces"

    def home(self, spec: SandboxSpec) -> Path:
        """``<state_dir>/namespaces/<name>``: the sandbox's state, keys, logs and layers."""
        if not NAME.match(spec.name):
            raise ConfigError(f"sandbox name {spec.name!r} cannot be a namespace sandbox's hostname; "
                              "use letters, digits, '-' and '_' (at most 63)")
        return self.namespaces / spec.name

    def lock_path(self, spec: SandboxSpec) -> Path:
        """The lock serialising reset and destroy of one sandbox (outside its home, which destroy deletes)."""
        return self.namespaces / f".{spec.name}.lock"

    def sshd_log(self, spec: SandboxSpec) -> Path:
        """The sandbox's sshd log (LogLevel VERBOSE) since its last reset."""
        return self.home(spec) / "sshd.log"

    def lower(self, spec: SandboxSpec) -> Path:
        """The read-only lower layer: the host variable ``lab_image`` (a root file tree), or ``/``."""
        raw = spec.host_vars.get("lab_image") or "/"
        path = Path(str(raw))
        if not path.is_absolute() or not path.is_dir():
            raise ConfigError(f"host {spec.name}: lab_image {raw!r} must be an absolute path to a root file tree")
        return path.resolve()

    def preflight(self, lower: Path) -> None:
        """Raise InfrastructureError unless this machine can run namespace sandboxes."""
        if os.geteuid() != 0:
            raise InfrastructureError("provider namespace needs root (it mounts overlayfs and creates "
                                      "namespaces); run the lab as root, e.g. `sudo lab ...`, or use provider local")
        if UNSAFE_PATH.search(str(self.state_dir)) or UNSAFE_PATH.search(str(lower)):
            raise ConfigError(f"state_dir {self.state_dir} and lab_image {lower} must not contain whitespace, "
                              "',', ':' or '\\' (they go into overlayfs and ssh options)")
        for tool in ("usr/sbin/sshd", "usr/bin/python3"):
            if not (lower / tool).exists():
                raise InfrastructureError(f"{lower / tool} not found: namespace sandboxes run the lower layer's "
                                          "sshd and python3 (Debian: apt-get install openssh-server python3)")
        for tool in ("setsid", "unshare", "ssh-keygen"):
            if shutil.which(tool) is None:
                raise InfrastructureError(f"{tool} not found on PATH; install util-linux and openssh-client")

    # --- ports ----------------------------------------------------------------------------------

    def claimed_ports(self, spec: SandboxSpec) -> set[int]:
        """Ports the other namespace sandboxes of this lab hold, so two sandboxes never pick the same one."""
        taken: set[int] = set()
        for path in self.namespaces.glob("*/state.json"):
            if path.parent.name != spec.name:
                other = NamespaceState.load(path)
                if other is not None:
                    taken |= {other.ssh_port, other.lab_port}
        return taken

    @staticmethod
    def keep_or_pick(previous: int | None, taken: set[int]) -> int:
        """The sandbox's previous port if it is still free (its pinned host key stays valid), else a new one."""
        if previous and previous not in taken and linux.port_is_free(previous):
            return previous
        return linux.free_port(taken)

    # --- processes, layers, boot --------------------------------------------------------------

    def stop(self, spec: SandboxSpec, state: NamespaceState | None) -> None:
        """End every process of the sandbox and detach any mount of it the host still sees.

        SIGKILL to the init ends its whole PID namespace (and with it the mount namespace, so the
        overlay and every mount inside go too). The init and its unshare parent are found both
        from the state file (pids checked against their start times) and by their command line,
        so a crash while booting or a lost state file leaves nothing running.
        """
        home = self.home(spec)
        pids = set(linux.pids_with_arguments(nsboot.INIT_MARK, str(home)))
        if state is not None:
            pids |= {pid for pid, started in ((state.init_pid, state.init_started),
                                              (state.unshare_pid, state.unshare_started))
                     if pid and linux.is_running(pid, started)}
        linux.kill_and_wait(pids, STOP_TIMEOUT, f"sandbox {spec.name}")
        linux.detach_mounts(home)

    def prepare_generation(self, home: Path, state: NamespaceState, lower: Path) -> nsboot.BootPaths:
        """Fresh, empty upper and work directories for ``state.generation``; older generations are deleted."""
        for old in home.glob("gen-*"):
            shutil.rmtree(old)
        generation = home / f"gen-{state.generation}"
        for sub in ("upper", "work"):
            (generation / sub).mkdir(parents=True, mode=0o755)
        merged = home / "merged"
        merged.mkdir(exist_ok=True, mode=0o755)
        hide = str(self.state_dir) if lower == Path("/") else ""
        return nsboot.BootPaths(home, lower, generation / "upper", generation / "work", merged, hide)

    def boot(self, spec: SandboxSpec, paths: nsboot.BootPaths, state: NamespaceState) -> NamespaceState:
        """Start the sandbox and wait until its sshd answers; its state with the init's pid."""
        pid_file = paths.home / "init.pid"
        pid_file.unlink(missing_ok=True)
        nsboot.launch(paths, spec.name)
        deadline = time.monotonic() + BOOT_TIMEOUT
        init_pid = None
        while time.monotonic() < deadline:
            if init_pid is None and pid_file.exists():
                init_pid, parent = (int(word) for word in pid_file.read_text().split()[:2])
                state = replace(state, init_pid=init_pid, init_started=linux.start_time(init_pid),
                                pid_namespace=linux.namespace_of(init_pid, "pid"),
                                unshare_pid=parent, unshare_started=linux.start_time(parent))
                self.save(paths.home, state)
            if init_pid is not None and not linux.is_running(init_pid, state.init_started):
                break
            if nsboot.sshd_failed(paths.home / "sshd.log"):
                break
            if init_pid is not None and linux.ssh_banner(state.ssh_port, 0.5) is not None:
                return state
            time.sleep(0.01)
        self.stop(spec, state)
        why = nsboot.tail(paths.home / "sshd.log") or nsboot.tail(paths.home / "console.log") or "no output"
        raise InfrastructureError(f"sandbox {spec.name} did not boot: its sshd did not answer on 127.0.0.1:"
                                  f"{state.ssh_port} (waited at most {BOOT_TIMEOUT:.0f}s): {why}")

    def save(self, home: Path, state: NamespaceState) -> None:
        """Write ``home/state.json`` atomically."""
        home.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_text(home / "state.json", json.dumps(asdict(state), indent=1), mode=0o600)
