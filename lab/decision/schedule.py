"""Maintenance windows and freeze periods: is a stage open at an instant, and when does it next open.

Pure functions of the stage and an injected instant; time zones through ``zoneinfo`` (so a
window at 18:00 Europe/Oslo follows daylight saving time). A stage without windows is
always open except during its freezes; a freeze always wins over a window.

Local times become real instants by one rule, ``wall_instant``: a time means the first instant
the local clock reads it or later. A time skipped by the spring change (02:15 in Oslo on
2026-03-29) is therefore the instant the clock jumps past it (03:00 CEST), so a window ending
there closes when the jump happens, not an hour later; a time the autumn change repeats (02:30
on 2026-10-25) is its first occurrence (02:30 CEST, before the clocks go back), for ``from``
and ``to`` alike. An occurrence is one interval of real time: the repeated hour does not
reopen a window that has closed, nor close one that is open.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta

from lab.model import Clause, ClauseOutcome, Freeze, Stage, Window
from lab.util.clock import DAY_NAMES, iso, zone

HORIZON_DAYS = 400  # how far ahead the next open window is looked for


def wall_instant(day: date, at: time, timezone: str) -> datetime:
    """The first UTC instant at which the clock of ``timezone`` reads ``day`` ``at`` or later.

    An existing time is its first occurrence (fold 0); a time inside a spring-forward gap is
    the instant of the jump, the first one whose local reading is past it.
    """
    tz = zone(timezone)
    at = at.replace(fold=0)  # the rule picks the first occurrence, whatever fold the caller's time has
    wanted = datetime.combine(day, at)
    first = datetime.combine(day, at, tz).astimezone(UTC)  # fold 0: after the jump when ``at`` is skipped
    if first.astimezone(tz).replace(tzinfo=None) == wanted:
        return first
    # Skipped: the jump lies between the reading with the offset after it (fold 1) and ``first``.
    low = datetime.combine(day, at, tz).replace(fold=1).astimezone(UTC)
    high = first
    while high - low > timedelta(seconds=1):
        middle = low + (high - low) / 2
        if middle.astimezone(tz).replace(tzinfo=None) >= wanted:
            high = middle
        else:
            low = middle
    return high.replace(microsecond=0)


def interval(window: Window, day: date) -> tuple[datetime, datetime]:
    """The occurrence of ``window`` that opens on local ``day``, as UTC instants [start, end)
    (``wall_instant`` makes each local time a real instant; an end not after the start gives an
    empty occurrence)."""
    start = wall_instant(day, window.start, window.timezone)
    if window.end_of_day:
        end = wall_instant(day + timedelta(days=1), time(0), window.timezone)
    elif window.end <= window.start:
        end = wall_instant(day + timedelta(days=1), window.end, window.timezone)
    else:
        end = wall_instant(day, window.end, window.timezone)
    return start, max(start, end)


def in_window(window: Window, moment: datetime) -> bool:
    """Whether ``moment`` falls in an occurrence of ``window`` (one that opened today or yesterday, locally)."""
    local_day = moment.astimezone(zone(window.timezone)).date()
    for day in (local_day - timedelta(days=1), local_day):
        if day.weekday() in window.days:
            start, end = interval(window, day)
            if start <= moment < end:
                return True
    return False


def freeze_bounds(freeze: Freeze) -> tuple[datetime, datetime]:
    """A freeze as UTC instants [first midnight, midnight after its last day)."""
    return (wall_instant(freeze.start, time(0), freeze.timezone),
            wall_instant(freeze.end + timedelta(days=1), time(0), freeze.timezone))


def in_freeze(freeze: Freeze, moment: datetime) -> bool:
    """Whether ``moment`` falls in the freeze (its first and last day included)."""
    start, end = freeze_bounds(freeze)
    return start <= moment < end


def is_open(stage: Stage, moment: datetime) -> bool:
    """Whether a promotion into ``stage`` may happen at ``moment``: in a window (if any), in no freeze."""
    if any(in_freeze(f, moment) for f in stage.freezes):
        return False
    return not stage.windows or any(in_window(w, moment) for w in stage.windows)


def starts(window: Window, after: datetime, horizon: datetime) -> Iterator[datetime]:
    """Every opening of ``window`` from the local day before ``after`` up to ``horizon``, in order."""
    day = after.astimezone(zone(window.timezone)).date() - timedelta(days=1)
    while True:
        if day.weekday() in window.days:
            start, _ = interval(window, day)
            if start > horizon:
                return
            yield start
        day += timedelta(days=1)
        if datetime.combine(day, time(0), UTC) > horizon + timedelta(days=2):
            return


def next_open(stage: Stage, now: datetime, horizon_days: int = HORIZON_DAYS) -> datetime | None:
    """The first instant at or after ``now`` when ``stage`` is open; None within ``horizon_days``.

    The open time is a union of window occurrences minus freezes, so it can only begin at
    ``now``, at a window's opening, or at a freeze's end: those candidates are tried in order.
    """
    now = now.astimezone(UTC)
    horizon = now + timedelta(days=horizon_days)
    freeze_ends = sorted(freeze_bounds(f)[1] for f in stage.freezes)
    streams: list[Iterator[datetime]] = [iter([now]), iter(freeze_ends)]
    streams.extend(starts(w, now, horizon) for w in stage.windows)
    for candidate in heapq.merge(*streams):
        if candidate > horizon:
            return None
        if candidate >= now and is_open(stage, candidate):
            return candidate
    return None


def describe_window(window: Window) -> str:
    """``weekdays 18:00-06:00 Europe/Oslo``: a window as the agreement would say it."""
    days = tuple(sorted(window.days))
    label = {(0, 1, 2, 3, 4): "weekdays", (5, 6): "weekends", tuple(range(7)): "daily"}.get(
        days, ",".join(DAY_NAMES[d] for d in days))
    end = "24:00" if window.end_of_day else f"{window.end:%H:%M}"
    return f"{label} {window.start:%H:%M}-{end} {window.timezone}"


def describe_freeze(freeze: Freeze) -> str:
    """``freeze 2026-12-20..2027-01-06 Europe/Oslo (year-end)``."""
    why = f" ({freeze.reason})" if freeze.reason else ""
    return f"freeze {freeze.start}..{freeze.end} {freeze.timezone}{why}"


def local(moment: datetime, timezone: str) -> str:
    """``2026-12-01 18:00 Europe/Oslo (Tue)``."""
    at = moment.astimezone(zone(timezone))
    return f"{at:%Y-%m-%d %H:%M} {timezone} ({at:%a})"


def display_zone(stage: Stage) -> str:
    """The zone a stage's times are shown in: its first window's, else its first freeze's, else UTC."""
    if stage.windows:
        return stage.windows[0].timezone
    return stage.freezes[0].timezone if stage.freezes else "UTC"


