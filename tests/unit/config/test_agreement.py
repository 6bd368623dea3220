"""agreement.yml: stages, gates, approvals, windows and freezes; every mistake named by file and line."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, time
from pathlib import Path

import pytest

from lab.config.labfile import load_lab
from lab.decision.schedule import is_open, next_open
from lab.errors import ConfigError
from lab.model import ApprovalRule, Freeze, Stage, Window
from tests.support.labfiles import CliResult, copy_default_lab, set_rollout

EVENINGS = '      - {days: weekdays, from: "18:00", to: "06:00"}'
BOARD = ("kari.nordmann@example.no", "lars.haugen@example.no", "ingrid.solberg@example.no")


@pytest.fixture
def lab_yml(tmp_path: Path) -> Path:
    return copy_default_lab(tmp_path / "lab")


def edit(lab_yml: Path, old: str, new: str) -> tuple[Path, int]:
    """Replace ``old`` in the lab's agreement.yml; return the file and the 1-based line of ``new``."""
    agreement = lab_yml.parent / "agreement.yml"
    text = agreement.read_text()
    assert old in text, old
    text = text.replace(old, new, 1)
    agreement.write_text(text)
    return agreement, text[:text.index(new)].count("\n") + 1


def error_of(lab_yml: Path) -> str:
    with pytest.raises(ConfigError) as info:
        load_lab(lab_yml)
    return str(info.value)


def test_the_default_agreement(lab_yml: Path) -> None:
    agreement = load_lab(lab_yml).agreement
    assert [(s.name, s.previous) for s in agreement.stages] == [("lab", None), ("pilot", "lab"),
                                                                ("production", "pilot")]
    pilot = agreement.stage("pilot")
    assert pilot is not None and pilot.gate is not None
    assert (pilot.gate.approvals, pilot.gate.soak_seconds, pilot.gate.waivers, pilot.windows) == (None, 0, False, ())
    production = agreement.stage("production")
    assert production is not None and production.gate is not None
    assert production.gate.soak_seconds == 48 * 3600 and production.gate.waivers is True
    assert production.gate.approvals == ApprovalRule(BOARD, 2, True, "change-board")
    assert production.windows == (Window((0, 1, 2, 3, 4), time(18), time(6), "Europe/Oslo"),
                                  Window((5, 6), time(0), time(0), "Europe/Oslo", end_of_day=True))
    assert production.freezes == (Freeze(date(2026, 12, 20), date(2027, 1, 6), "Europe/Oslo", "year-end freeze"),)
    assert agreement.roles == {"change-board": BOARD}
    assert agreement.allowed_signers == lab_yml.parent / "keys" / "allowed_signers"


@pytest.mark.parametrize(("old", "new", "message"), [
    ("        role: change-board", "        role: release-board",
     "gate of stage 'production' asks for role 'release-board', which the agreement does not declare "
     "(did you mean 'change-board'?); roles: "
     "change-board"),
    ("        min: 2", "        min: 4",
     "gate of stage 'production' needs 4 distinct approvals, but only 3 people may approve (kari.nordmann@example.no, "
     "lars.haugen@example.no, ingrid.solberg@example.no); lower 'min' or add approvers"),
    ("      - {from: 2026-12-20, to: 2027-01-06, reason: year-end freeze}",
     "      - {from: 2027-01-06, to: 2026-12-20, reason: year-end freeze}",
     "freeze ends (2026-12-20) before it starts (2027-01-06); swap 'from' and 'to'"),
    ("      - {days: weekends, from: \"00:00\", to: \"24:00\"}",
     "      - {days: weekends, from: \"00:00\", to: \"24:00\", timezone: Europe/Espoo}",
     "unknown time zone 'Europe/Espoo'; use an IANA name such as Europe/Oslo or UTC"),
    ("      soak: 48h ", "      soak: 48 hours ",
     "soak: duration '48 hours' is not understood; write e.g. 48h, 7d, 1d12h, 30m"),
    (EVENINGS, EVENINGS.replace('from: "18:00"', 'from: "25:00"'),
     "window time '25:00' is not HH:MM (00:00 to 23:59; 'to' may be 24:00)"),
    (EVENINGS, EVENINGS.replace("days: weekdays, from", "days: [mon, fri], form"),
     "unknown field 'form' in stages.2.windows.0 (did you mean 'from'?); allowed fields: days, from, timezone, to"),
    ("      waivers: true ", "      waivers: sometimes ",
     "stages.2.gate.waivers: found 'sometimes'; write true or false"),
], ids=["unknown-role", "too-few-approvers", "freeze-reversed", "bad-zone", "bad-soak", "bad-clock", "unknown-field",
        "bad-waivers"])
