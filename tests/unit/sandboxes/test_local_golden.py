"""The local provider's golden images: what a capture keeps, what a reset to it gives back, and the
capture it refuses (a tree that runs services it has no boot script for)."""

from __future__ import annotations

import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab.errors import InfrastructureError
from lab.model import SandboxSpec
from lab.sandboxes.base import Golden
from lab.sandboxes.local import LocalProvider, stop_processes

SPEC = SandboxSpec("sbx-1", "debian-12", "local", {})
GOLDEN = Golden("ab" * 32)
BOOT = """#!/bin/sh
printf '%s %s\\n' "$LAB_PORT" "$SANDBOX_ROOT" > "$SANDBOX_ROOT/var/booted"
"""


@pytest.fixture
def provider(tmp_path: Path) -> Iterator[LocalProvider]:
    found = LocalProvider(tmp_path / "state")
    yield found
    stop_processes(found.home(SPEC) / "root")


def service(root: Path) -> subprocess.Popen[bytes]:
    """A process of the sandbox (its command line names the root) recorded in run/service.pid."""
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", str(root)])
    cmdline = Path(f"/proc/{process.pid}/cmdline")
    deadline = time.monotonic() + 10
    while str(root).encode() not in cmdline.read_bytes() and time.monotonic() < deadline:
        time.sleep(0.01)  # until it has exec'd: before that its command line is the parent's
    (root / "run" / "service.pid").write_text(str(process.pid))
    return process


def test_a_capture_keeps_the_tree_without_runtime_files_and_a_reset_to_it_boots(provider: LocalProvider) -> None:
    root = Path(provider.reset(SPEC).root)
    (root / "opt" / "app.py").write_text("print('app')\n")
    (root / "opt" / "app.py").chmod(0o750)
    (root / "etc" / "lab" / "boot.d").mkdir(parents=True)
    (root / "etc" / "lab" / "boot.d" / "app").write_text(BOOT)
    (root / "tmp" / "scratch").write_text("left by the baseline run")
    process = service(root)
    try:
        assert provider.capture(SPEC, GOLDEN) is True
    finally:
        process.kill()
        process.wait()
    with tarfile.open(provider.golden_pack(GOLDEN)) as tar:
        names = set(tar.getnames())
    assert {"./opt/app.py", "./etc/lab/boot.d/app", "./run", "./tmp"} <= names
    assert not {n for n in names if n.startswith(("./run/", "./tmp/"))}  # runtime contents left out

    handle = provider.reset_from(SPEC, GOLDEN)
    assert handle.golden == GOLDEN.key and handle.note == f"reset to golden image {GOLDEN.label}"
    root = Path(handle.root)
    assert (root / "opt" / "app.py").read_text() == "print('app')\n"
    assert (root / "opt" / "app.py").stat().st_mode & 0o777 == 0o750
    assert (root / "var" / "booted").read_text() == f"{handle.facts['lab_port']} {root}\n"
    assert list((root / "run").iterdir()) == [] and list((root / "tmp").iterdir()) == []


def test_without_an_image_of_the_key_reset_from_is_a_plain_reset(provider: LocalProvider) -> None:
    handle = provider.reset_from(SPEC, GOLDEN)
    assert handle.golden is None and handle.note == ""
    assert not (Path(handle.root) / "var" / "booted").exists()


def test_a_tree_running_a_service_without_a_boot_script_is_not_kept(provider: LocalProvider) -> None:
    root = Path(provider.reset(SPEC).root)
    process = service(root)
    try:
        with pytest.raises(InfrastructureError, match=r"left services running \(service\.pid\) but installs no boot "
                                                        r"script in etc/lab/boot\.d/"):
            provider.capture(SPEC, GOLDEN)
    finally:
        process.kill()
        process.wait()
    assert not provider.golden_pack(GOLDEN).exists()
    assert provider.capture(SPEC, GOLDEN) is True  # the dead service's pid file no longer counts


def test_a_failing_boot_script_fails_the_reset_naming_it(provider: LocalProvider) -> None:
    root = Path(provider.reset(SPEC).root)
    (root / "etc" / "lab" / "boot.d").mkdir(parents=True)
    (root / "etc" / "lab" / "boot.d" / "broken").write_text("echo cannot start >&2\nexit 3\n")
    provider.capture(SPEC, GOLDEN)
    with pytest.raises(InfrastructureError, match=r"boot script .*/etc/lab/boot\.d/broken failed \(exit 3\): "
                                                    r"cannot start"):
        provider.reset_from(SPEC, GOLDEN)
    provider.forget_golden(SPEC, GOLDEN)
    assert provider.reset_from(SPEC, GOLDEN).golden is None
