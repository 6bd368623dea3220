"""The one caller of ansible-runner: run a playbook against one sandbox (or a wave of production
hosts, in one run) and say how each host fared.

- ``ansible-playbook`` comes from the running interpreter's environment (its bin directory),
  never from ``PATH``, so the lab always runs the Ansible it was installed with.
- Every run gets the lab's ansible.cfg (``ANSIBLE_CONFIG``) and vault secrets (file names as
  ``--vault-id`` / ``--vault-password-file``), and runs from the lab's directory, as the inventory
  was resolved (``lab.ansible.settings``).
- Runner artifacts go to a private directory (0700); ansible-runner's env/ files (extravars,
  passwords, ssh keys) are suppressed, and extra vars go through a 0600 file that is removed
  after the run, so nothing reaches a process command line.
- ``ansible-playbook`` starts from a minimal, explicit environment (``run_environment``), not a
  copy of the lab's own: ansible-runner writes the environment it starts with into
  ``artifacts/<id>/command`` before the run begins, so whatever is in it survives a kill -9.
  Nothing of the lab's environment but a few harmless names (``PATH``, ``HOME``, locale, ``TZ``)
  is passed on.
- Each run holds a lock on its private directory while it runs; the next run under the same
  state dir removes the directories of runs whose process died mid-run (``sweep_abandoned``),
  so the extra vars and temp files a killed run left behind do not stay on disk. Runs that
  ended keep their artifacts.
"""

from __future__ import annotations

import fcntl
import importlib.util
import json
import os
import re
import shlex
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lab.ansible.settings import AnsibleSettings
from lab.errors import InfrastructureError
from lab.util.atomic import write_text

MAX_DETAIL = 2000


@dataclass(frozen=True)
class HostOutcome:
    """How one host fared in a playbook run."""

    host: str
    ok: bool
    unreachable: bool
    failures: tuple[str, ...]
    changed: int
    finished: bool = False  # the host is in the run's final stats: its play ran to the end
    stats: dict[str, Any] = field(default_factory=dict)  # what its own set_stats tasks reported


@dataclass(frozen=True)
class PlaybookOutcome:
    """The result of one playbook run: runner status, per-host outcomes and the stats the play set
    (``stats``: Ansible's merge over every host; each host's own are on its ``HostOutcome``)."""

    playbook: str
    status: str  # successful, failed, timeout, canceled
    rc: int
    hosts: dict[str, HostOutcome]
    stats: dict[str, Any] = field(default_factory=dict)
    artifact_dir: str = ""

    def host_ok(self, host: str) -> bool:
        """Whether ``host`` came through: its own tasks succeeded and the run was successful, or
        (in a run over several hosts that another host failed) its play ran to the end."""
        outcome = self.hosts.get(host)
        if outcome is None or not outcome.ok:
            return False
        return self.status == "successful" or (self.status == "failed" and outcome.finished)

    def infrastructure_error(self, host: str) -> bool:
        """True when the run says nothing about the build: timeout, crash, unreachable host."""
        outcome = self.hosts.get(host)
        if self.status in ("timeout", "canceled"):
            return True
        if outcome is None:
            return self.status != "successful"
        return outcome.unreachable

    def detail(self, host: str) -> str:
        outcome = self.hosts.get(host)
        name = Path(self.playbook).name
        if self.status == "timeout":
            return f"{name} timed out"
        if outcome is None:
            return f"{name} ended {self.status} (rc {self.rc}) without reaching {host}"
        return host_detail(name, outcome)


def host_detail(playbook_name: str, outcome: HostOutcome) -> str:
    """One line on how ``outcome``'s host fared in a run of ``playbook_name``."""
    if outcome.unreachable:
        return f"{playbook_name}: {outcome.host} unreachable: {'; '.join(outcome.failures)}"[:MAX_DETAIL]
    if outcome.failures:
        return f"{playbook_name} failed: {'; '.join(outcome.failures)}"[:MAX_DETAIL]
    return f"{playbook_name} ok ({outcome.changed} changed)"


HostDone = Callable[[HostOutcome], None]


