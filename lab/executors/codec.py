"""Suites and results as JSON, for task payloads and outcomes (a suite travels as its manifest of
checks, so a worker runs exactly the suite the controller planned, whatever its own copy says)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lab.model import Check, Result, Status, Suite


def suite_to_json(suite: Suite) -> dict[str, Any]:
    """``suite`` as data: its name, file name, whether it is mandatory, platforms and every check."""
    return {"name": suite.name, "file": suite.path.name, "mandatory": suite.mandatory,
            "platforms": list(suite.platforms), "description": suite.description,
            "checks": [{"id": c.id, "type": c.type, "params": c.params, "timeout": c.timeout, "retries": c.retries,
                        "description": c.description, "line": c.line, "skip": c.skip} for c in suite.checks]}


def suite_from_json(data: dict[str, Any], suites_dir: Path) -> Suite:
    """The suite ``suite_to_json`` made, its file taken to be in ``suites_dir`` (where files a check
    names, such as testinfra's, are looked up on this machine)."""
    checks = tuple(Check(str(c["id"]), str(c["type"]), dict(c["params"]), float(c["timeout"]), int(c["retries"]),
                         str(c.get("description", "")), c.get("line"), c.get("skip")) for c in data["checks"])
    return Suite(str(data["name"]), suites_dir / str(data["file"]), bool(data["mandatory"]),
                 tuple(str(p) for p in data["platforms"]), checks, str(data.get("description", "")))


def result_to_json(result: Result) -> dict[str, Any]:
    return {"check_id": result.check_id, "status": result.status.value, "message": result.message,
            "evidence": result.evidence, "duration_ms": result.duration_ms, "attempts": result.attempts}


def result_from_json(data: dict[str, Any]) -> Result:
    return Result(str(data["check_id"]), Status(data["status"]), str(data["message"]), dict(data["evidence"]),
                  int(data["duration_ms"]), int(data.get("attempts", 1)))
