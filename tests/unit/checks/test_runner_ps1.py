"""runner.ps1 is read by a real PowerShell grammar (tree-sitter-powershell), since no PowerShell runs here.

- it parses without ERROR or MISSING nodes (and a broken copy is shown not to);
- its token stream has no PowerShell 7-only operator, parameter or variable, and no Invoke-Expression;
- its dispatch table and WINDOWS_CHECK_TYPES name the same check types, and every schema parameter
  is read by its handler (and only schema parameters are);
- the bootstrap and the stdin framing of lab.checks.powershell round-trip.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest
import tree_sitter
import tree_sitter_powershell

from lab.checks import powershell
from lab.checks.types.windows import WINDOWS_CHECK_TYPES

RUNNER = Path(__file__).resolve().parents[3] / "lab" / "checks" / "runner.ps1"

PS7_OPERATORS = {"??", "??=", "&&", "||"}
PS7_PARAMETERS = {"-parallel", "-ashashtable", "-skipcertificatecheck", "-skiphttperrorcheck", "-asarray",
                  "-escapehandling"}
PS7_VARIABLES = {"$psstyle", "$iswindows", "$islinux", "$ismacos", "$iscoreclr"}
FORBIDDEN_COMMANDS = {"invoke-expression", "iex"}


@cache
def parser() -> tree_sitter.Parser:
    return tree_sitter.Parser(tree_sitter.Language(tree_sitter_powershell.language()))


@cache
def parse(source: str) -> tree_sitter.Tree:
    """The parse tree of ``source`` (cached: the tests ask about the same text many times)."""
    return parser().parse(source.encode("utf-8"))


def walk(node: tree_sitter.Node) -> Iterator[tree_sitter.Node]:
    """Every node under ``node`` (itself included), depth first."""
    cursor = node.walk()  # a cursor made from a node never climbs above it
    while True:
        current = cursor.node
        assert current is not None
        yield current
        if cursor.goto_first_child():
            continue
        while not cursor.goto_next_sibling():
            if not cursor.goto_parent():
                return


def text(node: tree_sitter.Node) -> str:
    return (node.text or b"").decode("utf-8")


def where(source: str, node: tree_sitter.Node) -> str:
    """``line L, column C: <that line>`` for the first non-blank character of ``node``."""
    raw = text(node)
    skipped = raw[: len(raw) - len(raw.lstrip())]
    row = node.start_point.row + skipped.count("\n")
    column = len(skipped.rsplit("\n", 1)[-1]) if "\n" in skipped else node.start_point.column + len(skipped)
    lines = source.splitlines()
    line = lines[row] if row < len(lines) else ""
    return f"line {row + 1}, column {column + 1}: {line.strip()[:100]}"


def syntax_problems(source: str) -> list[str]:
    """Every ERROR and MISSING node of the parse, with its place in the source."""
    problems = []
    for node in walk(parse(source).root_node):
        if node.is_missing:
            problems.append(f"MISSING {node.type!r} at {where(source, node)}")
        elif node.is_error:
            problems.append(f"ERROR at {where(source, node)}")
    return problems


@dataclass(frozen=True)
class Token:
    kind: str
    text: str
    node: tree_sitter.Node


def tokens(source: str) -> list[Token]:
    """The leaves of the parse that are code: strings and comments are left out."""
    found = []
    for node in walk(parse(source).root_node):
        if node.child_count == 0 and "string" not in node.type and "comment" not in node.type:
            found.append(Token(node.type, text(node).strip(), node))
    return found


def forbidden_tokens(source: str) -> list[str]:
    """PowerShell 7-only syntax and Invoke-Expression in the token stream, with where each is."""
    found = []
    stream = tokens(source)
    for index, token in enumerate(stream):
        lowered = token.text.lower()
        following = stream[index + 1].text if index + 1 < len(stream) else ""
        if token.text in PS7_OPERATORS:
            what = "??=" if token.text == "??" and following == "=" else token.text
            found.append(f"PS7 operator {what} at {where(source, token.node)}")
        elif token.text == "?" and token.kind != "command_name":
            what = {".": "?.", "[": "?["}.get(following, "ternary ? :")
            found.append(f"PS7 operator {what} at {where(source, token.node)}")
        elif token.kind == "command_parameter" and lowered in PS7_PARAMETERS:
            found.append(f"PS7 parameter {token.text} at {where(source, token.node)}")
        elif token.kind == "variable" and lowered in PS7_VARIABLES:
            found.append(f"PS7 variable {token.text} at {where(source, token.node)}")
        elif lowered == "clean" and token.node.parent is not None and token.node.parent.type in ("ERROR", "block_name"):
            found.append(f"PS7 clean block at {where(source, token.node)}")
        elif token.kind == "command_name" and lowered in FORBIDDEN_COMMANDS:
            found.append(f"{token.text} at {where(source, token.node)}")
    for node in walk(parse(source).root_node):  # & 'iex' ... : a command named by a string
        if node.type == "command_invokation_operator" and node.next_sibling is not None:
            name = text(node.next_sibling).strip("'\" ").lower()
            if name in FORBIDDEN_COMMANDS:
                found.append(f"& {name} at {where(source, node)}")
    return found


def unquote(node: tree_sitter.Node) -> str:
    return text(node).strip().strip("'\"")


def functions(source: str) -> dict[str, tree_sitter.Node]:
    """Each function the script defines, by name."""
    found = {}
    for node in walk(parse(source).root_node):
        if node.type == "function_statement":
            name = next(c for c in node.children if c.type == "function_name")
            found[text(name)] = node
    return found


def dispatch_table(source: str) -> dict[str, str]:
    """The hash literal assigned to $LabCheckHandlers: check type -> handler function."""
    for node in walk(parse(source).root_node):
        if node.type == "assignment_expression" and text(node.children[0]).strip() == "$LabCheckHandlers":
            return {
                unquote(entry.children[0]): unquote(entry.children[2])
                for entry in walk(node) if entry.type == "hash_entry"
            }
    raise AssertionError("runner.ps1 has no $LabCheckHandlers table")


def dispatch_mismatches(source: str) -> list[str]:
    """Where the dispatch table, the handlers and WINDOWS_CHECK_TYPES disagree."""
    table = dispatch_table(source)
    defined = functions(source)
    schemas = set(WINDOWS_CHECK_TYPES)
    problems = [f"type {t!r} has no handler in runner.ps1" for t in sorted(schemas - set(table))]
    problems += [f"handler for {t!r} has no schema in WINDOWS_CHECK_TYPES" for t in sorted(set(table) - schemas)]
    problems += [f"{t!r} -> {f} is not a function of runner.ps1" for t, f in sorted(table.items()) if f not in defined]
    return problems


def parameters_read(function: tree_sitter.Node) -> set[str]:
    """Names passed as literals to Get-LabParam/Test-LabParam $Params inside ``function``."""
    names = set()
    for node in walk(function):
        if node.type != "command":
            continue
        name = next((c for c in node.children if c.type == "command_name"), None)
        if name is None or text(name) not in ("Get-LabParam", "Test-LabParam"):
            continue
        elements = next(c for c in node.children if c.type == "command_elements")
        arguments = [c for c in elements.children if c.type != "command_argument_sep"]
        if len(arguments) >= 2 and text(arguments[0]) == "$Params" and re.fullmatch(r"'[^']*'", text(arguments[1])):
            names.add(unquote(arguments[1]))
    return names


def string_literals(function: tree_sitter.Node) -> set[str]:
    return {unquote(node) for node in walk(function) if node.type == "string_literal"}


@pytest.fixture(scope="module")
def source() -> str:
    return RUNNER.read_text(encoding="utf-8")


# --- the grammar ----------------------------------------------------------------------------------

def test_runner_parses_without_error_or_missing_nodes(source: str) -> None:
    problems = syntax_problems(source)
    assert problems == [], "runner.ps1 does not parse:\n" + "\n".join(problems)
    assert len(functions(source)) >= 40  # the parse saw the whole file, not a prefix


def test_runner_is_ascii_without_nul(source: str) -> None:
    assert source.isascii()
    assert "\0" not in source


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ('    return $Text.Replace("`r`n", "`n")\n}\n', '    return $Text.Replace("`r`n", "`n")\n'),
        ("    if ($bytes.Length -le ($head + $tail)) {\n", "    if ($bytes.Length -le ($head + $tail) {\n"),
        ("$LabFormat = 1\n", "$LabFormat = 'unterminated\n"),
    ],
    ids=["closing-brace-removed", "closing-paren-removed", "unterminated-string"],
)
def test_a_broken_copy_is_detected(source: str, old: str, new: str) -> None:
    """The syntax test can fail: seeded breakage gives ERROR or MISSING nodes."""
    assert source.count(old) == 1, f"seed {old!r} not found once in runner.ps1"
    problems = syntax_problems(source.replace(old, new))
    assert problems, "the broken copy parsed cleanly"
    assert all(p.startswith(("ERROR at line", "MISSING")) for p in problems)


def test_problems_name_the_line() -> None:
    broken = "function A {\n    $x = 1\n}\nfunction B {\n    if ($x -eq 1) {\n        'b'\n}\n"
    problems = syntax_problems(broken)
    assert problems == ["MISSING '}' at line 7, column 2: }"]


# --- the token stream -----------------------------------------------------------------------------

def test_runner_uses_no_ps7_syntax_and_no_invoke_expression(source: str) -> None:
    found = forbidden_tokens(source)
    assert found == [], "\n".join(found)


def test_strings_and_comments_are_not_tokens(source: str) -> None:
    # The C# in Initialize-LabTls uses || and the header mentions \\uXXXX: neither is PowerShell code.
    assert "||" in source
    assert all(t.text != "||" for t in tokens(source))


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("$x = $a ?? $b", "PS7 operator ??"),
        ("$a ??= 5", "PS7 operator ??="),
        ("$n = $o?.Name", "PS7 operator ?."),
        ("$n = $o?[0]", "PS7 operator ?["),
        ("$y = $a ? 1 : 2", "PS7 operator ternary ? :"),
        ("Get-Item x && Get-Item y", "PS7 operator &&"),
        ("Get-Item x || Get-Item y", "PS7 operator ||"),
        ("1..3 | ForEach-Object -Parallel { $_ }", "PS7 parameter -Parallel"),
        ("$h = $Json | ConvertFrom-Json -AsHashtable", "PS7 parameter -AsHashtable"),
        ("$r = $PSStyle.Reset", "PS7 variable $PSStyle"),
        ("Invoke-Expression $Params['command']", "Invoke-Expression"),
        ("iex $text", "iex"),
        ("& 'iex' $text", "& iex"),
    ],
)
def test_seeded_forbidden_syntax_is_reported(line: str, expected: str) -> None:
    snippet = "function Test-LabSeed {\n    param($Params, $Context)\n    " + line + "\n}\n"
    found = forbidden_tokens(snippet)
    assert len(found) == 1, found
    assert found[0].startswith(f"{expected} at line 3, column ")
    assert found[0].endswith(": " + line)


def test_forbidden_syntax_in_the_real_runner_is_reported(source: str) -> None:
    anchor = "$LabFormat = 1\n"
    inserted_at = source.splitlines().index(anchor.strip()) + 2
    found = forbidden_tokens(source.replace(anchor, anchor + "$x = $a ?? $b\n"))
    assert found == [f"PS7 operator ?? at line {inserted_at}, column 9: $x = $a ?? $b"]


def test_question_mark_alias_is_not_an_operator() -> None:
    assert forbidden_tokens("Get-Process | ? { $_.Id -gt 4 }\n") == []


def comma_returning(source: str) -> set[str]:
    """Functions that return an array whole (``return , $x``)."""
    return {name for name, node in functions(source).items() if re.search(r"\breturn\s*,", text(node))}


def unrolled_twice(source: str) -> list[str]:
    """Calls of comma-returning functions inside @(...) or piped on: both see an array of the array."""
    wrapped = comma_returning(source)
    found = []
    for node in walk(parse(source).root_node):
        if node.type != "command" or text(node.children[0]) not in wrapped:
            continue
        chain = node.parent
        piped = chain is not None and any(c.type == "|" for c in chain.children)
        outer = chain
        while outer is not None and outer.type in ("pipeline_chain", "pipeline", "statement_list"):
            outer = outer.parent
        if piped or (outer is not None and outer.type == "array_expression"):
            found.append(f"{text(node.children[0])} {'piped' if piped else 'inside @()'} at {where(source, node)}")
    return found


def test_array_returning_functions_are_not_wrapped_again(source: str) -> None:
    assert {"Get-LabParam", "Get-LabProperty", "Get-LabArgv", "ConvertTo-LabVersionKey"} <= comma_returning(source)
    found = unrolled_twice(source)
    assert found == [], "\n".join(found)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("$checks = @(Get-LabParam $manifest 'checks' @())", "Get-LabParam inside @()"),
        ("$codes = Get-LabParam $Params 'status' 200 | ForEach-Object { [int]$_ }", "Get-LabParam piped"),
        ("foreach ($t in @(Get-LabProperty $Run 'TestResult')) { $t }", "Get-LabProperty inside @()"),
    ],
)
def test_seeded_double_wrapping_is_reported(source: str, line: str, expected: str) -> None:
    anchor = "$LabFormat = 1\n"
    found = unrolled_twice(source.replace(anchor, anchor + line + "\n"))
    assert len(found) == 1 and found[0].startswith(expected), found


# --- dispatch table and schemas -------------------------------------------------------------------

def test_dispatch_table_matches_windows_check_types(source: str) -> None:
    table = dispatch_table(source)
    assert len(table) == 12
    assert table["registry"] == "Test-LabRegistry"
    assert dispatch_mismatches(source) == []


def test_a_missing_handler_is_reported(source: str) -> None:
    broken = source.replace("    'pester'   = 'Test-LabPester'\n", "")
    assert dispatch_mismatches(broken) == ["type 'pester' has no handler in runner.ps1"]
    renamed = source.replace("'Test-LabPort'\n", "'Test-LabPorts'\n", 1)
    assert dispatch_mismatches(renamed) == ["'port' -> Test-LabPorts is not a function of runner.ps1"]


@pytest.mark.parametrize("kind", sorted(WINDOWS_CHECK_TYPES))
def test_each_handler_reads_exactly_its_schema_parameters(source: str, kind: str) -> None:
    handler = functions(source)[dispatch_table(source)[kind]]
    schema = set(WINDOWS_CHECK_TYPES[kind]["properties"])
    unread = schema - string_literals(handler)
    assert unread == set(), f"{kind}: parameters in the schema that the handler never names: {sorted(unread)}"
    unknown = parameters_read(handler) - schema
    assert unknown == set(), f"{kind}: parameters the handler reads that the schema rejects: {sorted(unknown)}"


def test_parameter_reading_is_seen(source: str) -> None:
    handler = functions(source)["Test-LabService"]
    assert parameters_read(handler) == {"name", "exists", "state", "start_mode", "running", "enabled"}


def test_worker_functions_all_travel_to_the_runspace(source: str) -> None:
    # Get-LabWorkerRunspace copies the functions named *-Lab* into the worker: every function must be one.
    assert [name for name in functions(source) if "-Lab" not in name] == []


# --- bootstrap and framing ------------------------------------------------------------------------

def test_bootstrap_decodes_to_a_short_stdin_reader() -> None:
    script = base64.b64decode(powershell.POWERSHELL_BOOTSTRAP).decode("utf-16-le")
    assert script == powershell.BOOTSTRAP_SCRIPT
    assert len(script) < 3000
    assert "$labLines = @($input | ForEach-Object { [string]$_ })" in script
    assert '"`0`0`0`0"' in script
    assert ". $labRunner" in script
    assert "Stop-LabRunner -ExitCode (Invoke-LabManifest -Json $labJson)" in script
    assert powershell.POWERSHELL_ARGV[-2:] == ("-EncodedCommand", powershell.POWERSHELL_BOOTSTRAP)


def test_the_bootstrap_command_line_fits_cmd_exe() -> None:
    # WinRS runs the command through cmd.exe (WINRS_SKIP_CMD_SHELL is false), whose line limit is 8191.
    line = "cmd.exe /c " + subprocess.list2cmdline(powershell.POWERSHELL_ARGV)
    assert len(line) < 8191 - 500, len(line)


def test_bootstrap_parses_and_calls_functions_the_runner_defines(source: str) -> None:
    script = powershell.BOOTSTRAP_SCRIPT
    assert syntax_problems(script) == []
    assert forbidden_tokens(script) == []
    called = {t.text for t in tokens(script) if t.kind == "command_name" and "-Lab" in t.text}
    assert called == {"Stop-LabRunner", "Invoke-LabManifest"}
    assert called <= set(functions(source))


def test_payload_round_trips_through_the_framing_and_its_python_model(source: str) -> None:
    """The payload's framing, read back by ``split_payload``: a Python model of the bootstrap's line
    reading, not the PowerShell bootstrap itself (no PowerShell runs in these tests)."""
    manifest = {
        "format": 1, "suite": "smoke", "root": "C:\\",
        "checks": [{"id": "greeting", "type": "command", "timeout": 5.0, "retries": 0,
                    "params": {"command": ["cmd.exe", "/c", "echo", "Grüße\nzwei Zeilen"], "stdout": "Gr"}}],
    }
    payload = powershell.powershell_payload(manifest)
    assert payload.isascii()
    lines = payload.decode("ascii").split("\n")
    assert lines.count("\0\0\0\0") == 1
    assert lines[-3] == "\0\0\0\0"  # separator, manifest line, then the final newline
    assert json.loads(lines[-2]) == manifest
    script, back = powershell.split_payload(payload)
    assert script == source
    assert back == manifest
    assert back["checks"][0]["params"]["command"][3] == "Grüße\nzwei Zeilen"


def test_the_python_model_of_the_bootstrap_splits_crlf_payloads(source: str) -> None:
    """``split_payload`` (the Python model of the bootstrap) drops the CR of CRLF line ends. This checks
    the model only; that the PowerShell bootstrap strips CR too is not proven here."""
    manifest = {"format": 1, "suite": "s", "root": "/", "checks": []}
    payload = powershell.powershell_payload(manifest).replace(b"\n", b"\r\n")
    script, back = powershell.split_payload(payload)
    assert back == manifest
    assert script == source


def test_payload_without_separator_is_refused() -> None:
    with pytest.raises(ValueError, match="no separator"):
        powershell.split_payload(b"Write-Output 1\n{\"format\": 1}\n")
