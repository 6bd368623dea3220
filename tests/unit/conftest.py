"""Fixtures of the policy half's tests: approvers' SSH keys, a seeded lab, the ``lab`` CLI."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.lab_fixtures import PRINCIPALS, SeededLab, make_key, seed_lab
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


@pytest.fixture
def seeded(tmp_path: Path, keys: dict[str, Path]) -> Iterator[SeededLab]:
    lab = seed_lab(tmp_path / "lab", keys)
    yield lab
    lab.store.close()
