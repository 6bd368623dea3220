"""`lab init [DIR]`: a small working lab, written from the package's own data, never over existing files."""

from __future__ import annotations

import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from lab import api
from lab.config.starter import starter_files
from lab.errors import ConfigError
from tests.support.labfiles import CliResult

FILES = [".gitignore", "agreement.yml", "inventory/hosts.yml", "lab.yml", "playbooks/deploy.yml",
         "products/hello/etc/hello/hello.conf", "products/hello/usr/local/bin/hello", "test_suites/hello-smoke.yml"]


def test_init_writes_a_lab_that_validates(tmp_path: Path) -> None:
    target = tmp_path / "town-lab"
    started = api.init(target)
    assert [p.relative_to(target).as_posix() for p in started.files] == FILES
    assert stat.S_IMODE((target / "products/hello/usr/local/bin/hello").stat().st_mode) == 0o755
    assert stat.S_IMODE((target / "lab.yml").stat().st_mode) == 0o644
    with api.Lab(str(started.lab_file)) as lab:
        config = api.validate(lab).config
    assert config.name == "town-lab"
    assert [(s.name, s.platform, s.provider) for s in config.sandboxes] == [("sandbox-01", "linux", "local")]
    assert list(config.suites) == ["hello-smoke"] and len(config.suites["hello-smoke"].checks) == 4
    assert list(config.products["hello"].builds) == ["1.0.0"]
    assert config.products["hello"].ci is not None
    assert [s.name for s in config.agreement.stages] == ["lab", "pilot"]


def test_the_files_come_from_the_package(tmp_path: Path) -> None:
    files = starter_files()
    assert list(files) == FILES
    api.init(tmp_path)
    for name, data in files.items():
        if name != "lab.yml":
            assert (tmp_path / name).read_bytes() == data


def test_init_never_writes_over_a_lab(tmp_path: Path, run_cli: Callable[..., CliResult]) -> None:
    (tmp_path / "agreement.yml").write_text("mine\n")
    with pytest.raises(ConfigError, match=f"^{tmp_path / 'agreement.yml'} already exists; `lab init` writes"):
        api.init(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["agreement.yml"]
    assert (tmp_path / "agreement.yml").read_text() == "mine\n"
    other = tmp_path / "other"
    first = run_cli("init", str(other))
    assert first.code == 0 and f"next: lab --lab {other / 'lab.yml'} build hello@1.0.0" in first.out
    again = run_cli("init", str(other))
    assert (again.code, again.out) == (2, "")
    assert again.err.startswith(f"lab: {other / '.gitignore'} already exists")
