"""Which approver keys decide: the agreement's ``allowed_signers`` file, or one given explicitly.

An override (``lab --allowed-signers FILE`` or ``$LAB_ALLOWED_SIGNERS``) serves trials and
demos with throwaway keys without editing the agreement. It is never silent: every recorded
decision and evidence bundle says which file verified the signatures, its sha256 and whether
it was an override, and ``lab gate``/``lab promote`` print it.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from lab.errors import ConfigError
from lab.model import Agreement
from lab.util.canonical import sha256_hex


def override_signers(agreement: Agreement, path: Path) -> Agreement:
    """``agreement`` with ``path`` as its allowed_signers file, marked as an override.

    ConfigError (naming the value) when ``path`` is not a readable file: an override that
    cannot verify anything is a mistake, not a way to close the gates.
    """
    resolved = path.expanduser().resolve()
    if not resolved.is_file():
        raise ConfigError(f"--allowed-signers / $LAB_ALLOWED_SIGNERS names {str(path)!r}, which is not a file; "
                          "give an ssh-keygen ALLOWED SIGNERS file or leave it unset to use the agreement's")
    return dataclasses.replace(agreement, allowed_signers=resolved, signers_override=True)


def signers_source(agreement: Agreement) -> dict[str, Any]:
    """Where signatures are verified, for decisions and bundles: the file, its sha256 (None when
    missing) and ``override`` (true when it is not the agreement's own)."""
    path = agreement.allowed_signers
    digest = sha256_hex(path.read_bytes()) if path is not None and path.is_file() else None
    return {"file": str(path) if path is not None else None, "sha256": digest,
            "override": agreement.signers_override}


def describe(agreement: Agreement) -> str | None:
    """One line for the terminal when an override is in effect; None when the agreement's file is used."""
    if not agreement.signers_override:
        return None
    return (f"approver keys: {agreement.allowed_signers} (--allowed-signers / $LAB_ALLOWED_SIGNERS override; "
            f"not the agreement's file)")
