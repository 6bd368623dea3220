"""Shared fixtures: a copy of the default lab in a temporary directory, and CLI runners."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pytest

from lab.cli import main

REPO = Path(__file__).resolve().parents[2]
# Reference data from real systems (the JUnit XSD, WinRM recordings) is third-party data kept outside the
# repository: $LAB_REFERENCE_DIR, by default the team's ../shared/reference next to the clone. The tests
# that read it skip without it (needs_reference); nothing else depends on it.
REFERENCE = Path(os.environ.get("LAB_REFERENCE_DIR") or REPO.parent / "shared" / "reference")
JUNIT_XSD = REFERENCE / "schemas" / "junit-10.xsd"
LAB_FILES = ("lab.yml", "agreement.yml", "inventory", "test_suites", "playbooks", "products")


def needs_reference(relative: str, what: str, present: bool) -> pytest.MarkDecorator:
    """Skip the test unless ``present`` (``what`` is at ``$LAB_REFERENCE_DIR/relative``), with a reason
    that says what to put where."""
    return pytest.mark.skipif(not present, reason=(
        f"needs {what} under $LAB_REFERENCE_DIR/{relative} (default ../shared/reference next to the "
        f"repository; looked in {REFERENCE / relative}): set LAB_REFERENCE_DIR to a copy of the team's "
        "reference data"))


needs_junit_xsd = needs_reference("schemas", "the JUnit schema junit-10.xsd", JUNIT_XSD.is_file())


def require_root_and_sshd() -> None:
    """Skip the test unless namespace sandboxes can run here (root, and OpenSSH's sshd), saying how to run it."""
    if os.geteuid() != 0:
        pytest.skip("namespace sandboxes need root (overlayfs mounts, namespaces): run the tests as root, "
                    "e.g. `sudo make test` (CI runs them as root)")
    if not Path("/usr/sbin/sshd").exists():
        pytest.skip("namespace sandboxes run OpenSSH's sshd: install it (Debian: apt-get install openssh-server)")


@dataclass(frozen=True)
class CliResult:
    code: int
    out: str
    err: str


def copy_default_lab(target: Path, sandboxes: int | None = None) -> Path:
    """Copy the repository's default lab to ``target``; keep only the first ``sandboxes`` hosts."""
    target.mkdir(parents=True, exist_ok=True)
    for name in LAB_FILES:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, target / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, target / name)
    if sandboxes is not None:
        hosts = target / "inventory" / "hosts.yml"
        lines = hosts.read_text().splitlines()
        kept, count = [], 0
        for line in lines:
            if line.strip().startswith("ts-sbx-"):
                count += 1
                if count > sandboxes:
                    continue
            kept.append(line)
        hosts.write_text("\n".join(kept) + "\n")
    return target / "lab.yml"


@pytest.fixture
def lab_dir(tmp_path: Path) -> Path:
    """A fresh copy of the default lab (all three sandboxes); returns its directory."""
    return copy_default_lab(tmp_path / "lab").parent


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., CliResult]:
    """Run the ``lab`` CLI in-process; returns exit code, stdout and stderr."""

    def runner(*args: str) -> CliResult:
        try:
            main(list(args))
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return runner


def lab_command() -> list[str]:
    """The installed ``lab`` entry point of this environment."""
    return [str(Path(sys.executable).parent / "lab")]


def run_lab(lab_yml: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run ``lab --lab LAB_YML ARGS`` as a real process, as a user would."""
    env = dict(os.environ, CI="1")
    return subprocess.run([*lab_command(), "--lab", str(lab_yml), *args], capture_output=True, text=True,
                          timeout=timeout, env=env, check=False)


def set_rollout(lab_dir: Path, section: str | None) -> int:
    """Replace the ``rollout:`` section of the lab's agreement.yml with ``section`` (YAML text that
    starts with ``rollout:``), or drop it (None). Returns the 1-based line the section starts on."""
    path = lab_dir / "agreement.yml"
    lines = path.read_text().splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.startswith("rollout:")), len(lines))
    end = next((i for i in range(start + 1, len(lines)) if lines[i][:1] not in (" ", "\n", "")), len(lines))
    kept = lines[:start] + lines[end:]
    if section is not None and kept and not kept[-1].endswith("\n"):
        kept[-1] += "\n"
    path.write_text("".join(kept) + (section or ""))
    return len(kept) + 1


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def stop_local_sandboxes(lab_yml: Path) -> None:
    """Stop whatever the lab's local sandboxes and local production hosts still run (their baseline services).

    The hosts are stopped side by side: a stopped service can stay a zombie for a second or two where
    PID 1 reaps orphans late (as in some CI containers), and one host after another made the demo's
    teardown wait for 27 of them in turn."""
    from lab.config.labfile import load_lab
    from lab.sandboxes.local import LocalProvider, stop_processes

    config = load_lab(lab_yml)
    provider = LocalProvider(config.state_dir)
    stops: list[Callable[[], None]] = [
        partial(provider.destroy, spec) for spec in config.sandboxes if spec.provider == "local"]
    stops += [partial(stop_processes, root) for root in sorted((config.state_dir / "production").glob("*/root"))]
    with ThreadPoolExecutor(max_workers=max(1, min(len(stops), 32))) as pool:
        for done in [pool.submit(stop) for stop in stops]:
            done.result()


def files_holding(root: Path, needle: bytes) -> list[Path]:
    """Every file under ``root`` (none when it does not exist) whose bytes hold ``needle``."""
    return sorted(path for path in root.rglob("*") if path.is_file() and needle in path.read_bytes())


def processes_naming(root: Path) -> dict[int, str]:
    """The processes running now whose command line names a path under ``root``: pid -> command line.
    Zombies are left out: they run nothing, and their parent reaps them late."""
    found = {}
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes()
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if str(root).encode() in cmdline and state != "Z":
            found[int(proc.name)] = cmdline.replace(b"\0", b" ").decode(errors="replace")
    return found
