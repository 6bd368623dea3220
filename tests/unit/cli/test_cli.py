"""The CLI contract: help on every command, exit codes, messages without tracebacks."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import click
import pytest

from lab.cli.app import cli
from tests.support.labfiles import CliResult


def commands(group: click.Group, prefix: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    for name, command in sorted(group.commands.items()):
        yield (*prefix, name), command
        if isinstance(command, click.Group):
            yield from commands(command, (*prefix, name))


ALL = list(commands(cli))


def test_the_cli_has_the_commands_the_lab_needs() -> None:
    names = {" ".join(path) for path, _ in ALL}
    assert {"validate", "build", "run", "resume", "list", "show", "report", "promote", "gate", "approve", "waive",
            "audit", "evidence", "rollout", "production"} <= names


@pytest.mark.parametrize(("path", "command"), ALL, ids=[" ".join(p) for p, _ in ALL])
def test_every_command_has_help(path: tuple[str, ...], command: click.Command,
                                run_cli: Callable[..., CliResult]) -> None:
    assert command.help and len(command.help.strip()) > 20, f"`lab {' '.join(path)}` has no real help text"
    result = run_cli(*path, "--help")
    assert result.code == 0
    assert result.out.startswith(f"Usage: lab {' '.join(path)}")
    assert command.help.strip().splitlines()[0][:40] in result.out


def test_top_level_help_and_version(run_cli: Callable[..., CliResult]) -> None:
    result = run_cli("--help")
    assert result.code == 0 and "lab run care-planner@2.0.0" in result.out
    version = run_cli("--version")
    assert (version.code, version.out) == (0, "lab, version 0.1.0\n")


def test_bad_usage_exits_2(run_cli: Callable[..., CliResult]) -> None:
    result = run_cli("promote", "care-planner@2.0.0")
    assert result.code == 2
    assert "Missing option '--to'" in result.err
    assert run_cli("frobnicate").code == 2
