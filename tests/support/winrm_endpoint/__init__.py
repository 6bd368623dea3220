"""A protocol-faithful WinRM (WS-Management) endpoint for tests: the Windows Remote Shell
resource over HTTP/HTTPS with NTLM/Negotiate (and message encryption) or Basic auth, whose
commands run as real ``/bin/sh`` processes on this machine.

Test support code only; it is not part of the shipped ``lab`` package.
"""

from .compare import compare_envelopes
from .counters import Counters
from .server import WinRMEndpoint

__all__ = ["Counters", "WinRMEndpoint", "compare_envelopes"]
