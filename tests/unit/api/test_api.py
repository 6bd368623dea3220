"""lab.api is the one front: the CLI only parses, calls one api function and prints; and the api
itself, used directly as a CI script would, does each use case whole (reports refreshed included)."""

from __future__ import annotations

import ast
import hashlib
import inspect
import json
import pkgutil
import textwrap
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import click
import pytest

import lab.cli
from lab import api
from lab.cli.app import cli
from lab.errors import ConfigError, NotFoundError
from lab.util.clock import parse_instant
from tests.support.lab_fixtures import BUILD, T0, SeededLab
from tests.support.labfiles import copy_default_lab

CLI_DIR = Path(lab.cli.__file__).parent
CMD_MODULES = sorted(m.name for m in pkgutil.iter_modules([str(CLI_DIR)]) if m.name.startswith("cmd_"))
API_FUNCTIONS = {name for name in api.__all__ if inspect.isfunction(getattr(api, name))}
# What lab/cli may import from the library besides lab.api, and why: rendering needs the model's
# types and enums (lab.model, the rollout's states in lab.rollout.records, the promotion path's
# type in lab.reports.path), one escaping function (lab.reports.data.printable), the error tree
# (lab.errors, for main's exit codes), and parsing the hidden --now option (lab.util.clock).
CLI_MAY_IMPORT = {"lab", "lab.api", "lab.errors", "lab.model", "lab.reports.data", "lab.reports.path",
                  "lab.rollout.records", "lab.util.clock"}


def imported_modules(path: Path) -> set[str]:
    """Every module ``path`` imports (``from lab.cli import cmd_x`` counts as ``lab.cli.cmd_x``)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names if alias.name.startswith("cmd_")}
    return found


def leaf_commands(group: click.Group, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, click.Command]]:
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            yield from leaf_commands(command, (*prefix, name))
        else:
            yield " ".join((*prefix, name)), command


def api_calls(command: click.Command) -> list[str]:
    """The ``api.<name>(...)`` calls in the body of ``command``'s callback (decorators left out)."""
    assert command.callback is not None
    source = textwrap.dedent(inspect.getsource(inspect.unwrap(command.callback)))
    function = ast.parse(source).body[0]
    assert isinstance(function, ast.FunctionDef)
    return [node.func.attr for statement in function.body for node in ast.walk(statement)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name) and node.func.value.id == "api"]


def test_the_cli_has_command_modules_to_check() -> None:
    assert {"cmd_campaign", "cmd_rollout", "cmd_production", "cmd_sandbox"} <= set(CMD_MODULES)


@pytest.mark.parametrize("name", CMD_MODULES)
def test_no_command_module_imports_another(name: str) -> None:
    imported = imported_modules(CLI_DIR / f"{name}.py")
    assert sorted(m for m in imported if m.startswith("lab.cli.cmd_")) == []


def test_the_cli_reaches_the_library_only_through_api() -> None:
    for path in sorted(CLI_DIR.glob("*.py")):
        library = {m for m in imported_modules(path) if m.split(".")[0] == "lab" and not m.startswith("lab.cli")}
        assert library <= CLI_MAY_IMPORT, f"{path.name} imports {sorted(library - CLI_MAY_IMPORT)}"


# Groups (``lab`` itself, ``rollout``, ``sandbox``, ``production``, ``audit``, ``evidence``) are not
# checked: they only hold their subcommands; ``lab``'s callback makes the session (``api.Lab``).
LEAVES = list(leaf_commands(cli))


@pytest.mark.parametrize(("path", "command"), LEAVES, ids=[path for path, _ in LEAVES])
def test_every_command_calls_exactly_one_api_function(path: str, command: click.Command) -> None:
    calls = api_calls(command)
    assert len(calls) == 1, f"`lab {path}` calls {calls}"
    assert calls[0] in API_FUNCTIONS


def test_the_rollout_command_has_subcommands_instead_of_mode_flags() -> None:
    rollout = cli.commands["rollout"]
    assert isinstance(rollout, click.Group)
    assert sorted(rollout.commands) == ["abort", "resume", "start", "status"]
    options = {name: {o for p in c.params for o in p.opts} for name, c in rollout.commands.items()}
    assert options["start"] == options["resume"] == {"build_ref", "--no-wait", "--now"}
    assert options["abort"] == {"build_ref", "--now"} and options["status"] == {"build_ref", "--json"}


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[api.Lab]:
    """A session on a fresh copy of the default lab (nothing registered, nothing run)."""
    with api.Lab(str(copy_default_lab(tmp_path / "lab"))) as session:
        yield session


