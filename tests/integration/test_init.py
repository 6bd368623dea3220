"""`lab init` for a user who installed lab from PyPI: the starter lab ships in the wheel as package
data, and `lab build` + `lab run` pass on it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration


def built_wheel(tmp_path: Path) -> Path:
    """A wheel of lab built by pip (with build isolation, as for an upload to PyPI) from a copy of the
    sources, so nothing is written into the repository."""
    source = tmp_path / "src"
    shutil.copytree(REPO / "lab", source / "lab", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path / "dist"),
                           str(source)], capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    [wheel] = (tmp_path / "dist").glob("lab-*.whl")
    return wheel


def test_the_wheel_s_starter_lab_passes(tmp_path: Path) -> None:
    wheel = built_wheel(tmp_path)
    names = zipfile.ZipFile(wheel).namelist()
    assert "lab/config/starter_lab/lab.yml" in names
    assert "lab/config/starter_lab/products/hello/usr/local/bin/hello" in names
    installed = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(installed)
    # the wheel's lab, not the repository's, with lab's dependencies from this environment
    env = dict(os.environ, PYTHONPATH=str(installed), CI="1")
    lab = [sys.executable, "-c", "import sys, lab.cli; assert lab.cli.__file__.startswith(sys.argv[1]); "
           "sys.argv[1:2] = []; lab.cli.main()", str(installed)]
    work = tmp_path / "home"
    work.mkdir()

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*lab, *args], cwd=work, env=env, capture_output=True, text=True, timeout=600,
                              check=False)

    assert run("init", "my-lab").returncode == 0
    lab_yml = str(work / "my-lab" / "lab.yml")
    built = run("--lab", lab_yml, "build", "hello@1.0.0")
    assert built.returncode == 0, built.stderr
    ran = run("--lab", lab_yml, "run", "hello@1.0.0")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "  sandbox-01     hello-smoke                        4 pass" in ran.stdout
    assert "hello@1.0.0 (sha256 " in ran.stdout and "PROMOTABLE to pilot" in ran.stdout
