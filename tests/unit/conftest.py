"""Fixtures of the policy half's tests: approvers' SSH keys, seeded labs (made once, copied per test),
the ``lab`` CLI."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.lab_fixtures import PRINCIPALS, LabTemplates, SeededLab, make_key, seed_lab
from tests.support.labfiles import CliResult


@pytest.fixture
def lab_cli(run_cli: Callable[..., CliResult]) -> Callable[..., CliResult]:
    """The real ``lab`` entry point (``lab.cli.main``) run in-process, as tests/support/labfiles.py's ``run_cli``."""
    return run_cli


@pytest.fixture(scope="session")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One SSH key per person in PRINCIPALS (made once per test session)."""
    directory = tmp_path_factory.mktemp("approver-keys")
    return {name: make_key(directory, name) for name in PRINCIPALS}


@pytest.fixture(scope="session")
def lab_templates(tmp_path_factory: pytest.TempPathFactory) -> LabTemplates:
    """Seeded labs built once per session, copied per test (``LabTemplates.copy``)."""
    return LabTemplates(tmp_path_factory.mktemp("lab-templates"))


@pytest.fixture
def seeded(tmp_path: Path, keys: dict[str, Path], lab_templates: LabTemplates) -> Iterator[SeededLab]:
    """A copy of the default lab with build A and its finished campaign (``seed_lab``)."""
    lab = lab_templates.copy("seeded", lambda root: seed_lab(root, keys), tmp_path / "lab")
    yield lab
    lab.store.close()
