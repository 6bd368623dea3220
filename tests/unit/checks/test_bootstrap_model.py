"""A Python model of the PowerShell bootstrap (lab.checks.powershell.BOOTSTRAP_SCRIPT), and what the lab makes
of each of its answers: FullLanguage, ConstrainedLanguage, a payload with a BOM, a payload without manifest.

No PowerShell runs here. ``bootstrap_model`` mirrors the script's branches in Python; the first tests tie the
model to the script's text (same separator, same BOM handling, same message, same facts, same exit codes),
the others feed the model's output to the real Python side (parse_results, host_facts, the CLIXML decoder).
What this proves: the framing and the lab's reading of every answer. What it cannot prove: that Windows
PowerShell executes the script as modelled; `lab selftest` on a real host does that.
"""

from __future__ import annotations

from pathlib import Path

from lab.checks import powershell
from lab.checks.clixml import stderr_summary
from lab.checks.manifest import parse_results
from lab.model import Check, Status, Suite
from tests.support.powershell_model import FACTS, bootstrap_model


def suite() -> Suite:
    checks = (Check("notepad", "file", {"path": "C:\\Windows\\notepad.exe"}, 5.0, 0),
              Check("spooler", "service", {"name": "Spooler"}, 5.0, 0))
    return Suite("s", Path("s.yml"), True, ("windows-server-2022",), checks)


def payload() -> bytes:
    from lab.checks.manifest import compile_suite

    return powershell.powershell_payload(compile_suite(suite(), "C:\\", {}))


# --- the model is the script ---------------------------------------------------------------------------

def test_the_model_follows_the_scripts_text() -> None:
    script = powershell.BOOTSTRAP_SCRIPT
    assert '-ceq "`0`0`0`0"' in script                                   # the separator, compared exactly
    assert "$labLines[0].TrimStart([char]0xFEFF)" in script                # a BOM before the first line is dropped
    assert "if ($labMode -ne 'FullLanguage')" in script                   # the ConstrainedLanguage branch
    assert f"message = '{powershell.CONSTRAINED_LANGUAGE_MESSAGE}'" in script
    assert "status = 'error'" in script and '\'{"end":true,"checks":\' + $labChecks.Count + \'}\'' in script
    assert "Write-Error -Message 'lab bootstrap: no manifest on stdin (no line of four NUL characters)'" in script
    assert "-ErrorAction Continue\n    exit 3" in script
    assert "'{\"host\":' + (ConvertTo-Json -InputObject $labFacts -Compress) + '}'" in script
    for name in powershell.FACTS:
        assert f"{name} = " in script, name


# --- what the lab makes of each answer -----------------------------------------------------------------

def test_full_language_reports_the_facts_and_runs_the_runner() -> None:
    answer = bootstrap_model(payload(), FACTS)
    assert powershell.host_facts(answer.stdout) == FACTS
    results = parse_results(suite(), answer)
    assert [r.message for r in results] == ["the runner did not report this check"] * 2  # the model has no runner


def test_constrained_language_errs_every_check_with_one_clear_message() -> None:
    clm = {**FACTS, "language_mode": "ConstrainedLanguage"}
    answer = bootstrap_model(payload(), clm)
    results = parse_results(suite(), answer)
    assert [(r.check_id, r.status) for r in results] == [("notepad", Status.ERROR), ("spooler", Status.ERROR)]
    assert {r.message for r in results} == {powershell.CONSTRAINED_LANGUAGE_MESSAGE}
    message = powershell.CONSTRAINED_LANGUAGE_MESSAGE
    assert "ConstrainedLanguage" in message and "WDAC" in message and "AppLocker" in message
    assert "must let the WinRM account of the lab run PowerShell in FullLanguage" in message
    assert results[0].evidence == {"language_mode": "ConstrainedLanguage"}
    assert powershell.host_facts(answer.stdout) == clm


def test_a_payload_with_a_bom_loses_nothing() -> None:
    with_bom = b"\xef\xbb\xbf" + payload()
    script, manifest = powershell.split_payload(with_bom)
    assert script == powershell.runner_source() and manifest["checks"][1]["id"] == "spooler"
    answer = bootstrap_model(with_bom, {**FACTS, "language_mode": "ConstrainedLanguage"})
    assert len(parse_results(suite(), answer)) == 2


def test_a_payload_without_manifest_is_a_readable_error_not_xml() -> None:
    answer = bootstrap_model(powershell.runner_source().encode(), FACTS)
    assert answer.exit_code == 3
    assert stderr_summary(answer.stderr) == "lab bootstrap: no manifest on stdin (no line of four NUL characters)"
    results = parse_results(suite(), answer)
    assert results[0].message == ("the runner stopped (exit code 3) before this check reported: lab bootstrap: no "
                                  "manifest on stdin (no line of four NUL characters)")


def test_host_facts_are_none_without_a_facts_line() -> None:
    assert powershell.host_facts(b'{"id": "a", "status": "pass"}\n{"end": true}\n') is None
    assert powershell.host_facts(b"") is None
    partial = powershell.host_facts(b'\xef\xbb\xbf{"host": {"language_mode": "FullLanguage", "extra": 1}}\n')
    assert partial == {**dict.fromkeys(powershell.FACTS), "language_mode": "FullLanguage"}