class HostWatcher:
    """Follows a run's events and keeps each host's own outcome, from that host's events alone.

    With ``done``, it says as the events arrive when each host's outcome is settled: a host that
    failed or was unreachable at once (Ansible runs nothing more on it), every other host when
    the run's final stats arrive. Each host is told once. ``set_stats`` data a host's tasks
    report is kept per host (Ansible's own stats merge every host's into one).
    """

    def __init__(self, done: HostDone | None = None) -> None:
        self.done = done
        self.failures: dict[str, list[str]] = {}
        self.unreachable: set[str] = set()
        self.seen: set[str] = set()
        self.finished: set[str] = set()
        self.changed: dict[str, int] = {}
        self.stats: dict[str, dict[str, Any]] = {}
        self.run_stats: dict[str, Any] = {}
        self.told: set[str] = set()

    def __call__(self, event: dict[str, Any]) -> bool:
        data = event.get("event_data") or {}
        kind = event.get("event")
        host = data.get("host")
        if host:
            self.seen.add(host)
        if kind == "runner_on_failed" and host and not data.get("ignore_errors"):
            self.failures.setdefault(host, []).append(f"task {data.get('task', '?')!r}: {message_of(data)}")
            self.tell(host)
        elif kind == "runner_on_unreachable" and host:
            self.unreachable.add(host)
            self.failures.setdefault(host, []).append(message_of(data))
            self.tell(host)
        elif kind == "runner_on_ok" and host:
            reported = (data.get("res") or {}).get("ansible_stats")
            if isinstance(reported, dict) and isinstance(reported.get("data"), dict):
                self.stats.setdefault(host, {}).update(reported["data"])
        elif kind == "playbook_on_stats":
            self.run_stats = dict(data.get("artifact_data") or {})
            for key in ("ok", "failures", "dark", "changed", "skipped"):
                for name, count in (data.get(key) or {}).items():
                    self.seen.add(name)
                    self.finished.add(name)
                    if key == "changed":
                        self.changed[name] = int(count)
            for name in sorted(self.finished):
                self.tell(name)
        return True  # ansible-runner keeps every event

    def outcome(self, host: str) -> HostOutcome:
        """``host``'s outcome as its events so far say."""
        return HostOutcome(host, host not in self.failures and host not in self.unreachable,
                           host in self.unreachable, tuple(self.failures.get(host, ())), self.changed.get(host, 0),
                           finished=host in self.finished, stats=dict(self.stats.get(host, {})))

    def tell(self, host: str) -> None:
        if self.done is not None and host not in self.told:
            self.told.add(host)
            self.done(self.outcome(host))


MITOGEN_SWITCH = "LAB_MITOGEN"  # 0, false, no or off: plain Ansible strategies even with Mitogen installed


def mitogen_settings() -> dict[str, str]:
    """Ansible settings that run plays with Mitogen's ``mitogen_linear`` strategy: when Mitogen for
    Ansible is installed in lab's environment and ``$LAB_MITOGEN`` does not switch it off; none
    otherwise (Ansible's own ``linear``). A play's own ``strategy:`` still wins."""
    if os.environ.get(MITOGEN_SWITCH, "").strip().lower() in ("0", "false", "no", "off"):
        return {}
    spec = importlib.util.find_spec("ansible_mitogen")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        return {}
    return {"ANSIBLE_STRATEGY_PLUGINS": str(Path(locations[0]) / "plugins" / "strategy"),
            "ANSIBLE_STRATEGY": "mitogen_linear"}


def ansible_playbook_binary() -> Path:
    """``ansible-playbook`` next to the running interpreter; InfrastructureError if it is missing."""
    candidate = Path(sys.executable).parent / "ansible-playbook"
    if not candidate.exists():
        raise InfrastructureError(
            f"ansible-playbook not found at {candidate}; install ansible-core into this environment "
            "(pip install ansible-core)"
        )
    return candidate


def run_playbook(
    playbook: Path,
    *,
    inventory: Sequence[Path],
    ansible: AnsibleSettings,
    host: str,
    extravars: dict[str, Any],
    work_dir: Path,
    timeout: float,
) -> PlaybookOutcome:
    """Run ``playbook`` limited to ``host`` through ansible-runner and collect per-host outcomes."""
    return run_playbook_on(playbook, inventory=inventory, ansible=ansible, hosts=(host,), extravars=extravars,
                           host_vars={}, work_dir=work_dir, timeout=timeout)


