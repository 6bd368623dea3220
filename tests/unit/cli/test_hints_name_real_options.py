"""Every ``--option`` a message of lab tells the user to use exists on lab's command line.

The texts are every string constant (and f-string part) in lab/; options of the tools lab runs
for itself (unshare, mount, ssh-keygen, pytest, PowerShell) are listed with the tool's name, and
only where lab builds that tool's command line."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import click

import lab
from lab.cli.app import cli

OPTION = re.compile(r"(?<![\w-])--[a-z][a-z0-9]*(?:-[a-z0-9]+)*")
PACKAGE = Path(lab.__file__).parent

# (module, option): an option of another program, on a command line lab builds in that module.
OTHER_TOOLS = {
    ("sandboxes/namespace/boot.py", "--fork"), ("sandboxes/namespace/boot.py", "--pid"),  # unshare
    ("sandboxes/namespace/boot.py", "--mount"), ("sandboxes/namespace/boot.py", "--uts"),
    ("sandboxes/namespace/boot.py", "--kill-child"), ("sandboxes/namespace/boot.py", "--propagation"),
    ("sandboxes/namespace/boot.py", "--rbind"),  # mount
    ("sandboxes/namespace/linux.py", "--lazy"),  # umount
    *(("checks/testinfra_suite.py", o) for o in ("--basetemp", "--connection", "--hosts", "--junitxml", "--rootdir",
                                                 "--ssh-config")),  # pytest and pytest-testinfra
    *(("executors/worker.py", o) for o in ("--concurrency", "--prefetch-multiplier", "--without-gossip",
                                           "--without-mingle", "--loglevel", "--queues", "--hostname")),  # celery
}


def lab_options() -> set[str]:
    """Every long option of every lab command and group."""
    found: set[str] = {"--help"}  # click adds it to every command

    def walk(command: click.Command) -> None:
        for param in command.params:
            found.update(o for o in [*param.opts, *param.secondary_opts] if o.startswith("--"))
        if isinstance(command, click.Group):
            for sub in command.commands.values():
                walk(sub)

    walk(cli)
    return found


def texts(tree: ast.AST) -> list[str]:
    return [node.value for node in ast.walk(tree) if isinstance(node, ast.Constant) and isinstance(node.value, str)]


def named_options() -> dict[tuple[str, str], int]:
    """(module, option) -> line, for every --option in a string of lab/."""
    found: dict[tuple[str, str], int] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        module = path.relative_to(PACKAGE).as_posix()
        if module == "checks/runner.py":
            continue  # runs on sandboxes; prints nothing to lab's users
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                for option in OPTION.findall(node.value):
                    found.setdefault((module, option), node.lineno)
    return found


def test_every_hint_names_an_option_lab_has() -> None:
    options = lab_options()
    assert {"--lab", "--now", "--lease-timeout", "--reason", "--expires", "--key", "--to"} <= options
    wrong = sorted(f"lab/{module}:{line}: {option}" for (module, option), line in named_options().items()
                   if option not in options and (module, option) not in OTHER_TOOLS)
    assert wrong == []


def test_the_scan_sees_options_in_messages() -> None:
    found = named_options()
    assert ("sandboxes/lease.py", "--lease-timeout") in found  # the lease hint names the sandbox option
    assert any(option == "--reason" for _, option in found)
