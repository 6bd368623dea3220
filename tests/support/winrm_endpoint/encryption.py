"""NTLM/Negotiate message encryption of WinRM over HTTP ([MS-WSMV] 2.2.9.1.1).

A sealed message travels as ``multipart/encrypted`` with two MIME-like parts per
message: a header part naming the protocol and the plaintext length, and an
octet-stream part holding ``<signature length (LE int32)><signature><sealed data>``,
closed by ``--Encrypted Boundary--``. This is the framing pywinrm and pypsrp write.
"""

from __future__ import annotations

import re
import struct
from typing import Protocol

SPNEGO_PROTOCOL = "application/HTTP-SPNEGO-session-encrypted"
BOUNDARY = "Encrypted Boundary"
CONTENT_TYPE = f'multipart/encrypted;protocol="{SPNEGO_PROTOCOL}";boundary="{BOUNDARY}"'

_OCTET_HEADER = b"\tContent-Type: application/octet-stream\r\n"


class WinRMWrapper(Protocol):
    """The part of a pyspnego context used for WinRM sealing."""

    def wrap_winrm(self, data: bytes) -> tuple[bytes, bytes, int]: ...

    def unwrap_winrm(self, header: bytes, data: bytes) -> bytes: ...


class EncryptionError(ValueError):
    """The encrypted body is malformed, uses another protocol, or fails to unseal."""


def is_encrypted(content_type: str | None) -> bool:
    """True if the Content-Type announces a session-encrypted multipart body."""
    value = (content_type or "").lower()
    return value.startswith("multipart/encrypted") or value.startswith("multipart/x-multi-encrypted")


def _param(content_type: str, name: str) -> str | None:
    match = re.search(rf'{name}\s*=\s*"?([^";]+)"?', content_type, re.IGNORECASE)
    return match.group(1).strip() if match else None


def unwrap(body: bytes, content_type: str, context: WinRMWrapper) -> bytes:
    """Unseal a request body; the plaintext length must equal the announced ``Length``.

    Raises :class:`EncryptionError` for anything but SPNEGO (NTLM) session encryption,
    a malformed body, a bad signature or a length mismatch.
    """
    protocol = _param(content_type, "protocol")
    if protocol is None or protocol.lower() != SPNEGO_PROTOCOL.lower():
        raise EncryptionError(f"unsupported encryption protocol {protocol!r}")
    boundary = _param(content_type, "boundary") or BOUNDARY
    body = re.sub(rb"--\s*" + re.escape(boundary.encode()) + rb"--\r\n$", b"", body)
    parts = [p for p in re.split(rb"--\s*" + re.escape(boundary.encode()) + rb"\r\n", body) if p]
    if not parts or len(parts) % 2:
        raise EncryptionError("expected header/payload part pairs")
    plain = b""
    for header, payload in zip(parts[0::2], parts[1::2], strict=True):
        length = re.search(rb"Length=(\d+)", header)
        if length is None:
            raise EncryptionError("no OriginalContent Length in the header part")
        if not payload.startswith(_OCTET_HEADER) or len(payload) < len(_OCTET_HEADER) + 4:
            raise EncryptionError("payload part is not application/octet-stream")
        sealed = payload[len(_OCTET_HEADER) :]
        (sig_len,) = struct.unpack("<i", sealed[:4])
        signature, data = sealed[4 : 4 + sig_len], sealed[4 + sig_len :]
        try:
            message = context.unwrap_winrm(signature, data)
        except Exception as err:  # pyspnego raises several types for bad seals
            raise EncryptionError(f"cannot unseal: {err}") from err
        if len(message) != int(length.group(1)):
            raise EncryptionError(f"length {len(message)} != announced {int(length.group(1))}")
        plain += message
    return plain


def wrap(message: bytes, context: WinRMWrapper) -> bytes:
    """Seal a response body in the framing pywinrm/pypsrp parse (one part pair)."""
    header, data, padding = context.wrap_winrm(message)
    preamble = (
        f"--{BOUNDARY}\r\n"
        f"\tContent-Type: {SPNEGO_PROTOCOL}\r\n"
        f"\tOriginalContent: type=application/soap+xml;charset=UTF-8;Length={len(message) + padding}\r\n"
        f"--{BOUNDARY}\r\n"
    ).encode()
    sealed = struct.pack("<i", len(header)) + header + data
    return preamble + _OCTET_HEADER + sealed + f"--{BOUNDARY}--\r\n".encode()
