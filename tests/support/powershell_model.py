"""A Python model of the PowerShell bootstrap (``lab.checks.powershell.BOOTSTRAP_SCRIPT``), for tests.

``bootstrap_model`` follows the script's branches: the host facts line first, then a payload without
separator fails with exit 3 and a CLIXML error on stderr (as powershell.exe writes ``Write-Error`` to a
redirected stderr), ConstrainedLanguage reports every check as ``error`` with the policy message, and
FullLanguage hands over to runner.ps1 (modelled as a runner that reports nothing but its end line).

``powershell_stand_in`` writes a ``powershell.exe`` for the WinRM test endpoint's PATH that runs this model
on its stdin, so the lab's whole PowerShell path (transport, command line, framing, answer) can be driven
end to end; only the PowerShell interpreter itself is modelled. ``tests/unit/checks/test_bootstrap_model.py``
ties the model to the script's text.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from lab.checks import powershell
from lab.transports.base import CommandResult

FACTS = {"language_mode": "FullLanguage", "execution_policy": "Bypass", "machine_policy": "Undefined",
         "user_policy": "Undefined", "powershell": "5.1.20348.2849", "dotnet_release": 528449, "code_page": "65001"}
SEPARATOR = "\0\0\0\0"
NO_MANIFEST = "lab bootstrap: no manifest on stdin (no line of four NUL characters)"


def clixml_error(message: str) -> bytes:
    """What powershell.exe writes to a redirected stderr for ``Write-Error -Message message``."""
    return ('#< CLIXML\r\n<Objs Version="1.1.0.1" xmlns="http://schemas.microsoft.com/powershell/2004/04">'
            f'<S S="Error">{message}_x000D__x000A_</S><S S="Error">At line:1 char:1_x000D__x000A_</S>'
            '<S S="Error">+ Write-Error -Message x_x000D__x000A_</S></Objs>').encode()


def bootstrap_model(stdin: bytes, facts: dict[str, Any]) -> CommandResult:
    """The bootstrap's answer to ``stdin`` on a host with ``facts``."""
    lines = [line.removesuffix("\r") for line in stdin.decode("utf-8").split("\n")]
    lines[0] = lines[0].lstrip("\ufeff")  # TrimStart([char]0xFEFF)
    out = [json.dumps({powershell.HOST_FACTS_KEY: facts})]
    if SEPARATOR not in lines:
        return CommandResult(3, "\n".join(out).encode(), clixml_error(NO_MANIFEST), False, 1.0)
    manifest = json.loads("\n".join(lines[lines.index(SEPARATOR) + 1:]))
    if facts["language_mode"] != "FullLanguage":
        out += [json.dumps({"id": check["id"], "status": "error", "duration_ms": 0, "attempts": 0,
                            "message": powershell.CONSTRAINED_LANGUAGE_MESSAGE,
                            "evidence": {"language_mode": facts["language_mode"]}}) for check in manifest["checks"]]
    out.append(json.dumps({"end": True, "checks": len(manifest["checks"])}))
    return CommandResult(0, "\n".join(out).encode() + b"\n", b"", False, 1.0)


def powershell_stand_in(bin_dir: Path, facts: dict[str, Any]) -> Path:
    """A ``powershell.exe`` on ``bin_dir`` that checks it got the lab's bootstrap and answers as the model."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    stand_in = bin_dir / "powershell.exe"
    repo = Path(__file__).resolve().parents[2]
    stand_in.write_text(
        f"#!{sys.executable}\n"
        "import json, sys\n"
        f"sys.path.insert(0, {str(repo)!r})\n"
        "from lab.checks.powershell import POWERSHELL_ARGV\n"
        "from tests.support.powershell_model import bootstrap_model\n"
        "if tuple(['powershell.exe', *sys.argv[1:]]) != POWERSHELL_ARGV:\n"
        "    sys.exit('stand-in: not the lab bootstrap command line')\n"
        f"answer = bootstrap_model(sys.stdin.buffer.read(), json.loads({json.dumps(facts)!r}))\n"
        "sys.stdout.buffer.write(answer.stdout)\n"
        "sys.stderr.buffer.write(answer.stderr)\n"
        "sys.exit(answer.exit_code)\n"
    )
    stand_in.chmod(0o755)
    return stand_in
