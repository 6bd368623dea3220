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
The bootstrap exits 3 when stdin has no separator or the runner does not parse; otherwise the
exit code is the runner's (0 ran, 1 unusable manifest).
"""

from __future__ import annotations

import base64
import json
from functools import cache
from importlib import resources
from typing import Any

SEPARATOR = b"\0\0\0\0"

BOOTSTRAP_SCRIPT = """\
$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
$labCode = New-Object System.Text.StringBuilder
$labData = New-Object System.Text.StringBuilder
$labSeen = $false
foreach ($labLine in $input) {
    if ($labSeen) {
        [void]$labData.Append([string]$labLine).Append("`n")
    }
    elseif ([string]::Equals([string]$labLine, "`0`0`0`0")) {
        $labSeen = $true
    }
    else {
        [void]$labCode.Append([string]$labLine).Append("`n")
    }
}
if (-not $labSeen) {
    [Console]::Error.WriteLine('lab bootstrap: no manifest on stdin (no line of four NUL characters)')
    exit 3
}
try {
    $labRunner = [ScriptBlock]::Create($labCode.ToString())
}
catch {
    [Console]::Error.WriteLine('lab bootstrap: runner.ps1 does not parse: ' + $_.Exception.Message)
    exit 3
}
. $labRunner
Stop-LabRunner -ExitCode (Invoke-LabManifest -Json $labData.ToString())
"""

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

    Mirrors the bootstrap's line reading (LF or CRLF line ends); ValueError without a separator.
    """
    lines = payload.decode("ascii").split("\n")
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
