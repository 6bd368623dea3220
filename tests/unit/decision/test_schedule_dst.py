"""Local window times become real instants by one rule: the first instant the local clock reads
that time or later (a skipped time is the spring jump; a repeated time its first occurrence)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from hypothesis import given
from hypothesis import strategies as st

from lab.decision.schedule import in_window, wall_instant
from lab.model import Window

ZONES = ["Europe/Oslo", "Europe/Helsinki", "America/New_York", "Australia/Lord_Howe", "America/Santiago",
         "Asia/Tehran", "UTC", "Pacific/Chatham"]


def reading(moment: datetime, zone: str) -> datetime:
    from lab.util.clock import zone as tz
    return moment.astimezone(tz(zone)).replace(tzinfo=None)


@given(st.sampled_from(ZONES), st.dates(date(2024, 1, 1), date(2030, 12, 31)), st.times())
def test_a_local_time_is_the_first_instant_the_clock_reads_it_or_later(zone: str, day: date, at: time) -> None:
    at = at.replace(microsecond=0)
    moment = wall_instant(day, at, zone)
    wanted = datetime.combine(day, at)
    assert reading(moment, zone) >= wanted
    # A second before, the clock read less: a backward jump only replays times already read, so
    # the first instant reading ``wanted`` or later never follows one.
    assert reading(moment - timedelta(seconds=1), zone) < wanted


def test_oslo_spring_gap_and_autumn_fold() -> None:
    assert wall_instant(date(2026, 3, 29), time(2, 15), "Europe/Oslo") == datetime(2026, 3, 29, 1, 0, tzinfo=UTC)
    assert wall_instant(date(2026, 3, 29), time(1, 59), "Europe/Oslo") == datetime(2026, 3, 29, 0, 59, tzinfo=UTC)
    assert wall_instant(date(2026, 10, 25), time(2, 30), "Europe/Oslo") == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)
    window = Window((6,), time(1), time(2, 15), "Europe/Oslo", False)
    assert in_window(window, datetime(2026, 3, 29, 0, 59, 59, tzinfo=UTC))
    assert not in_window(window, datetime(2026, 3, 29, 1, 0, tzinfo=UTC))  # 03:00 CEST: past 02:15
    assert not in_window(window, datetime(2026, 3, 29, 1, 14, tzinfo=UTC))  # 03:14 CEST, the case


@given(st.sampled_from(ZONES), st.datetimes(datetime(2024, 1, 1), datetime(2030, 12, 31)),
       st.times(), st.times())
def test_a_window_is_open_only_while_the_clock_is_between_from_and_to_within_one_occurrence(
        zone: str, naive: datetime, start: time, end: time) -> None:
    start, end = start.replace(second=0, microsecond=0), end.replace(second=0, microsecond=0)
    moment = naive.replace(tzinfo=UTC)
    window = Window(tuple(range(7)), start, end, zone, False)
    if in_window(window, moment):
        clock = reading(moment, zone).time()
        # Open: the local clock reads a time inside [from, to) (wrapping midnight), or the autumn
        # fold took it back into an occurrence already opened.
        inside = (start <= clock < end) if start < end else (clock >= start or clock < end)
        folded = reading(moment - timedelta(hours=3), zone) > reading(moment, zone) - timedelta(hours=3)
        assert inside or folded