def run_playbook_on(
    playbook: Path,
    *,
    inventory: Sequence[Path],
    ansible: AnsibleSettings,
    hosts: Sequence[str],
    extravars: dict[str, Any],
    host_vars: Mapping[str, Mapping[str, Any]],
    work_dir: Path,
    timeout: float,
    forks: int | None = None,
    on_host: HostDone | None = None,
) -> PlaybookOutcome:
    """Run ``playbook`` once, limited to ``hosts``, and collect per-host outcomes.

    ``on_host`` (optional) is called, in the calling thread while the run goes on, with each
    host's outcome as soon as it is settled (``HostWatcher``), so a caller can start on a host
    that is done while Ansible still works on others; the returned outcome says the same.

    ``extravars`` apply to every host; ``host_vars`` (per host, never secrets) reach Ansible as
    a second inventory source written beside the run, so each host gets its own values in the
    one run. ``forks`` bounds how many hosts Ansible works on at once (Ansible's default: 5).
    """
    from ansible_runner.interface import init_runner  # slow to import; only deploy needs it

    sweep_abandoned(runs_root(work_dir))
    work_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(work_dir, 0o700)
    private = Path(tempfile.mkdtemp(prefix=f"{playbook.stem}-", dir=work_dir))
    lock = hold_run_lock(private)
    vars_file = private / "extravars.json"
    fd = os.open(vars_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(extravars, handle)
    sources = [str(source.resolve()) for source in inventory]
    if host_vars:
        facts_file = private / "host-facts.json"
        write_text(facts_file, json.dumps({"all": {"hosts": {h: dict(v) for h, v in host_vars.items()}}}), 0o600)
        sources.append(str(facts_file))
    temp = private / "tmp"
    temp.mkdir(mode=0o700)
    watcher = HostWatcher(on_host)
    envvars = {
        **ansible.environment(),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_HOST_KEY_CHECKING": "True",
        "ANSIBLE_LOCALHOST_WARNING": "False",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "False",
        "ANSIBLE_LOCAL_TEMP": str(temp),
        "ANSIBLE_REMOTE_TEMP": str(temp / "remote"),
        "ANSIBLE_DEPRECATION_WARNINGS": "False",
        "ANSIBLE_RETRY_FILES_ENABLED": "False",
        **mitogen_settings(),
    }
    try:
        runner = init_runner(
            private_data_dir=str(private),
            binary=str(ansible_playbook_binary()),
            cmdline=shlex.join([*ansible.vault_arguments(), "-e", f"@{vars_file}", str(playbook)]),
            inventory=sources,
            limit=",".join(hosts),
            forks=forks,
            envvars=envvars,
            suppress_env_files=True,
            quiet=True,
            timeout=int(max(1, timeout)),
            project_dir=str(ansible.lab_dir),
            event_handler=watcher,
        )
        # ansible-runner seeded its environment from the lab's own; what it writes to disk and
        # starts ansible-playbook with is replaced before anything is written or started.
        runner.config.env = run_environment(runner.config.env, envvars)
        runner.run()
        return collect(runner, str(playbook), str(private), watcher)
    except InfrastructureError:
        raise
    except Exception as exc:
        raise InfrastructureError(f"ansible-runner could not run {playbook.name}: {exc}") from exc
    finally:
        vars_file.unlink(missing_ok=True)
        (private / RUN_LOCK).unlink(missing_ok=True)  # ended here, not killed: the sweep keeps it
        os.close(lock)


PASSED_ON = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "LC_MESSAGES", "TZ", "USER", "LOGNAME")
"""The only names of the lab's own environment a playbook run sees: none can carry a credential."""

RUN_LOCK = ".lab-run.lock"
ABANDONED_AFTER = 60.0  # seconds: a directory without a lock this old was never going to get one


