"""Hypothesis mutates the default lab's files; `lab validate` must answer 0 (still valid) or 2 (one
message), never a traceback or an internal error, and never write anything under the lab."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.corpus import snapshot
from tests.support.labfiles import CliResult, copy_default_lab

FILES = ("lab.yml", "agreement.yml", "inventory/hosts.yml", "test_suites/portfolio-compat.yml",
         "test_suites/care-planner-smoke.yml", "playbooks/deploy.yml")
NASTY = ("", "~", ".nan", ".inf", "-.inf", "-1", "0", "1e999", "yes", "2026-02-30", "[", "]", "{", "&a", "*a",
         "!!python/none", "'", '"', "---", "../../../../etc/ssh", "/dev/zero", "%", "${x}", "\t", "é", "\x00",
         "[[[]]]", "{a: *a}", "99999999999999999999", "!vault", "? a", ": b", "- -", "|", ">")


@st.composite
def mutations(draw: st.DrawFn) -> tuple[str, list[tuple[str, int, str]]]:
    """A file and a few edits of it: (kind, where, text), where is a line index."""
    file = draw(st.sampled_from(FILES))
    edits = draw(st.lists(st.tuples(st.sampled_from(("replace-value", "insert", "delete", "duplicate")),
                                    st.integers(min_value=0, max_value=200),
                                    st.one_of(st.sampled_from(NASTY), st.text(max_size=12))), min_size=1, max_size=3))
    return file, edits


def mutate(text: str, edits: list[tuple[str, int, str]]) -> str:
    lines = text.splitlines()
    for kind, at, new in edits:
        if not lines:
            lines = [new]
            continue
        index = at % len(lines)
        line = lines[index]
        if kind == "replace-value" and ":" in line:
            lines[index] = line[:line.index(":") + 1] + " " + new
        elif kind == "insert":
            lines.insert(index, new)
        elif kind == "delete":
            del lines[index]
        else:
            lines.insert(index, line)
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_default_lab(tmp_path_factory.mktemp("pristine") / "lab").parent


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(change=mutations())
def test_a_mutated_lab_is_valid_or_refused_cleanly(change: tuple[str, list[tuple[str, int, str]]], pristine: Path,
                                                   tmp_path: Path, run_cli: Callable[..., CliResult]) -> None:
    file, edits = change
    lab = tmp_path / "lab"
    if not lab.exists():
        copy_default_lab(lab)
    original = (pristine / file).read_text(encoding="utf-8")
    target = lab / file
    try:
        target.write_text(mutate(original, edits), encoding="utf-8", errors="surrogateescape")
        before = snapshot(lab)
        result = run_cli("--lab", str(lab / "lab.yml"), "validate")
        output = result.out + result.err
        assert "Traceback (most recent call last)" not in output and "internal error" not in output, output
        assert result.code in (0, 2), output
        if result.code == 2:
            assert result.err.startswith("lab: ") and result.out == "", output
        else:  # a mutation that is still a valid lab: the whole listing, ending in its verdict
            assert result.out.endswith("\nvalid\n") and result.err == "", output
        assert snapshot(lab) == before
    finally:
        target.write_text(original, encoding="utf-8")
