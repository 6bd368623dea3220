"""HTTP authentication of a WinRM listener: NTLM and Negotiate (pyspnego acceptor) and Basic.

NTLM and Negotiate authenticate the TCP connection (a handshake of 401 round trips,
then every request on that connection is the user's); Basic authenticates each request
and, like on a Windows host with ``AllowUnencrypted=false``, only over HTTPS.

pyspnego's NTLM acceptor reads the accepted credentials from the file named by the
``NTLM_USER_FILE`` environment variable (``DOMAIN:USER:PASSWORD`` lines). Because the
variable is process-wide, every acceptor step runs under :data:`_ENV_LOCK` with the
variable pointing at its own endpoint's file.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import os
import struct
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import spnego
from spnego.channel_bindings import GssChannelBindings
from spnego.exceptions import SpnegoError

_ENV_LOCK = threading.RLock()
_AV_CHANNEL_BINDINGS = 0x000A

CbtPolicy = Literal["relaxed", "strict", "none"]


@contextlib.contextmanager
def ntlm_user_file(path: Path) -> Iterator[None]:
    """Point ``NTLM_USER_FILE`` at ``path`` for the duration, serialised process-wide."""
    with _ENV_LOCK:
        previous = os.environ.get("NTLM_USER_FILE")
        os.environ["NTLM_USER_FILE"] = str(path)
        try:
            yield
        finally:
            if previous is None:
                os.environ.pop("NTLM_USER_FILE", None)
            else:
                os.environ["NTLM_USER_FILE"] = previous


def environment_snapshot() -> dict[str, str]:
    """A copy of ``os.environ`` taken without racing an acceptor that is editing it."""
    with _ENV_LOCK:
        env = dict(os.environ)
    env.pop("NTLM_USER_FILE", None)
    return env


def _split_user(name: str) -> tuple[str, str]:
    domain, _, user = name.rpartition("\\")
    return domain, user


class UserStore:
    """The accounts an endpoint accepts, written as a pyspnego NTLM credential file.

    Keys are ``user`` or ``DOMAIN\\user``; NTLM requires the client's domain to match
    (empty for plain ``user``), Basic compares case-insensitively like Windows.
    """

    def __init__(self, users: Mapping[str, str], directory: Path) -> None:
        self._users = {name.upper(): (name, password) for name, password in users.items()}
        self.path = directory / "ntlm-users"
        lines = []
        for name, password in users.items():
            domain, user = _split_user(name)
            lines.append(f"{domain}:{user}:{password}")
        self.path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        self.path.chmod(0o600)

    def check_basic(self, username: str, password: str) -> str | None:
        """The canonical account name if ``username``/``password`` match, else None."""
        entry = self._users.get(username.upper())
        if entry is None or entry[1] != password:
            return None
        return entry[0]


def ntlm_channel_bindings_sent(token: bytes) -> bool:
    """True if an NTLM AUTHENTICATE message (raw or inside SPNEGO) carries MsvAvChannelBindings."""
    start = token.find(b"NTLMSSP\x00")
    msg = token[start:] if start >= 0 else b""
    if len(msg) < 28 or struct.unpack_from("<I", msg, 8)[0] != 3:
        return False
    nt_len, _max, nt_offset = struct.unpack_from("<HHI", msg, 20)
    nt = msg[nt_offset : nt_offset + nt_len]
    pos = 16 + 28  # NTProofStr, then the NTLMv2 client challenge header
    while len(nt) > 24 and pos + 4 <= len(nt):
        av_id, av_len = struct.unpack_from("<HH", nt, pos)
        if av_id == 0:
            break
        if av_id == _AV_CHANNEL_BINDINGS:
            return True
        pos += 4 + av_len
    return False


@dataclass(frozen=True)
class AuthResult:
    """Outcome of one request's authentication.

    ``status`` is ``ok`` (serve it, as ``user``), ``continue`` (answer 401 carrying
    ``header``, the handshake goes on) or ``denied`` (answer 401 offering the schemes).
    ``header`` on ``ok`` is a final Negotiate token to return with the response.
    """

    status: Literal["ok", "continue", "denied"]
    user: str | None = None
    header: str | None = None


class ConnectionAuth:
    """Authentication state of one TCP connection.

    ``on_logon`` is called with ``ntlm`` (a raw NTLM handshake, under either scheme),
    ``spnego`` (NTLM wrapped in SPNEGO) or ``basic`` each time a logon succeeds.
    """

    def __init__(
        self,
        store: UserStore,
        *,
        allow_basic: bool,
        offered: Sequence[str],
        channel_bindings: GssChannelBindings | None,
        cbt_policy: CbtPolicy,
        on_logon: Callable[[str], None] = lambda kind: None,
    ) -> None:
        self._store = store
        self._allow_basic = allow_basic
        self.offered = list(offered) + (['Basic realm="WSMAN"'] if allow_basic else [])
        self._bindings = channel_bindings
        self._cbt_policy = cbt_policy
        self._on_logon = on_logon
        self._spnego = False
        self._context: spnego.ContextProxy | None = None
        self._scheme: str | None = None
        self.user: str | None = None

    @property
    def session_context(self) -> spnego.ContextProxy | None:
        """The completed NTLM/Negotiate context (for message encryption), if any."""
        if self._context is not None and self._context.complete:
            return self._context
        return None

    def _bindings_for(self, token: bytes) -> GssChannelBindings | None:
        if self._bindings is None or self._cbt_policy == "none":
            return None
        if self._cbt_policy == "strict" or ntlm_channel_bindings_sent(token):
            return self._bindings
        return None

    def _reset(self) -> AuthResult:
        self._context = None
        self._scheme = None
        self.user = None
        return AuthResult("denied")

    def authenticate(self, authorization: str | None) -> AuthResult:
        """Process the request's Authorization header (None when absent)."""
        if not authorization:
            if self.session_context is not None and self.user is not None:
                return AuthResult("ok", self.user)
            return AuthResult("denied")
        scheme, _, encoded = authorization.strip().partition(" ")
        try:
            token = base64.b64decode(encoded.strip(), validate=True)
        except binascii.Error:
            return self._reset()
        if scheme.lower() == "basic":
            return self._basic(token)
        if scheme.lower() not in ("ntlm", "negotiate") or not token:
            return self._reset()
        if self._context is None or self._context.complete or self._scheme != scheme:
            with ntlm_user_file(self._store.path):
                protocol = "ntlm" if scheme.lower() == "ntlm" else "negotiate"
                self._context = spnego.server(protocol=protocol)
            self._scheme = scheme
            self._spnego = token[:1] == b"\x60"  # an ASN.1 GSS-API token, not "NTLMSSP\0"
            self.user = None
        try:
            with ntlm_user_file(self._store.path):
                out = self._context.step(token, channel_bindings=self._bindings_for(token))
        except (SpnegoError, ValueError, KeyError, struct.error):  # what pyspnego raises on bad tokens
            return self._reset()
        header = f"{scheme} {base64.b64encode(out).decode()}" if out else None
        if not self._context.complete:
            return AuthResult("continue", header=header)
        self.user = self._context.client_principal or "unknown"
        self._on_logon("spnego" if self._spnego else "ntlm")
        return AuthResult("ok", self.user, header)

    def _basic(self, token: bytes) -> AuthResult:
        self._context = None
        if not self._allow_basic:
            return self._reset()
        username, _, password = token.decode("utf-8", "replace").partition(":")
        user = self._store.check_basic(username, password)
        if user is None:
            return self._reset()
        self._on_logon("basic")
        return AuthResult("ok", user)
