"""The policy commands' CLI contract: help, usage errors, exit codes."""

from __future__ import annotations

from collections.abc import Callable

import click
import pytest

from lab.cli.app import cli
from lab.decision.records import promotions
from tests.support.lab_fixtures import BUILD, T0, SeededLab
from tests.support.labfiles import CliResult

COMMANDS = [("gate",), ("approve",), ("waive",), ("promote",), ("audit",), ("audit", "show"), ("audit", "verify"),
            ("evidence",), ("evidence", "write"), ("evidence", "verify")]


@pytest.mark.parametrize("path", COMMANDS, ids=" ".join)
def test_every_policy_command_has_help(path: tuple[str, ...], lab_cli: Callable[..., CliResult]) -> None:
    command: click.Command = cli
    for name in path:
        assert isinstance(command, click.Group)
        command = command.commands[name]
    assert command.help and len(command.help.strip()) > 20
    result = lab_cli(*path, "--help")
    assert result.code == 0
    assert result.out.startswith(f"Usage: lab {' '.join(path)}")
    assert "--now" not in result.out  # the injected clock is for tests and replays only


def test_usage_errors_exit_2(lab_cli: Callable[..., CliResult], seeded: SeededLab) -> None:
    assert "Missing option '--key'" in seeded.cli(lab_cli, "approve", BUILD, "--to", "production").err
    assert seeded.cli(lab_cli, "approve", BUILD, "--to", "production").code == 2
    bad_key = seeded.cli(lab_cli, "approve", BUILD, "--to", "production", "--key", "/nonexistent/id_ed25519",
                         "--as", "someone", "--now", T0)
    assert (bad_key.code, bad_key.err) == (2, "lab: no key at /nonexistent/id_ed25519; give the path of your SSH "
                                              "private key (e.g. ~/.ssh/id_ed25519)\n")
    bad_expiry = seeded.cli(lab_cli, "approve", BUILD, "--to", "production", "--key", "k", "--expires", "soon",
                            "--now", T0)
    assert (bad_expiry.code, bad_expiry.err) == (2, "lab: expiry 'soon' is not an ISO 8601 time; write e.g. "
                                                    "2026-12-01T12:00:00Z\n")
    naive = seeded.cli(lab_cli, "gate", BUILD, "--to", "production", "--now", "2026-12-01T10:00:00")
    assert naive.err == "lab: --now '2026-12-01T10:00:00' has no time zone; add Z or an offset such as +02:00\n"


def test_gate_exit_codes(lab_cli: Callable[..., CliResult], seeded: SeededLab) -> None:
    allowed = seeded.cli(lab_cli, "gate", BUILD, "--to", "pilot", "--now", T0)
    assert allowed.code == 0 and f"{BUILD} (sha256 {seeded.build.digest[:12]}…): PROMOTABLE to pilot\n" in allowed.out
    blocked = seeded.cli(lab_cli, "gate", BUILD, "--to", "production", "--now", T0)
    assert blocked.code == 1 and "BLOCKED from production" in blocked.out
    assert promotions(seeded.store, "care-planner", "2.0.0") == []  # a decision moves nothing
