"""Where the lab's store lives: SQLite in the state directory (the embedded default), or PostgreSQL.

``store: postgresql://USER@HOST:PORT/DB`` in lab.yml, or ``$LAB_STORE`` (which wins), selects
PostgreSQL. The DSN may carry a password; prefer a passfile (``~/.pgpass``, ``$PGPASSFILE``) or
``$PGPASSWORD``, which libpq reads itself. Whatever the DSN holds, lab shows it only redacted
(``StoreLocation.shown``, ``redact``): the password never reaches a message, log, report or the store.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, quote, unquote, urlsplit, urlunsplit

from lab.errors import ConfigError

SCHEMES = ("postgresql", "postgres")
HIDDEN = "***"
SECRET_KEYS = frozenset({"password", "sslpassword"})
_KEYWORD_SECRET = re.compile(r"\b((?:ssl)?password\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s&]+)", re.IGNORECASE)


@dataclass(frozen=True)
class StoreLocation:
    """The SQLite file ``path``, or the PostgreSQL ``dsn`` (never shown as it is: ``shown``)."""

    path: Path | None = None
    dsn: str | None = field(default=None, repr=False)

    @property
    def backend(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return "postgresql" if self.dsn is not None else "sqlite"

    @property
    def shown(self) -> str:
        """The location as messages, logs and reports may show it: the path, or the DSN redacted."""
        return redact(self.dsn) if self.dsn is not None else str(self.path)

    def scrub(self, text: str) -> str:
        """``text`` (say a driver's error message) with the DSN and any password it holds hidden."""
        if self.dsn is None:
            return text
        text = text.replace(self.dsn, self.shown)
        for secret in secrets_of(self.dsn):
            text = text.replace(secret, HIDDEN)
        return redact(text)

    def __repr__(self) -> str:
        return f"StoreLocation({self.shown!r})"


def redact(text: str) -> str:
    """``text`` with the password of every PostgreSQL URL and ``password=`` keyword in it replaced by ``***``."""
    text = re.sub(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"]*", lambda m: redact_url(m.group(0)), text)
    return _KEYWORD_SECRET.sub(lambda m: m.group(1) + HIDDEN, text)


def redact_url(url: str) -> str:
    """A postgresql:// URL with its password (in the user part or the query) replaced by ``***``."""
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        if "@" in netloc:
            userinfo, _, hosts = netloc.rpartition("@")
            user, colon, _ = userinfo.partition(":")
            netloc = f"{user}{':' + HIDDEN if colon else ''}@{hosts}"
        query = re.sub(r"((?:^|&)(?:ssl)?password=)[^&]*", rf"\1{HIDDEN}", parts.query, flags=re.IGNORECASE)
        return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
    except ValueError:
        return f"{url.partition(':')[0]}://{HIDDEN}"


def secrets_of(dsn: str) -> list[str]:
    """The passwords written in ``dsn`` (as written and URL-decoded), longest first."""
    found: set[str] = set()
    try:
        parts = urlsplit(dsn)
        if parts.password:
            found.update({parts.password, unquote(parts.password), quote(parts.password, safe="")})
            userinfo = parts.netloc.rpartition("@")[0]
            found.add(userinfo.partition(":")[2])
        found.update(v for k, v in parse_qsl(parts.query, True) if k.lower() in SECRET_KEYS and v)
    except ValueError:
        pass
    found.update(m.group(2).strip("'") for m in _KEYWORD_SECRET.finditer(dsn))
    return sorted((s for s in found if s), key=len, reverse=True)


def store_location(configured: str | None, from_env: str | None, state_dir: Path, source: Path,
                   line: int | None = None) -> StoreLocation:
    """The store ``$LAB_STORE`` (``from_env``, when set) or lab.yml's ``store:`` (``configured``)
    names; without either, SQLite at ``<state_dir>/lab.sqlite3``. ConfigError (the value redacted,
    naming where it came from) for anything but a postgresql:// URL."""
    if from_env:
        raw, origin, line = from_env, "$LAB_STORE", None
    elif configured:
        raw, origin = configured, str(source)
    else:
        return StoreLocation(path=state_dir / "lab.sqlite3")
    scheme = raw.partition("://")[0].lower() if "://" in raw else ""
    if scheme not in SCHEMES:
        begins = f"it begins {scheme[:20]!r}://" if scheme else "it has no scheme://"
        raise ConfigError(f"store is not a PostgreSQL URL ({begins}; the value is not shown, it may hold a "
                          "password); write postgresql://USER@HOST:PORT/DATABASE (the password in ~/.pgpass or "
                          "$PGPASSWORD), or leave store out for the embedded SQLite store in state_dir",
                          source=origin, line=line)
    try:
        urlsplit(raw).port  # noqa: B018 - a port that is not a number raises here, not deep in libpq
    except ValueError as exc:
        raise ConfigError(f"store {redact(raw)!r} is not a valid URL ({exc}); write postgresql://USER@HOST:PORT/DATABASE",
                          source=origin, line=line) from None
    return StoreLocation(dsn=raw)
