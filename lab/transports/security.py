"""What a report must say about how lab reached a host: the transports' promise to the reports.

Reports show these sentences as they are and read no transport setting themselves.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lab.transports.winrm.settings import cert_validation


def security_notes(host: str, variables: Mapping[str, Any]) -> list[str]:
    """The sentences a report must show about ``host`` because its connection settings weaken
    security (today: WinRM's TLS certificate validation turned off)."""
    if cert_validation(variables) == "ignore":
        return [f"TLS certificate validation was turned OFF for {host} (ansible_winrm_server_cert_validation: ignore)"]
    return []
