"""Every case of the bad-input corpus (tests/corpus/bad_input/, described in tests/support/corpus.py)
ends as the README's contract says: the exit code, one message with the fragment, no traceback,
and, on a refusal, nothing written under the lab."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.corpus import CORPUS, apply_edit, load_case, snapshot
from tests.support.labfiles import CliResult, copy_default_lab

CASES = sorted(CORPUS.glob("*.yml"))


def test_the_corpus_covers_every_input_with_more_than_a_hundred_cases() -> None:
    assert len(CASES) >= 100
    touched = {edit["file"].split("/")[0] for case in map(load_case, CASES) for edit in case["edits"]}
    assert {"lab.yml", "agreement.yml", "inventory", "test_suites", "playbooks", "keys", ".lab", "products"} <= touched
    commands = {" ".join(load_case(c)["command"]) for c in CASES}
    assert any(c.startswith("--lab") for c in commands) and any(c.startswith("evidence") for c in commands)


@pytest.mark.parametrize("case_file", CASES, ids=[c.stem for c in CASES])
def test_bad_input_case(case_file: Path, tmp_path: Path, run_cli: Callable[..., CliResult]) -> None:
    case = load_case(case_file)
    lab_yml = copy_default_lab(tmp_path / "lab")
    root = lab_yml.parent
    for before in case.get("before", []):
        done = run_cli("--lab", str(lab_yml), *before)
        assert done.code == 0, done.err
    for edit in case["edits"]:
        apply_edit(root, edit)
    command = [part.replace("{lab}", str(root)) for part in case["command"]]
    if not command[0].startswith("--lab"):
        command = ["--lab", str(lab_yml), *command]
    if os.geteuid() == 0 and any("chmod" in e for e in case["edits"]):
        pytest.skip("root may write a read-only file: run this case as an unprivileged user")
    before_run = snapshot(root)
    result = run_cli(*command)
    output = result.out + result.err
    assert "Traceback" not in output and "internal error" not in output, output
    assert result.code == case["exit"], f"{case['about']}: exit {result.code}\n{output}"
    assert case["message"] in output, f"{case['about']}: {output}"
    if case["exit"] == 2:
        assert snapshot(root) == before_run, f"{case['about']}: a refused command wrote under the lab"
        message_lines = [line for line in result.err.splitlines() if line.strip()]
        assert len(message_lines) <= 3, result.err
