"""Integration tests start real services (a sandbox's journal, production hosts' daemons) under their
``tmp_path``; whatever a test leaves running there is stopped when it ends, so that nothing outlives
the run (a test that forgot `lab sandbox stop` otherwise leaves daemons behind for good)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from lab.util.processes import stop
from tests.support.labfiles import processes_naming


@pytest.fixture(autouse=True)
def nothing_left_running(request: pytest.FixtureRequest) -> Iterator[None]:
    root = request.getfixturevalue("tmp_path") if "tmp_path" in request.fixturenames else None
    yield
    if root is not None:
        stop(processes_naming(root))