def run_environment(prepared: Mapping[str, str], explicit: Mapping[str, str]) -> dict[str, str]:
    """The environment ansible-playbook starts with: ``PASSED_ON`` from the lab's own, ``explicit``
    (the lab's Ansible settings), and what ansible-runner itself set (its callback plugin, artifact
    and event settings: every name in ``prepared`` it added or changed). Nothing else of
    ``os.environ`` reaches the run or its ``command`` file."""
    own = os.environ
    env = {name: own[name] for name in PASSED_ON if name in own}
    env.update({k: str(v) for k, v in prepared.items() if k not in own or own[k] != v})
    env.update(explicit)
    return env


def hold_run_lock(private: Path) -> int:
    """Lock ``private`` for the life of this process's run; the kernel drops the lock if it dies."""
    fd = os.open(private / RUN_LOCK, os.O_WRONLY | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def runs_root(work_dir: Path) -> Path:
    """Where the lab keeps its runs: the nearest ancestor of ``work_dir`` named ``runs`` (the
    state dir's ``runs/``, a static sandbox's ``runs/``), else ``work_dir`` itself."""
    return next((p for p in (work_dir, *work_dir.parents) if p.name == "runs"), work_dir)


def sweep_abandoned(root: Path) -> list[Path]:
    """Remove every run directory under ``root`` whose process died mid-run (a kill -9): its lock
    file is still there but no live process holds it, or it never got one and still has its
    extra vars (which a run that ended removes) after ``ABANDONED_AFTER`` seconds. Runs that
    ended keep their artifacts; a live run's directory is never touched. Returns the removed."""
    removed = []
    for run_dir in run_dirs(root):
        lock_file = run_dir / RUN_LOCK
        if lock_file.exists():
            if not lock_is_free(lock_file):
                continue  # a live run
        elif not (run_dir / "extravars.json").exists() or \
                time.time() - run_dir.stat().st_mtime < ABANDONED_AFTER:
            continue  # ended cleanly, or just made by a run about to take its lock
        shutil.rmtree(run_dir, ignore_errors=True)
        removed.append(run_dir)
    return removed


def run_dirs(root: Path) -> list[Path]:
    """The private directories of runs under ``root``: those with a run lock, an ``artifacts``
    directory or an extra-vars file (a run killed before it locked, or made by an older lab)."""
    found: list[Path] = []
    if not root.is_dir():
        return found
    for current, dirs, files in os.walk(root):
        here = Path(current)
        if RUN_LOCK in files or "extravars.json" in files or "artifacts" in dirs:
            found.append(here)
            dirs.clear()  # nothing of interest inside a run's own directory
    return sorted(found)


def lock_is_free(lock_file: Path) -> bool:
    """Whether no live process holds ``lock_file``'s run lock."""
    try:
        fd = os.open(lock_file, os.O_WRONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def collect(runner: Any, playbook: str, artifact_dir: str, watcher: HostWatcher) -> PlaybookOutcome:
    """Per-host outcomes of the ended run, from ``watcher``, which saw each of its events as it came
    (they are not read back from the artifacts directory)."""
    hosts = {name: watcher.outcome(name) for name in sorted(watcher.seen)}
    return PlaybookOutcome(playbook, str(runner.status), int(runner.rc or 0), hosts, watcher.run_stats, artifact_dir)


GENERIC_MESSAGES = ("non-zero return code",)  # Ansible's words for a command or script that failed
# What ssh adds to a session's stderr; a script run over a pty has its own stderr in its stdout.
SSH_NOISE = re.compile(r"^(Shared connection|Connection) to \S+ closed\.$")


def last_words(text: object) -> str:
    """The last line of a command's output that is not ssh's own, stripped ('' when none)."""
    lines = [line.strip() for line in str(text or "").splitlines()]
    return next((line for line in reversed(lines) if line and not SSH_NOISE.match(line)), "")


def message_of(data: dict[str, Any]) -> str:
    """What a failed or unreachable event says went wrong: the module's message or, when that
    only says a command failed, the last line the command wrote (stderr first, then stdout)."""
    result = data.get("res") or {}
    message = result.get("msg")
    if not message or message in GENERIC_MESSAGES:
        message = last_words(result.get("stderr")) or last_words(result.get("stdout")) or message
    return str(message or result.get("reason") or "failed")[:MAX_DETAIL]