def window_clause(stage: Stage, now: datetime) -> tuple[Clause, datetime | None]:
    """The ``window`` clause of a decision at ``now``, and when the stage next opens if it is closed."""
    opens = reopens(stage, now)
    return window_line(stage, now, opens), opens


def reopens(stage: Stage, now: datetime) -> datetime | None:
    """None when ``stage`` is open at ``now``; otherwise when it next opens (None beyond the horizon too)."""
    return None if is_open(stage, now) else next_open(stage, now)


def window_line(stage: Stage, now: datetime, opens: datetime | None) -> Clause:
    """The ``window`` clause at ``now``, given ``opens``: ``next_open(stage, now)`` when the stage is closed."""
    clock = f"clock {iso(now)}"
    if not stage.windows and not stage.freezes:
        return Clause("window", ClauseOutcome.NOT_APPLICABLE, f"stage {stage.name} has no maintenance window or freeze",
                      (clock,))
    tz = display_zone(stage)
    if is_open(stage, now):
        inside = next((w for w in stage.windows if in_window(w, now)), None)
        why = f"in window {describe_window(inside)}" if inside else "no freeze in force; the stage has no windows"
        return Clause("window", ClauseOutcome.MET, f"open at {local(now, tz)}: {why}", (clock,))
    freeze = next((f for f in stage.freezes if in_freeze(f, now)), None)
    if freeze is not None:
        why = f"in {describe_freeze(freeze)}"
    else:
        why = "outside " + "; ".join(describe_window(w) for w in stage.windows)
    after = (f"next open window: {local(opens, tz)} ({iso(opens)})" if opens is not None
             else f"no open window in the next {HORIZON_DAYS} days")
    return Clause("window", ClauseOutcome.NOT_MET, f"closed at {local(now, tz)} ({why}); {after}", (clock,))
