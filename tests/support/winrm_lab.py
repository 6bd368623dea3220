"""Helpers for the tests of the WinRM transport and of static WinRM sandboxes against the test endpoint.

The endpoint runs commands with ``/bin/sh``, so its hosts use ``lab_runner: python``. Ansible
wraps every command it sends over WinRM as ``PowerShell ... -EncodedCommand <UTF-16LE base64>``;
a PowerShell stand-in put on the endpoint's PATH decodes that and runs it with ``/bin/sh``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from winrm.protocol import Protocol

from tests.support.winrm_endpoint import WinRMEndpoint

USER = "lab-verify"
# Distinctive, so a search of everything the lab wrote cannot miss it or find it by accident.
PASSWORD = "Wr5-9xQ!pass word-7d1e0c"


def powershell_shim(bin_dir: Path) -> Path:
    """A ``PowerShell`` on ``bin_dir`` that runs ``-EncodedCommand`` scripts with /bin/sh."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    shim = bin_dir / "PowerShell"
    shim.write_text(
        f"#!{sys.executable}\n"
        "import base64, os, sys\n"
        "args = sys.argv[1:]\n"
        "script = base64.b64decode(args[args.index('-EncodedCommand') + 1]).decode('utf-16-le')\n"
        "os.execv('/bin/sh', ['/bin/sh', '-c', script])\n"
    )
    shim.chmod(0o755)
    return shim


def ansible_ready_env(bin_dir: Path) -> dict[str, str]:
    """The ``env`` for a WinRMEndpoint that Ansible's ``raw`` module can use."""
    powershell_shim(bin_dir)
    return {"PATH": f"{bin_dir}:{os.environ['PATH']}"}


def host_vars(ep: WinRMEndpoint, **overrides: Any) -> dict[str, Any]:
    """Inventory variables of a host served by ``ep``: NTLM over HTTP, or HTTPS validated against its CA."""
    variables: dict[str, Any] = {
        "ansible_connection": "winrm",
        "ansible_host": "127.0.0.1",
        "ansible_port": ep.port,
        "ansible_user": USER,
        "ansible_password": PASSWORD,
        "ansible_winrm_scheme": ep.scheme,
        "ansible_winrm_transport": "ntlm",
        "ansible_python_interpreter": sys.executable,
        "lab_runner": "python",
    }
    if ep.https:
        variables["ansible_winrm_ca_trust_path"] = str(ep.ca_path)
    variables.update(overrides)
    return {k: v for k, v in variables.items() if v is not None}


def raw_protocol(ep: WinRMEndpoint) -> Protocol:
    """A plain pywinrm client of ``ep`` (another user of the host), every TLS choice explicit."""
    return Protocol(ep.url, transport="ntlm", username=USER, password=PASSWORD, server_cert_validation="ignore",
                    ca_trust_path=None, proxy=None)  # type: ignore[arg-type]
