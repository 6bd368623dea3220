"""What a transport sends to run a manifest on a Windows sandbox: one command line and one stdin.

The command line is ``POWERSHELL_ARGV``: ``powershell.exe ... -EncodedCommand POWERSHELL_BOOTSTRAP``.
The bootstrap (``BOOTSTRAP_SCRIPT``, base64 of its UTF-16LE text) reads all of stdin line by line
through ``$input``, as Ansible's own bootstrap does over WinRM, and expects this framing, which
``powershell_payload`` builds:

    the text of runner.ps1 (ASCII)            <- dot-sourced as one script block
    a line of exactly four NUL characters     <- SEPARATOR
    the manifest as one line of ASCII JSON    <- passed to Invoke-LabManifest -Json

Everything on stdin is ASCII (the manifest's other characters are ``\\uXXXX`` escapes), so the
console code page of the sandbox cannot garble it; runner.ps1 answers in ASCII JSON lines too.

The bootstrap runs in any PowerShell language mode. Its first output line is the host's facts,
``{"host": {FACTS...}}`` (read back by ``host_facts``). In FullLanguage it then dot-sources
runner.ps1; in ConstrainedLanguage (WDAC/AppLocker enforcement) it reports every check of the
manifest as ``error`` with CONSTRAINED_LANGUAGE_MESSAGE instead. It exits 3 when stdin has no
separator or the runner does not parse (its message goes to stderr, as CLIXML: see
``lab.checks.clixml``); otherwise the exit code is the runner's (0 ran, 1 unusable manifest).
"""

from __future__ import annotations

import base64
import json
from functools import cache
from importlib import resources
from typing import Any

SEPARATOR = b"\0\0\0\0"
HOST_FACTS_KEY = "host"
FACTS = ("language_mode", "execution_policy", "machine_policy", "user_policy", "powershell", "dotnet_release",
         "code_page")

# What every check reports on a host whose PowerShell runs in ConstrainedLanguage (runner.ps1 needs .NET
# types and Add-Type, which that mode forbids). Single-quoted in the bootstrap: no ' inside.
CONSTRAINED_LANGUAGE_MESSAGE = (
    "PowerShell runs in ConstrainedLanguage mode on this host: an application control policy (WDAC, or AppLocker "
    "script rules in enforce mode) forbids the .NET calls runner.ps1 needs, so no check ran. The admin of the host "
    "must let the WinRM account of the lab run PowerShell in FullLanguage on this sandbox (exempt it from the "
    "WDAC/AppLocker policy, or allow runner.ps1 by a signed-script or hash rule); lab selftest shows the language mode."
)

# Runs in any language mode: cmdlets, operators and methods of strings only, no New-Object, no [Console],
# no Add-Type. It reports the host's facts first, then either dot-sources runner.ps1 (FullLanguage) or
# reports CONSTRAINED_LANGUAGE_MESSAGE for every check of the manifest. It must stay short: the encoded
# command travels on a cmd.exe command line (at most 8191 characters).
BOOTSTRAP_SCRIPT = """\
$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
$labLines = @($input | ForEach-Object { [string]$_ })
if ($labLines.Count -gt 0) { $labLines[0] = $labLines[0].TrimStart([char]0xFEFF) }
$labAt = -1
for ($labI = 0; $labI -lt $labLines.Count; $labI++) { if ($labLines[$labI] -ceq "`0`0`0`0") { $labAt = $labI; break } }
$labMode = [string]$ExecutionContext.SessionState.LanguageMode
$labNet = Get-ItemProperty -ErrorAction SilentlyContinue `
    -Path 'HKLM:\\SOFTWARE\\Microsoft\\NET Framework Setup\\NDP\\v4\\Full'
$labCp = ''
try { $labCp = [string](chcp.com) -replace '[^0-9]', '' } catch { $labCp = '' }
$labFacts = @{
    language_mode = $labMode; powershell = [string]$PSVersionTable.PSVersion; code_page = $labCp
    execution_policy = [string](Get-ExecutionPolicy)
    machine_policy = [string](Get-ExecutionPolicy -Scope MachinePolicy)
    user_policy = [string](Get-ExecutionPolicy -Scope UserPolicy)
    dotnet_release = $(if ($null -ne $labNet) { $labNet.Release } else { $null })
}
'{"host":' + (ConvertTo-Json -InputObject $labFacts -Compress) + '}'
if ($labAt -lt 0) {
    Write-Error -Message 'lab bootstrap: no manifest on stdin (no line of four NUL characters)' -ErrorAction Continue
    exit 3
}
$labJson = ($labLines | Select-Object -Skip ($labAt + 1)) -join "`n"
if ($labMode -ne 'FullLanguage') {
    $labChecks = @((ConvertFrom-Json -InputObject $labJson).checks)
    foreach ($labCheck in $labChecks) {
        ConvertTo-Json -Compress -InputObject @{ id = $labCheck.id; status = 'error'; duration_ms = 0; attempts = 0
            message = '@CONSTRAINED_LANGUAGE_MESSAGE@'; evidence = @{ language_mode = $labMode } }
    }
    '{"end":true,"checks":' + $labChecks.Count + '}'
    exit 0
}
try {
    $labRunner = [ScriptBlock]::Create((($labLines | Select-Object -First $labAt) -join "`n"))
}
catch {
    Write-Error -Message ('lab bootstrap: runner.ps1 does not parse: ' + $_.Exception.Message) -ErrorAction Continue
    exit 3
}
. $labRunner
Stop-LabRunner -ExitCode (Invoke-LabManifest -Json $labJson)
""".replace("@CONSTRAINED_LANGUAGE_MESSAGE@", CONSTRAINED_LANGUAGE_MESSAGE)

