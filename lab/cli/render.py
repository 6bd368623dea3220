"""Plain-text rendering shared by the commands: verdicts, campaign matrices, promotion paths, refreshed
reports and the allowed_signers override note."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import click

from lab.api import ReportsRefresh, document
from lab.errors import ConfigError, LabError
from lab.model import CellState, ClauseOutcome, Status, Verdict
from lab.reports.data import ReportData, printable
from lab.reports.path import PromotionPath

MARK = {ClauseOutcome.MET: "ok ", ClauseOutcome.NOT_MET: "NO ", ClauseOutcome.NOT_APPLICABLE: " - "}


def print_verdict(verdict: Verdict, evidence: bool = False) -> None:
    """The decision, one line per clause, and the next open window when the stage is closed; with
    ``evidence``, also what each clause looked at, the evidence digest and the clock."""
    word = "PROMOTABLE to" if verdict.allowed else "BLOCKED from"
    click.echo(f"{verdict.build_ref} (sha256 {verdict.digest[:12]}…): {word} {verdict.stage}")
    for clause in verdict.clauses:
        click.echo(f"  [{MARK[clause.outcome]}] {clause.name}: {printable(clause.detail)}")
        if evidence and clause.evidence:
            click.echo(f"        used: {printable('; '.join(clause.evidence))}")
    if evidence:
        click.echo(f"evidence sha256 {verdict.evidence_digest} (what approvers sign); clock {verdict.evaluated_at}")
    if verdict.next_open:
        click.echo(f"next open window: {verdict.next_open}")


def print_campaign(data: ReportData, *, details: bool) -> None:
    c = data.campaign
    click.echo(f"campaign {c.id}: {c.build_ref} sha256 {c.digest[:12]}…, {c.state.value}, started {c.created_at}")
    for cell in data.cells:
        counts = {s: sum(1 for r in cell.results if r.status is s) for s in Status}
        if cell.state is not CellState.DONE:
            summary = f"{cell.state.value} (no evidence yet)"
        else:
            summary = ", ".join(f"{n} {s.value}" for s, n in counts.items() if n)
        kind = "" if data.mandatory.get(cell.suite, True) else " (advisory)"
        click.echo(f"  {cell.sandbox:<14} {cell.suite + kind:<34} {summary}")
        if details:
            for result in cell.results:
                if result.status in (Status.FAIL, Status.ERROR, Status.FLAKY):
                    click.echo(f"      {result.status.value.upper():<5} {printable(result.check_id)}: "
                               f"{printable(result.message)[:300]}")
    print_verdict(data.verdict)


def print_path(path: PromotionPath) -> None:
    """Where the build stands: one line per stage, its signed records and its latest rollout."""
    click.echo(f"promotion path (as of {path.evaluated_at}):")
    for row in path.stages:
        if row.status == "next" and row.decision is not None:
            word = "PROMOTABLE" if row.decision.allowed else "BLOCKED"
            why = "; ".join(row.decision.reasons)
            state = f"next: {word}" + (f" ({printable(why)})" if why else "")
        elif row.status in ("registered", "promoted"):
            state = f"{row.status} {row.at}" + (f" on campaign {row.campaign_id}" if row.status == "promoted" else "")
        else:
            state = row.status
        click.echo(f"  {row.stage:<12} {state}")
    for record in path.signed:
        where = record.stage or record.waives
        check = "verified" if record.verified else f"NOT verified: {printable(record.problem)[:200]}"
        click.echo(f"  #{record.record_id} {record.kind} {where} by {printable(record.principal)}, "
                   f"until {record.expires}: {check}")
    if path.signers_note:
        click.echo(f"  {path.signers_note}")
    if path.rollout is not None:
        rollout = path.rollout
        click.echo(f"  rollout {rollout.id}: {rollout.state.value}"
                   + (f" - {printable(rollout.detail)[:300]}" if rollout.detail else ""))


def print_reports(paths: Iterable[Path]) -> None:
    """One ``report: PATH`` line per report written."""
    for path in paths:
        click.echo(f"report: {path}")


def print_refresh(refresh: ReportsRefresh | None) -> None:
    """Which reports were re-written after a change, in one line; a failure on stderr, saying how to
    write them (what was recorded stands); nothing when the build has no campaign."""
    if refresh is None:
        return
    if refresh.problem is not None:
        click.echo(f"lab: the reports of {refresh.build_ref} were not refreshed ({refresh.problem}); "
                   "`lab report CAMPAIGN` writes them", err=True)
        return
    if refresh.paths:
        first, *rest = refresh.paths
        also = ", ".join(path.name.removeprefix(first.stem) for path in rest)
        click.echo(f"report refreshed: {first} (and {also})")


def print_note(note: str | None) -> None:
    """The line saying approvals were verified against an overriding allowed_signers file, if one was."""
    if note:
        click.echo(note)


def print_json(document: dict[str, Any]) -> None:
    """One JSON document on standard output, and nothing else there."""
    click.echo(json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False))


def print_error_json(error: LabError) -> None:
    """A failed command as one JSON document: valid (false) and error: message, file and line (null where
    unknown), exit_code. The message still goes to stderr as for every error."""
    source = error.source if isinstance(error, ConfigError) else None
    line = error.line if isinstance(error, ConfigError) else None
    print_json(document(valid=False,
                        error={"message": str(error), "file": source, "line": line, "exit_code": error.exit_code}))
