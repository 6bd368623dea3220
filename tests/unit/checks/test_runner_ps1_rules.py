"""Static rules over runner.ps1's and the bootstrap's syntax trees, one per defect a Windows review found
(issue 13). No PowerShell runs here: each rule reads the tree-sitter parse, and each is shown to fire on a
seeded copy of the defect (the code as it was before the fix, or a minimal stand-in for it).

- ConstrainedLanguage: the bootstrap uses no .NET construction, no [Console], no Add-Type, and reaches
  [ScriptBlock]::Create and the runner only after its language-mode check; in runner.ps1 every Add-Type is
  behind Assert-LabFullLanguage, nothing .NET runs at the top level, and Invoke-LabManifest checks the
  language mode first.
- per-check isolation: a check's work and its JSON serialization happen inside the per-check try.
- stdin: [Console]::InputEncoding is set to UTF-8 without BOM, and children's stdin is written as bytes.
- every process the runner starts has its streams redirected (ProcessStartInfo and Start-Process).
- launch, version, service, http, file, command, package, eventlog and pester: the fix is in place.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
import tree_sitter

from lab.checks import powershell
from tests.unit.checks.test_runner_ps1 import RUNNER, functions, parse, syntax_problems, text, walk, where

FULL_LANGUAGE_GUARD = "Assert-LabFullLanguage"
DOTNET_CONSTRUCTION = re.compile(r"\bNew-Object\b|\bAdd-Type\b|::new\(|\[Console\]", re.IGNORECASE)


@pytest.fixture(scope="module")
def source() -> str:
    return RUNNER.read_text(encoding="utf-8")


def commands(node: tree_sitter.Node, name: str) -> Iterator[tree_sitter.Node]:
    """The command nodes under ``node`` that call ``name`` (case-insensitive, as PowerShell)."""
    for found in walk(node):
        if found.type == "command" and found.children and found.children[0].type == "command_name" \
                and text(found.children[0]).lower() == name.lower():
            yield found


def enclosing(node: tree_sitter.Node, kind: str) -> tree_sitter.Node | None:
    parent = node.parent
    while parent is not None and parent.type != kind:
        parent = parent.parent
    return parent


def function_name(function: tree_sitter.Node) -> str:
    return text(next(c for c in function.children if c.type == "function_name"))


def in_try_block(node: tree_sitter.Node, within: tree_sitter.Node) -> bool:
    """True when ``node`` lies in the try block or a catch clause of a try statement inside ``within``."""
    parent = node.parent
    while parent is not None and parent != within:
        if parent.type == "try_statement":
            return True
        parent = parent.parent
    return False


# --- ConstrainedLanguage -------------------------------------------------------------------------------

def unguarded_add_type(source: str) -> list[str]:
    """Add-Type calls not preceded, in their function, by the FullLanguage guard."""
    found = []
    for call in commands(parse(source).root_node, "Add-Type"):
        function = enclosing(call, "function_statement")
        if function is None:
            found.append(f"Add-Type at the top level at {where(source, call)}")
            continue
        before = source.encode()[function.start_byte:call.start_byte].decode()
        if FULL_LANGUAGE_GUARD not in before:
            name = function_name(function)
            found.append(f"Add-Type without {FULL_LANGUAGE_GUARD} in {name} at {where(source, call)}")
    return found


def top_level_dotnet(source: str) -> list[str]:
    """.NET construction in statements outside any function (they run as the runner is dot-sourced)."""
    root = parse(source).root_node
    statements = next(c for c in root.children if c.type == "statement_list")
    return [f"{DOTNET_CONSTRUCTION.search(text(s)).group(0)} at the top level at {where(source, s)}"  # type: ignore[union-attr]
            for s in statements.children if s.type != "function_statement" and DOTNET_CONSTRUCTION.search(text(s))]


def manifest_guard_problems(source: str) -> list[str]:
    """Invoke-LabManifest must check the language mode before anything else it does."""
    body = text(functions(source)["Invoke-LabManifest"])
    guard = body.find("Test-LabFullLanguage")
    first_work = min(body.find(word) for word in ("Initialize-LabConsole", "ConvertFrom-Json", "[Console]::Error"))
    return [] if 0 <= guard < first_work else ["Invoke-LabManifest does not check the language mode first"]


def test_add_type_only_behind_the_full_language_guard(source: str) -> None:
    assert unguarded_add_type(source) == []
    assert top_level_dotnet(source) == []
    assert manifest_guard_problems(source) == []
    # the guarded ones are the ones expected: compiled C# types (TLS policies, the job object), ServiceController
    guarded = {function_name(enclosing(c, "function_statement")) for c in commands(parse(source).root_node, "Add-Type")}  # type: ignore[arg-type]
    assert guarded == {"Import-LabType", "Test-LabService"}


def test_seeded_unguarded_dotnet_is_reported(source: str) -> None:
    params = "    param([string] $Name, [string] $Source)\n"
    unguarded = source.replace(params + "    Assert-LabFullLanguage\n", params)
    assert unguarded != source
    found = unguarded_add_type(unguarded)
    assert len(found) == 1
    assert found[0].startswith("Add-Type without Assert-LabFullLanguage in Import-LabType at line ")
    top = source.replace("$LabFormat = 1\n", "$LabFormat = 1\n$labText = New-Object System.Text.StringBuilder\n")
    assert [p.split(" at line ")[0] for p in top_level_dotnet(top)] == ["New-Object at the top level"]
    guard = "    if (-not (Test-LabFullLanguage)) {\n        Write-Error -Message ('lab runner: PowerShell runs in"
    late = source.replace(guard, "    Initialize-LabConsole\n" + guard)
    assert manifest_guard_problems(late) == ["Invoke-LabManifest does not check the language mode first"]


ALLOWED_BOOTSTRAP_TYPES = {"[string]", "[char]", "[ScriptBlock]"}


def bootstrap_problems(script: str) -> list[str]:
    """What would fail in ConstrainedLanguage, or reach the runner before the language-mode check."""
    problems = []
    root = parse(script).root_node
    for name in ("New-Object", "Add-Type"):
        problems += [f"{name} at {where(script, c)}" for c in commands(root, name)]
    for node in walk(root):
        if node.type == "type_literal" and text(node).strip() not in ALLOWED_BOOTSTRAP_TYPES:
            problems.append(f"type {text(node).strip()} at {where(script, node)}")
    guard = next((n for n in walk(root) if n.type == "if_statement" and "$labMode -ne 'FullLanguage'" in text(n)), None)
    if guard is None:
        return [*problems, "no language-mode check"]
    if not text(guard).rstrip().rstrip("}").rstrip().endswith("exit 0"):
        problems.append("the ConstrainedLanguage branch does not end the bootstrap")
    for marker in ("[ScriptBlock]::Create", ". $labRunner", "Invoke-LabManifest"):
        at = script.find(marker)
        if 0 <= at < guard.end_byte:
            problems.append(f"{marker} before the language-mode check")
    return problems


def test_the_bootstrap_runs_in_constrained_language() -> None:
    script = powershell.BOOTSTRAP_SCRIPT
    assert syntax_problems(script) == []
    assert bootstrap_problems(script) == []
    assert powershell.CONSTRAINED_LANGUAGE_MESSAGE in script
    assert "'" not in powershell.CONSTRAINED_LANGUAGE_MESSAGE  # it sits between single quotes in the script


def test_the_old_bootstrap_is_reported() -> None:
    old = ("$labCode = New-Object System.Text.StringBuilder\n"
           "if (-not $labSeen) {\n    [Console]::Error.WriteLine('no manifest')\n    exit 3\n}\n"
           "$labRunner = [ScriptBlock]::Create($labCode.ToString())\n. $labRunner\n")
    assert bootstrap_problems(old) == [
        "New-Object at line 1, column 12: $labCode = New-Object System.Text.StringBuilder",
        "type [Console] at line 3, column 5: [Console]::Error.WriteLine('no manifest')",
        "no language-mode check",
    ]
    late = powershell.BOOTSTRAP_SCRIPT.replace(". $labRunner\n", "") .replace(
        "$labJson = ($labLines", ". ([ScriptBlock]::Create('x'))\n$labJson = ($labLines")
    assert "[ScriptBlock]::Create before the language-mode check" in bootstrap_problems(late)


# --- per-check isolation -------------------------------------------------------------------------------

def outside_per_check_try(source: str) -> list[str]:
    """Calls that run a check or serialize its lines outside Get-LabCheckText or the per-check try."""
    found = []
    manifest = functions(source)["Invoke-LabManifest"]
    loop = next(n for n in walk(manifest) if n.type == "foreach_statement" and "$check in $checks" in text(n))
    for name in ("Invoke-LabCheck", "ConvertTo-LabJsonLine", "Get-LabCheckText"):
        for call in commands(parse(source).root_node, name):
            function = enclosing(call, "function_statement")
            owner = function_name(function) if function is not None else "(top level)"
            if owner == "Get-LabCheckText" and name != "Get-LabCheckText":
                continue
            if owner == "Invoke-LabManifest" and (in_try_block(call, loop) or "end = $true" in text(call)):
                continue
            found.append(f"{name} in {owner} outside the per-check try at {where(source, call)}")
    return found


def test_every_check_and_its_serialization_are_inside_the_per_check_try(source: str) -> None:
    assert outside_per_check_try(source) == []
    body = text(functions(source)["Get-LabCheckText"])
    assert body.index("Invoke-LabCheck") < body.index("ConvertTo-LabJsonLine")  # serialized before anything is written
    assert "Write-LabLine" not in source


def test_seeded_serialization_outside_the_try_is_reported(source: str) -> None:
    seeded = source.replace("            Write-LabText -Writer $Writer -Text $text\n",
                            "            Write-LabText -Writer $Writer -Text (ConvertTo-LabJsonLine -Value $check)\n")
    assert seeded != source
    found = outside_per_check_try(seeded)
    assert len(found) == 1
    assert found[0].startswith("ConvertTo-LabJsonLine in Invoke-LabManifest outside the per-check try")


# --- stdin encoding ------------------------------------------------------------------------------------

def stdin_problems(source: str) -> list[str]:
    problems = []
    console = re.sub(r"\s+", " ", text(functions(source)["Initialize-LabConsole"]))
    if "[Console]::InputEncoding = New-Object System.Text.UTF8Encoding($false)" not in console:
        problems.append("Initialize-LabConsole does not set InputEncoding to UTF-8 without BOM")
    if "Initialize-LabConsole" not in text(functions(source)["Invoke-LabManifest"]):
        problems.append("Invoke-LabManifest does not call Initialize-LabConsole")
    for match in re.finditer(r"StandardInput\.(Write|WriteLine|Close|Flush)\(", source):
        problems.append(f"stdin through the StandardInput writer (its encoding adds a BOM) at offset {match.start()}")
    writer = text(functions(source)["Write-LabStdin"])
    if ".BaseStream" not in writer or ".GetBytes(" not in writer:
        problems.append("Write-LabStdin does not write bytes to the pipe")
    return problems


def test_children_get_stdin_as_utf8_bytes_without_bom(source: str) -> None:
    assert stdin_problems(source) == []
    assert "Write-LabStdin" in text(functions(source)["Invoke-LabProcess"])


def test_the_old_stdin_writing_is_reported(source: str) -> None:
    old = source.replace("    Write-LabStdin -Process $process -Text $Stdin -Encoding $decoder\n",
                         "    $process.StandardInput.Write($Stdin)\n    $process.StandardInput.Close()\n")
    old = old.replace("        [Console]::InputEncoding = New-Object System.Text.UTF8Encoding($false)\n", "")
    problems = stdin_problems(old)
    assert problems[0] == "Initialize-LabConsole does not set InputEncoding to UTF-8 without BOM"
    assert [p.split(" at offset")[0] for p in problems[1:]] == [
        "stdin through the StandardInput writer (its encoding adds a BOM)"] * 2


# --- redirected streams --------------------------------------------------------------------------------

REDIRECTS = ("RedirectStandardInput", "RedirectStandardOutput", "RedirectStandardError")


def redirection_problems(source: str) -> list[str]:
    problems = []
    for name, function in functions(source).items():
        body = re.sub(r"\s+", " ", text(function))
        if "New-Object System.Diagnostics.ProcessStartInfo" in body:
            missing = [r for r in REDIRECTS if f".{r} = $true" not in body]
            if ".UseShellExecute = $false" not in body:
                missing.append("UseShellExecute = $false")
            if missing:
                problems.append(f"{name} starts a process without {', '.join(missing)}")
        for call in commands(function, "Start-Process"):
            arguments = text(call).lower()
            if "-redirectstandardoutput" not in arguments or "-redirectstandarderror" not in arguments:
                problems.append(f"Start-Process without redirection in {name} at {where(source, call)}")
    return problems


def test_every_process_the_runner_starts_has_its_streams_redirected(source: str) -> None:
    assert redirection_problems(source) == []
    starting = {n for n, f in functions(source).items() if "System.Diagnostics.ProcessStartInfo" in text(f)}
    assert starting == {"Stop-LabProcessTree", "Invoke-LabProcess", "Test-LabLaunch"}


def test_seeded_unredirected_starts_are_reported(source: str) -> None:
    redirects = ("    $info.RedirectStandardInput = $true\n    $info.RedirectStandardOutput = $true\n"
                 "    $info.RedirectStandardError = $true\n")
    evidence = "    $evidence = [ordered]@{ command = $command; argv = $argv; program = $program"
    old_launch = source.replace(redirects + evidence, evidence)
    assert old_launch != source
    assert redirection_problems(old_launch) == [
        "Test-LabLaunch starts a process without RedirectStandardInput, RedirectStandardOutput, RedirectStandardError"]
    anchor = "    $jobType = Initialize-LabJob\n"
    started = source.replace(anchor, anchor + "    Start-Process notepad.exe\n")
    found = redirection_problems(started)
    assert len(found) == 1 and found[0].startswith("Start-Process without redirection in Test-LabLaunch at line ")


# --- the check types -----------------------------------------------------------------------------------

def body(source: str, name: str) -> str:
    return text(functions(source)[name])


def test_launch_holds_its_whole_process_tree_in_a_job_object(source: str) -> None:
    launch = body(source, "Test-LabLaunch")
    assert "Initialize-LabJob" in launch and "$job.Add($process.Handle)" in launch
    assert re.search(r"finally \{\s+\$job\.Kill\(\)", launch)  # the whole tree dies, whatever happened
    assert "$job.ActiveProcesses" in launch and "Get-LabTreeWorkingSet -Job $job" in launch
    assert "session_id" in launch and "no interactive desktop" in launch
    job = body(source, "Initialize-LabJob")
    for needed in ("AssignProcessToJobObject", "TerminateJobObject", "KillOnJobClose = 0x2000", "PeakJobMemoryUsed",
                   "BasicProcessIdList = 3"):
        assert needed in job, needed


def test_version_reads_the_installed_products_own_version(source: str) -> None:
    version = body(source, "Test-LabVersion")
    assert "Read-LabDeployRecord" in version and "Get-LabUninstallEntries" in version
    assert "$version = $entry['version']" in version
    assert not re.search(r"\$version = .*\$record\[", version)  # the recorded version is evidence, never the answer
    assert "$evidence['recorded_version'] = $record['version']" in version


@pytest.mark.parametrize(
    ("function", "fragments"),
    [
        ("Test-LabService", ["GetDevices()", "GetServices()"]),
        ("Set-LabHeader", ["'connection'", "'content-length'", "'date'", "'expect'", "'if-modified-since'",
                           "'range'", "'transfer-encoding'"]),
        ("Test-LabHttp", ["$request.Proxy = $null"]),
        ("Read-LabResponseBody", ["Get-LabResponseEncoding"]),
        ("Test-LabFile", ["ConvertTo-LabLongPath", "Read-LabText"]),
        ("Read-LabText", ["New-Object System.Text.UTF8Encoding($false, $true)", "ANSICodePage"]),
        ("Invoke-LabProcess", ["Resolve-LabProgram", "ConvertTo-LabExitCode"]),
        ("Resolve-LabProgram", ["Get-Command -Name $Name -CommandType Application"]),
        ("Test-LabCommand", ["ConvertTo-LabExitCode (Get-LabParam $Params 'exit_code' 0)"]),
        ("Get-LabUninstallEntries", ["Get-LabUserHives", "'Users'"]),
        ("Test-LabEventLog", ["if ($since -eq 'deploy')", "Get-LabDeployTime"]),
        ("Test-LabPester", ["Get-LabScriptPolicyProblem"]),
        ("Get-LabScriptPolicyProblem", ["Get-ExecutionPolicy -Scope $candidate", "Get-AuthenticodeSignature",
                                        "'MachinePolicy', 'UserPolicy'"]),
    ],
)
def test_each_smaller_fix_is_in_place(source: str, function: str, fragments: list[str]) -> None:
    found = body(source, function)
    assert [f for f in fragments if f not in found] == []


def test_no_handler_reads_text_as_utf8_only_or_the_winrm_users_hive(source: str) -> None:
    assert "ReadAllText" not in body(source, "Test-LabFile")
    assert "CurrentUser" not in body(source, "Get-LabUninstallEntries")
    assert "[int](Get-LabParam $Params 'exit_code'" not in source


def test_pester_policy_is_checked_before_pester_is_loaded(source: str) -> None:
    pester = body(source, "Test-LabPester")
    assert pester.index("Get-LabScriptPolicyProblem") < pester.index("Import-Module")