POWERSHELL_BOOTSTRAP = base64.b64encode(BOOTSTRAP_SCRIPT.encode("utf-16-le")).decode("ascii")

POWERSHELL_ARGV: tuple[str, ...] = (
    "powershell.exe", "-NoLogo", "-NoProfile", "-NonInteractive", "-ExecutionPolicy", "Bypass",
    "-EncodedCommand", POWERSHELL_BOOTSTRAP,
)


@cache
def runner_source() -> str:
    """The text of runner.ps1 as shipped in the package; ValueError if it could not be framed."""
    text = resources.files("lab.checks").joinpath("runner.ps1").read_text(encoding="utf-8")
    if not text.isascii() or "\0" in text:
        raise ValueError("runner.ps1 must be ASCII without NUL characters to travel through the bootstrap")
    return text


def manifest_line(manifest: dict[str, Any]) -> bytes:
    """The manifest as one line of ASCII JSON (no newline inside: strings escape theirs)."""
    text = json.dumps(manifest, ensure_ascii=True, separators=(",", ":"), allow_nan=False)
    return text.encode("ascii")


def powershell_payload(manifest: dict[str, Any]) -> bytes:
    """The stdin for ``POWERSHELL_ARGV``: runner.ps1, the separator line, then the manifest line.

    The result is ASCII; the bootstrap gives runner.ps1 exactly the manifest passed here.
    """
    script = runner_source()
    if not script.endswith("\n"):
        script += "\n"
    return script.encode("ascii") + SEPARATOR + b"\n" + manifest_line(manifest) + b"\n"


def split_payload(payload: bytes) -> tuple[str, dict[str, Any]]:
    """What the bootstrap takes from ``payload``: the script text and the manifest.

    Mirrors the bootstrap's line reading (LF or CRLF line ends; a BOM before the first line, which a
    console at code page 65001 may add, is dropped); ValueError without a separator.
    """
    lines = payload.decode("utf-8").removeprefix("\ufeff").split("\n")
    lines = [line[:-1] if line.endswith("\r") else line for line in lines]
    separator = SEPARATOR.decode("ascii")
    if separator not in lines:
        raise ValueError("no separator line of four NUL characters in the payload")
    index = lines.index(separator)
    script = "".join(line + "\n" for line in lines[:index])
    manifest = json.loads("\n".join(lines[index + 1:]))
    if not isinstance(manifest, dict):
        raise ValueError("the manifest after the separator is not a JSON object")
    return script, manifest


def host_facts(stdout: bytes) -> dict[str, Any] | None:
    """The host facts the bootstrap printed first (language mode, execution policies, PowerShell and .NET
    versions, code page); None when the output has no such line (another runner, or no bootstrap ran)."""
    for raw in stdout.removeprefix(b"\xef\xbb\xbf").splitlines():
        try:
            line = json.loads(raw)
        except ValueError:
            continue
        if isinstance(line, dict) and isinstance(line.get(HOST_FACTS_KEY), dict):
            return {name: line[HOST_FACTS_KEY].get(name) for name in FACTS}
    return None
