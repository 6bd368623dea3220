"""Compile a suite into a manifest (data for the runner) and read the runner's answer back."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from typing import Any

from lab.checks.clixml import stderr_summary
from lab.checks.delivery import run_runner
from lab.checks.testinfra_suite import CONTROLLER_TYPES, run_controller_checks
from lab.model import Result, Status, Suite
from lab.transports.base import CommandResult, Transport

FORMAT = 1
MAX_LINE = 1024 * 1024  # one result line; the runner clips evidence to far less
MAX_MESSAGE = 4096
UTF8_BOM = b"\xef\xbb\xbf"

VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")  # ${name}: an inventory variable, filled in per host


def substitute(value: Any, variables: dict[str, Any]) -> Any:
    """Replace ``${name}`` in strings with the sandbox's variables; the result stays data."""
    if isinstance(value, str):
        return VARIABLE.sub(lambda m: str(variables[m.group(1)]), value)
    if isinstance(value, list):
        return [substitute(v, variables) for v in value]
    if isinstance(value, dict):
        return {k: substitute(v, variables) for k, v in value.items()}
    return value


def compile_suite(suite: Suite, root: str, variables: dict[str, Any]) -> dict[str, Any]:
    """The manifest of ``suite`` for one sandbox: check ids, types and parameters, as JSON data."""
    checks = []
    for check in suite.checks:
        entry: dict[str, Any] = {
            "id": check.id,
            "type": check.type,
            "timeout": check.timeout,
            "retries": check.retries,
        }
        if check.skip:
            entry["skip"] = check.skip
        try:
            entry["params"] = substitute(check.params, variables)
        except KeyError as exc:
            entry["params"] = {}
            entry["broken"] = f"variable {exc} is not set for this sandbox"
        checks.append(entry)
    return {"format": FORMAT, "suite": suite.name, "root": root, "checks": checks}


def suite_budget(suite: Suite, cap: float) -> float:
    """How long the whole suite may take on the sandbox: every check and its retries, within ``cap``."""
    total = sum(c.timeout * (1 + c.retries) for c in suite.checks) + 10.0
    return min(total, cap)


def parse_results(suite: Suite, output: CommandResult) -> list[Result]:
    """Results for every check of ``suite`` from the runner's JSON lines.

    A check the runner did not report (it crashed, timed out or the line was garbled) is an
    ``error`` result: missing evidence is never a pass.
    """
    reported: dict[str, Result] = {}
    ended = False
    # a console at code page 65001 may put a BOM before the first line
    for raw in output.stdout.removeprefix(UTF8_BOM).splitlines():
        try:
            line = json.loads(raw)
        except ValueError:
            continue
        if not isinstance(line, dict):
            continue
        if line.get("end") is True:
            ended = True
            continue
        check_id = line.get("id")
        status = line.get("status")
        if not isinstance(check_id, str) or status not in {s.value for s in Status}:
            continue
        evidence = line.get("evidence")
        if not isinstance(evidence, dict) or len(raw) > MAX_LINE:
            # A runner that is not ours (or a broken one) must not flood the store.
            evidence = {"note": f"evidence dropped: {len(raw)} bytes is over the {MAX_LINE}-byte limit"} \
                if isinstance(evidence, dict) else {}
        reported[check_id] = Result(
            check_id=check_id,
            status=Status(status),
            message=str(line.get("message", ""))[:MAX_MESSAGE],
            evidence=evidence,
            duration_ms=int(line.get("duration_ms", 0) or 0),
            attempts=int(line.get("attempts", 1) or 0),
        )
    if output.timed_out:
        why = f"the suite timed out after {output.duration_s:.0f}s before this check reported"
    elif not ended:
        why = f"the runner stopped (exit code {output.exit_code}) before this check reported"
        if stderr := stderr_summary(output.stderr):  # PowerShell's CLIXML decoded, not raw XML
            why += f": {stderr[:500]}"
    else:
        why = "the runner did not report this check"
    results = []
    for check in suite.checks:
        results.append(reported.get(check.id) or Result(check.id, Status.ERROR, why, {}, 0, 0))
        # A check may report parts of itself as "<id>/<part>" (e.g. each test of a Pester file).
        results.extend(r for key, r in reported.items() if key.startswith(f"{check.id}/"))
    return results


def run_suite(transport: Transport, suite: Suite, root: str, variables: dict[str, Any], cap: float) -> list[Result]:
    """One round trip on an open ``transport``: ``suite`` compiled for the host, run by its runner
    within the suite's budget (at most ``cap``), one result per check. Transport errors propagate.

    Checks the controller runs itself (``testinfra``) never reach the runner: they run after it,
    against the same sandbox, and their results take their place in the suite's order.
    """
    on_runner = replace(suite, checks=tuple(c for c in suite.checks if c.type not in CONTROLLER_TYPES))
    results: list[Result] = []
    if on_runner.checks:
        output = run_runner(transport, compile_suite(on_runner, root, variables), suite_budget(on_runner, cap))
        results = parse_results(on_runner, output)
    controller = run_controller_checks(transport, suite, root, variables, cap)
    return in_suite_order(suite, results, controller) if controller else results


def in_suite_order(suite: Suite, runner: list[Result], controller: dict[str, list[Result]]) -> list[Result]:
    """The runner's results (each check's own, then its parts) and the controller's, in the suite's order."""
    merged, pending = [], list(runner)
    for check in suite.checks:
        if check.id in controller:
            merged += controller[check.id]
            continue
        while pending and (pending[0].check_id == check.id or pending[0].check_id.startswith(f"{check.id}/")):
            merged.append(pending.pop(0))
    return merged + pending


def error_results(suite: Suite, message: str) -> list[Result]:
    """Every check of ``suite`` as ``error`` with ``message``: the suite could not be run at all."""
    return [Result(c.id, Status.ERROR, message, {}, 0, 0) for c in suite.checks]
