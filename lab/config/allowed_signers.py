"""Which approver keys decide: the agreement's ``allowed_signers`` file, or one given explicitly.

An override (``lab --allowed-signers FILE`` or ``$LAB_ALLOWED_SIGNERS``) serves trials and
demos with throwaway keys without editing the agreement. It is never silent: every recorded
decision and evidence bundle says which file verified the signatures, its sha256 and whether
it was an override, and ``lab gate``/``lab promote`` print it.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import re
import struct
from pathlib import Path
from typing import Any

from lab.errors import ConfigError
from lab.model import Agreement
from lab.util.canonical import sha256_hex
from lab.util.yamlfile import DEFAULT_LIMITS, decode, read_capped

KEY_TYPES = frozenset({
    "ssh-ed25519", "ssh-rsa", "ssh-dss", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com",
})
# options before the key type: name or name="quoted value" (ssh-keygen(1), ALLOWED SIGNERS)
OPTION = re.compile(r'^[A-Za-z-]+(="[^"]*")?(,[A-Za-z-]+(="[^"]*")?)*$')


def read_signers(path: Path) -> int:
    """How many keys the ALLOWED SIGNERS file at ``path`` lists; ConfigError naming the file, the line
    and what is wrong for the first line ssh-keygen would not take as a key (principals, optional
    options, a key type and its base64 key that decodes to that type)."""
    text = decode(read_capped(path, DEFAULT_LIMITS.max_bytes, "allowed_signers file"), path)
    count = 0
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        problem = signer_line_problem(fields)
        if problem is not None:
            raise ConfigError(f"not an ALLOWED SIGNERS line: {problem}; write 'principal key-type base64-key' "
                              "(the key type and key as in the approver's .pub file)", source=str(path), line=number)
        count += 1
    return count


def signer_line_problem(fields: list[str]) -> str | None:
    """What is wrong with one non-comment line split on whitespace; None when it is a key."""
    at = next((i for i, f in enumerate(fields) if f in KEY_TYPES), None)
    if at is None:
        return f"no known key type ({', '.join(sorted(KEY_TYPES))})"
    if at == 0:
        return "no principal before the key type"
    if any(not OPTION.match(f) for f in fields[1:at]):
        return f"{' '.join(fields[1:at])!r} is neither a key type nor options (namespaces=\"file\", valid-after=...)"
    if at + 1 >= len(fields):
        return f"the {fields[at]} key itself is missing"
    try:
        blob = base64.b64decode(fields[at + 1], validate=True)
        (size,) = struct.unpack(">I", blob[:4])
        inner = blob[4:4 + size].decode("ascii")
    except (binascii.Error, struct.error, UnicodeDecodeError, ValueError):
        return "the key is not valid base64 of an SSH public key"
    if inner != fields[at]:
        return f"the key is a {inner!r} key, not {fields[at]!r}"
    return None


def override_signers(agreement: Agreement, path: Path) -> Agreement:
    """``agreement`` with ``path`` as its allowed_signers file, marked as an override.

    ConfigError (naming the value) when ``path`` is not a readable file: an override that
    cannot verify anything is a mistake, not a way to close the gates.
    """
    resolved = path.expanduser().resolve()
    if not resolved.is_file():
        raise ConfigError(f"--allowed-signers / $LAB_ALLOWED_SIGNERS names {str(path)!r}, which is not a file; "
                          "give an ssh-keygen ALLOWED SIGNERS file or leave it unset to use the agreement's")
    read_signers(resolved)
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