def test_mistakes_name_file_and_line(lab_yml: Path, old: str, new: str, message: str) -> None:
    agreement, line = edit(lab_yml, old, new)
    error = error_of(lab_yml)
    assert error.startswith(f"{agreement}:{line}: "), error
    assert message in error


def test_validate_shows_the_stages(lab_yml: Path, run_cli: Callable[..., CliResult]) -> None:
    result = run_cli("--lab", str(lab_yml), "validate")
    assert result.code == 0
    assert (
        "  agreement municipal-it-services-2026: lab -> pilot -> production\n"
        "    lab: no gate (a registered build is in it)\n"
        "    pilot: from lab; platforms debian-12; mandatory suites, zero failures; flaky <= 0; no waivers\n"
        "    production: from pilot; platforms debian-12; mandatory suites, zero failures; flaky <= 0; "
        "waivers allowed; soak 2d; 2 distinct approval(s) from role change-board\n"
        "                open: weekdays 18:00-06:00 Europe/Oslo; weekends 00:00-24:00 Europe/Oslo; "
        "freeze 2026-12-20..2027-01-06 Europe/Oslo (year-end freeze)\n"
        "    approver keys: keys/allowed_signers, 0 key(s) listed (no approval can verify)\n"
        "    rollout to production: 24 host(s) of group production in 4 wave(s) of 1/2/9/12; "
        "health suite production-health; rollback rollback.yml\n"
        "      wave 1 canary: prod-ts-01; at most 0 of 1 host(s) may fail\n"
        "      wave 2 early: prod-ts-02, prod-ts-03; at most 10% of 2 host(s) may fail\n"
        "      wave 3 half: prod-ts-04, prod-ts-05, prod-ts-06 and 6 more; at most 5% of 9 host(s) may fail\n"
        "      wave 4 all: prod-ts-13, prod-ts-14, prod-ts-15 and 9 more; at most 5% of 12 host(s) may fail\n"
        "valid\n"
    ) in result.out


def test_validate_without_a_rollout_section_says_so_and_with_a_broken_one_fails(
        lab_yml: Path, run_cli: Callable[..., CliResult]) -> None:
    set_rollout(lab_yml.parent, None)
    result = run_cli("--lab", str(lab_yml), "validate")
    assert result.code == 0, result.err
    assert result.out.endswith("    rollout: none (no rollout: section in the agreement; `lab rollout` is "
                               "unavailable)\nvalid\n")
    line = set_rollout(lab_yml.parent, "rollout:\n  group: production\n  health_suite: no-such-suite\n"
                                       "  waves:\n    - {hosts: 100%}\n")
    broken = run_cli("--lab", str(lab_yml), "validate")
    assert broken.code == 2 and broken.out == ""
    assert broken.err.startswith(f"lab: {lab_yml.parent / 'agreement.yml'}:{line + 2}: unknown suite 'no-such-suite'")


def test_validate_counts_the_approver_keys_and_names_an_override(lab_yml: Path, tmp_path: Path,
                                                                  run_cli: Callable[..., CliResult]) -> None:
    signers = tmp_path / "signers"
    key = "AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
    signers.write_text(f"# comment\n\nkari.nordmann@example.no ssh-ed25519 {key}\n"
                       f"lars.haugen@example.no namespaces=\"file\" ssh-ed25519 {key}\n")
    result = run_cli("--lab", str(lab_yml), "--allowed-signers", str(signers), "validate")
    assert result.code == 0, result.err
    assert f"    approver keys: {signers} (override), 2 key(s) listed\n" in result.out


def test_next_open_window_across_daylight_saving_and_beyond_the_horizon() -> None:
    evening = Stage("production", None, windows=(Window((0, 1, 2, 3, 4), time(18), time(6), "Europe/Helsinki"),))
    # Friday 2027-03-26 20:00 Helsinki (EET) is open; Saturday 10:00 is not; the next window is Monday 18:00 EEST.
    assert is_open(evening, datetime(2027, 3, 26, 18, 0, tzinfo=UTC)) is True
    assert next_open(evening, datetime(2027, 3, 27, 8, 0, tzinfo=UTC)) == datetime(2027, 3, 29, 15, 0, tzinfo=UTC)
    forever = Stage("production", None, freezes=(Freeze(date(2026, 1, 1), date(2030, 1, 1), "UTC"),))
    assert next_open(forever, datetime(2026, 6, 1, tzinfo=UTC)) is None
    assert next_open(forever, datetime(2026, 6, 1, tzinfo=UTC), horizon_days=3000) == datetime(2030, 1, 2, tzinfo=UTC)