def test_build_registers_a_build_once_and_the_store_starts_empty(fresh: api.Lab) -> None:
    checked = api.validate(fresh)
    assert [s.name for s in checked.config.sandboxes] == ["ts-sbx-01", "ts-sbx-02", "ts-sbx-03"]
    assert checked.config.path == fresh.config.path
    first = api.build(fresh, BUILD)
    assert (first.new, first.build.ref) == (True, BUILD)
    assert first.build.digest == hashlib.sha256(first.build.artifact.read_bytes()).hexdigest()
    again = api.build(fresh, BUILD)
    assert (again.new, again.build.digest, again.build.artifact) == (False, first.build.digest, first.build.artifact)
    assert api.list_campaigns(fresh) == ()
    with pytest.raises(NotFoundError, match=f"^{BUILD} has no rollout$"):
        api.rollout_status(fresh, BUILD)


def test_evidence_verify_needs_no_lab_and_refuses_what_is_not_a_bundle(tmp_path: Path) -> None:
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"format": "something else"}))
    with pytest.raises(ConfigError, match="not a lab evidence bundle"):
        api.evidence_verify(other)


@pytest.fixture
def session(seeded: SeededLab) -> Iterator[api.Lab]:
    """A session on a lab whose store holds build A with one finished, passing campaign."""
    with api.Lab(str(seeded.lab_yml)) as lab:
        yield lab


def at(text: str) -> datetime:
    return parse_instant(text)


def test_promote_records_the_promotion_and_refreshes_the_builds_reports(seeded: SeededLab, session: api.Lab) -> None:
    (row,) = api.list_campaigns(session)
    assert (row.campaign.id, row.done, row.cells) == (seeded.campaign.id, 9, 9)  # 3 sandboxes x 3 suites
    promoted = api.promote(session, BUILD, "pilot", at(T0))
    assert (promoted.outcome.recorded, promoted.outcome.campaign_id) == (True, seeded.campaign.id)
    assert promoted.signers_note is None
    reports = seeded.config.reports_dir
    assert promoted.refreshed == api.ReportsRefresh(BUILD, tuple(
        reports / f"{seeded.campaign.id}{suffix}" for suffix in (".html", ".junit.xml", ".json")))
    shown = json.loads((reports / f"{seeded.campaign.id}.json").read_text())["promotion_path"]["stages"]
    assert [(s["stage"], s["status"]) for s in shown][:2] == [("lab", "registered"), ("pilot", "promoted")]
    repeated = api.promote(session, BUILD, "pilot", at(T0))
    assert (repeated.outcome.verdict, repeated.outcome.recorded, repeated.refreshed) == (None, False, None)
    (entry,) = api.audit_show(session, "promotion")
    assert entry.subject == f"{BUILD} -> pilot"
    check = api.audit_verify(session)
    assert (check.ok, check.chain.entries) == (True, len(api.audit_show(session)))


def test_a_refused_promotion_raises_with_its_decision(seeded: SeededLab, session: api.Lab) -> None:
    with pytest.raises(api.PromotionRefused) as refused:
        api.promote(session, BUILD, "production", at(T0))
    verdict = refused.value.promotion.outcome.verdict
    assert verdict is not None and not verdict.allowed
    assert refused.value.exit_code == 1
    assert str(refused.value) == f"{BUILD} may not enter production: " + "; ".join(verdict.reasons)
    assert refused.value.promotion.refreshed is None
    assert api.audit_show(session, "promotion") == ()
    (decision,) = api.audit_show(session, "decision")
    assert decision.subject == f"{BUILD} -> production" and decision.data()["allowed"] is False


def test_report_as_text_writes_nothing(seeded: SeededLab, session: api.Lab) -> None:
    written = api.report(session, "latest", "json", as_text=True)
    assert written.paths == () and written.text is not None
    data = json.loads(written.text)
    assert (data["campaign"]["id"], data["build"]["digest"]) == (seeded.campaign.id, seeded.build.digest)
    assert not seeded.config.reports_dir.exists() or list(seeded.config.reports_dir.iterdir()) == []
    target = seeded.root / "out" / "report.xml"
    assert api.report(session, seeded.campaign.id, "junit", target).paths == (target,)
    assert target.read_text().startswith("<?xml")
