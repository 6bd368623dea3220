"""Fixtures of the policy half's tests: approvers' SSH keys, a seeded lab, the policy CLI."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import CliResult
from tests.unit.lab_fixtures import PRINCIPALS, SeededLab, invoke, make_key, seed_lab


@pytest.fixture
def lab_cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., CliResult]:
    def runner(*args: str) -> CliResult:
        code = invoke(list(args))
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return runner


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
