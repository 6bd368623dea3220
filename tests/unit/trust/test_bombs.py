"""Inputs built to exhaust the machine are refused quickly, inside a memory limit, as a real process:
a YAML alias bomb, a suite of 50 MB, a deeply nested file, and ``--lab /dev/zero``. Each runs with
RLIMIT_AS of 1 GiB and 60 s of CPU; before the loaders had limits the bomb passed 1 GB and kept
growing and /dev/zero died with MemoryError."""

from __future__ import annotations

import os
import resource
import subprocess
from pathlib import Path

import pytest

from tests.support.labfiles import copy_default_lab, lab_command

MEMORY = 1024 * 1024 * 1024
BOMB = "".join(f"    l{n}: &l{n} [{', '.join([f'*l{n - 1}'] * 10)}]\n" for n in range(1, 9))


def bounded() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY, MEMORY))
    resource.setrlimit(resource.RLIMIT_CPU, (60, 60))


def run_bounded(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*lab_command(), *args], capture_output=True, text=True, timeout=120, check=False,
                          preexec_fn=bounded, env=dict(os.environ, CI="1"))


@pytest.fixture
def lab_yml(tmp_path: Path) -> Path:
    return copy_default_lab(tmp_path / "lab")


def test_an_alias_bomb_in_inventory_variables_is_refused(lab_yml: Path) -> None:
    hosts = lab_yml.parent / "inventory" / "hosts.yml"
    first = "    l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
    text = hosts.read_text().replace("all:\n", "all:\n  vars:\n" + first + BOMB, 1)
    hosts.write_text(text)
    result = run_bounded("--lab", str(lab_yml), "validate")
    assert result.returncode == 2, result.stderr
    assert f"{hosts}:" in result.stderr and "alias bomb" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_50_mb_suite_is_refused_by_its_size(lab_yml: Path) -> None:
    suite = lab_yml.parent / "test_suites" / "portfolio-compat.yml"
    with open(suite, "a") as handle:
        for index in range(800_000):
            handle.write(f"  - {{id: c{index}, type: file, path: /etc/x}}\n")
    assert suite.stat().st_size > 30_000_000
    result = run_bounded("--lab", str(lab_yml), "validate")
    assert result.returncode == 2, result.stderr
    assert "larger than the limit of 2,097,152 bytes" in result.stderr and "limits.max_bytes" in result.stderr


def test_deep_nesting_is_refused(lab_yml: Path) -> None:
    with open(lab_yml, "a") as handle:
        handle.write("deep: " + "[" * 100_000 + "]" * 100_000 + "\n")
    result = run_bounded("--lab", str(lab_yml), "validate")
    assert result.returncode == 2, result.stderr
    assert "nested more than 64 levels" in result.stderr


def test_lab_dev_zero_is_refused_without_reading_it() -> None:
    result = run_bounded("--lab", "/dev/zero", "validate")
    assert (result.returncode, result.stderr) == (
        2, "lab: /dev/zero: the lab file is not a regular file (a device, pipe or socket); pass --lab with the path "
           "of a lab.yml\n")


def test_an_unexpected_exception_is_one_line_and_a_log(tmp_path: Path, lab_yml: Path) -> None:
    # a check type whose schema is fine but a provider module that cannot import is the realistic case;
    # here sitecustomize makes yaml loading raise, which no path of lab expects
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(
        "import lab.util.yamlfile as y\n"
        "def broken(*a, **k):\n    raise ZeroDivisionError('seeded fault')\n"
        "y.load_yaml = broken\nimport lab.config.labfile as l\nl.load_yaml = broken\n")
    crashes = tmp_path / "crashes"
    result = subprocess.run([*lab_command(), "--lab", str(lab_yml), "validate"], capture_output=True, text=True,
                            timeout=120, check=False,
                            env=dict(os.environ, PYTHONPATH=str(hook), LAB_CRASH_DIR=str(crashes)))
    assert result.returncode == 3, result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.splitlines()) == 1
    logs = list(crashes.glob("lab-crash-*.log"))
    assert len(logs) == 1 and str(logs[0]) in result.stderr
    assert "ZeroDivisionError: seeded fault" in logs[0].read_text() and "Traceback" in logs[0].read_text()
