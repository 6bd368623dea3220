"""Time for the policy: instants, durations and expiries, and the one place the real clock is read.

Policy functions never read the clock: they take ``now``. The CLI gets it from ``current``:
the hidden ``--now`` option, else ``$LAB_NOW`` (tests, replays), else the system clock.
"""

from __future__ import annotations

import os
import re
from datetime import UTC, date, datetime, timedelta
from functools import cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from lab.errors import ConfigError

DURATION = re.compile(r"^(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
UNITS = (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60), ("s", 1))
ENV_NOW = "LAB_NOW"
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)
MAX_DURATION = 366 * 86400  # a soak, pause or expiry longer than a year is a typo, not a policy


def parse_instant(text: str, what: str = "time") -> datetime:
    """An ISO 8601 instant with a UTC offset (``2026-12-01T12:00:00Z``); ConfigError otherwise."""
    raw = text.strip()
    try:
        value = datetime.fromisoformat(raw[:-1] + "+00:00" if raw.endswith(("Z", "z")) else raw)
    except ValueError:
        raise ConfigError(f"{what} {text!r} is not an ISO 8601 time; write e.g. 2026-12-01T12:00:00Z") from None
    if value.tzinfo is None or value.utcoffset() is None:
        raise ConfigError(f"{what} {text!r} has no time zone; add Z or an offset such as +02:00")
    if not EARLIEST <= value < LATEST:
        raise ConfigError(f"{what} {text!r} is outside the years 1970 to 2199; give a real time such as "
                          "2026-12-01T12:00:00Z")
    return value


def current(override: str | None = None) -> datetime:
    """The clock the CLI injects: ``override``, else ``$LAB_NOW``, else the system clock (UTC)."""
    if override:
        return parse_instant(override, "--now")
    from_env = os.environ.get(ENV_NOW)
    if from_env:
        return parse_instant(from_env, f"${ENV_NOW}")
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    """``moment`` as an ISO 8601 UTC timestamp with seconds (``2026-12-01T12:00:00+00:00``)."""
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def parse_duration(text: str) -> int:
    """Seconds in a duration such as ``48h``, ``7d``, ``1d12h``, ``2w``, ``90m``; ConfigError otherwise."""
    match = DURATION.match(text.strip())
    if not match or not any(match.groups()):
        raise ConfigError(f"duration {text!r} is not understood; write e.g. 48h, 7d, 1d12h, 30m")
    seconds = sum(int(n) * size for n, (_, size) in zip(match.groups(), UNITS, strict=True) if n)
    if seconds > MAX_DURATION:
        raise ConfigError(f"duration {text!r} is longer than a year; write at most 366d")
    return seconds


def format_duration(seconds: float) -> str:
    """A readable duration: ``2d 4h``, ``47h 59m`` is shown as ``1d 23h``, under a minute as ``42s``."""
    whole = max(0, int(seconds))
    parts = []
    for unit, size in UNITS[1:]:
        if whole >= size:
            parts.append(f"{whole // size}{unit}")
            whole %= size
        if len(parts) == 2:
            break
    return " ".join(parts) or "0s"


def parse_expiry(text: str, now: datetime) -> datetime:
    """When something given ``--expires TEXT`` at ``now`` expires.

    A duration (``7d``) counts from ``now``; a date (``2026-12-31``) is valid through that whole
    day (UTC), so it expires at the next midnight UTC; a time must carry its offset. An expiry
    that is not after ``now`` is refused.
    """
    raw = text.strip()
    as_duration = DURATION.match(raw)
    if as_duration and any(as_duration.groups()):
        expires = now + timedelta(seconds=parse_duration(raw))
    elif re.fullmatch(r"\d{4}-\d{2}-\d{2}", raw):
        try:
            day = date.fromisoformat(raw)
        except ValueError:
            raise ConfigError(f"expiry {text!r} is not a calendar date; write a real date as YYYY-MM-DD") from None
        expires = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1)
    else:
        expires = parse_instant(raw, "expiry")
    if expires <= now:
        raise ConfigError(f"expiry {text!r} is not in the future (now is {iso(now)}); give a later one")
    if expires - now > timedelta(seconds=MAX_DURATION):
        raise ConfigError(f"expiry {text!r} is more than a year away (now is {iso(now)}); give at most 366d")
    return expires.astimezone(UTC)


def now() -> str:
    """The current wall-clock time as an ISO 8601 UTC timestamp with milliseconds (store and audit times)."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@cache
def zone(name: str) -> ZoneInfo:
    """The time zone ``name`` (IANA, e.g. Europe/Oslo); ConfigError if it does not exist."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"unknown time zone {name!r}; use an IANA name such as Europe/Oslo or UTC") from None
