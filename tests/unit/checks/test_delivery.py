"""The check runner's delivery: the command and stdin sent through a transport for each runner."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pytest

from lab.checks.delivery import PYTHON_BOOTSTRAP, python_runner_payload, python_runner_source, run_runner
from lab.checks.powershell import POWERSHELL_ARGV, powershell_payload, split_payload
from lab.transports.base import CommandResult, RunnerKind, Transport

MANIFEST: dict[str, Any] = {"format": 1, "checks": [{"id": "c1", "type": "command", "command": "true"}]}


class Recording(Transport):
    """Keeps what it was asked to run; runs nothing."""

    def __init__(self, variables: Mapping[str, Any], kind: RunnerKind | None = None) -> None:
        super().__init__("h1", variables)
        self.kind = kind
        self.sent: list[tuple[list[str], bytes, float]] = []

    def open(self) -> None:
        pass

    def execute(self, argv: list[str], stdin: bytes, timeout: float) -> CommandResult:
        self.sent.append((argv, stdin, timeout))
        return CommandResult(0, b"", b"", False, 0.0)

    def runner(self) -> RunnerKind:
        return self.kind or super().runner()


@pytest.mark.parametrize(("variables", "interpreter"), [({}, "python3"),
                                                         ({"ansible_python_interpreter": "/opt/py"}, "/opt/py")])
def test_a_python_host_gets_the_bootstrap_and_the_framed_runner(variables: dict[str, Any], interpreter: str) -> None:
    transport = Recording(variables)
    run_runner(transport, MANIFEST, 12.5)
    [(argv, stdin, timeout)] = transport.sent
    assert (argv, timeout) == ([interpreter, "-c", PYTHON_BOOTSTRAP], 12.5)
    source = python_runner_source()
    header, _, rest = stdin.partition(b"\n")
    assert int(header) == len(source) and rest[:len(source)] == source
    assert json.loads(rest[len(source):]) == dict(MANIFEST, deadline=14.5)  # the runner's own deadline
    assert stdin == python_runner_payload(dict(MANIFEST, deadline=14.5))


def test_a_powershell_host_gets_the_powershell_bootstrap_and_runner_ps1() -> None:
    transport = Recording({}, RunnerKind("powershell", "python3"))
    run_runner(transport, MANIFEST, 30)
    [(argv, stdin, timeout)] = transport.sent
    assert (argv, timeout) == (list(POWERSHELL_ARGV), 30)
    assert stdin == powershell_payload(dict(MANIFEST, deadline=32.0))
    assert split_payload(stdin)[1] == dict(MANIFEST, deadline=32.0)
