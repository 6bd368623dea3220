"""Rollout settings: waves over the production group, thresholds, and errors that name file:line."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab.config import load_lab
from lab.errors import ConfigError
from lab.rollout_settings import RolloutSettings, WavePlan, load_rollout_settings
from tests.conftest import copy_default_lab


def settings_with(tmp_path: Path, text: str | None) -> RolloutSettings:
    lab_yml = copy_default_lab(tmp_path / "lab")
    target = tmp_path / "lab" / "rollout.yml"
    if text is None:
        target.unlink()
    else:
        target.write_text(text)
    return load_rollout_settings(load_lab(lab_yml))


def error_of(tmp_path: Path, text: str | None) -> str:
    with pytest.raises(ConfigError) as caught:
        settings_with(tmp_path, text)
    return str(caught.value)


def test_the_default_lab_rolls_out_to_24_hosts_in_waves_of_1_10_50_and_100_percent(tmp_path: Path) -> None:
    settings = settings_with(tmp_path, (Path(__file__).parents[2] / "rollout.yml").read_text())
    assert (settings.stage, settings.group, settings.health_suite, settings.forks) == \
        ("production", "production", "production-health", 8)
    assert settings.hosts == tuple(f"prod-ts-{i:02d}" for i in range(1, 25))
    assert [(w.name, len(w.hosts)) for w in settings.waves] == [("canary", 1), ("early", 2), ("half", 9), ("all", 12)]
    assert [h for w in settings.waves for h in w.hosts] == list(settings.hosts)  # each host once, in order
    assert settings.rollback_playbook.name == "rollback.yml" and settings.pause_seconds == 0


def test_thresholds_count_failed_hosts_or_their_share() -> None:
    canary = WavePlan(1, "canary", ("a",), 0, None, 0)
    assert not canary.breached(0) and canary.breached(1)
    half = WavePlan(2, "half", tuple("abcdefghij"), None, 0.1, 0)
    assert not half.breached(1) and half.breached(2)
    assert half.threshold() == "at most 10% of 10 host(s) may fail"


def test_counts_shares_and_pauses(tmp_path: Path) -> None:
    text = """rollout:
  group: production
  health_suite: production-health
  pause: 30m
  waves:
    - {hosts: 2, pause: 0}
    - {hosts: 25%, max_failures: 1}
    - {hosts: 100%}
"""
    settings = settings_with(tmp_path, text)
    assert [len(w.hosts) for w in settings.waves] == [2, 4, 18]
    assert [w.pause_seconds for w in settings.waves] == [0, 1800, 1800]
    assert [w.name for w in settings.waves] == ["wave-1", "wave-2", "wave-3"]
    assert [(w.max_failures, w.max_failure_rate) for w in settings.waves] == [(0, None), (1, None), (0, None)]


def test_a_group_wave_takes_that_groups_production_hosts_first(tmp_path: Path) -> None:
    lab_yml = copy_default_lab(tmp_path / "lab")
    inventory = tmp_path / "lab" / "inventory" / "hosts.yml"
    inventory.write_text(inventory.read_text() + "    canary:\n      hosts:\n        prod-ts-05: {}\n"
                                                    "        prod-ts-07: {}\n")
    (tmp_path / "lab" / "rollout.yml").write_text(
        "rollout:\n  group: production\n  health_suite: production-health\n  waves:\n"
        "    - {group: canary}\n    - {hosts: 50%}\n    - {hosts: 100%}\n")
    waves = load_rollout_settings(load_lab(lab_yml)).waves
    assert waves[0].hosts == ("prod-ts-05", "prod-ts-07")
    assert waves[1].hosts == ("prod-ts-01", "prod-ts-02", "prod-ts-03", "prod-ts-04", "prod-ts-06", "prod-ts-08",
                              "prod-ts-09", "prod-ts-10", "prod-ts-11", "prod-ts-12")
    assert len(waves[2].hosts) == 12


@pytest.mark.parametrize(("waves", "message"), [
    ("    - {hosts: 2}\n    - {hosts: 5%}\n    - {hosts: 100%}\n",
     "rollout.yml:6: wave 'wave-2' adds no host: the waves before it already cover 2 of 24"),
    ("    - {hosts: 50%}\n", "rollout.yml:5: the waves cover 12 of the 24 production hosts; end with a wave of "
                               "hosts: 100%"),
    ("    - {hosts: 30}\n", "rollout.yml:5: wave 'wave-1' goes up to 30 hosts, but the group has 24"),
    ("    - {hosts: 100%, max_failures: 1, max_failure_rate: 0.1}\n", "rollout.yml:5: rollout.waves.0: "),
    ("    - {hosts: 100%, max_failure: 1}\n", "unknown field 'max_failure' in rollout.waves.0"),
    ("    - {group: no-such-group}\n", "rollout.yml:5: wave 'wave-1': inventory group 'no-such-group' has no "
                                       "production host"),
])
def test_waves_that_cannot_be_planned_are_refused_with_file_and_line(tmp_path: Path, waves: str, message: str) -> None:
    text = "rollout:\n  group: production\n  health_suite: production-health\n  waves:\n" + waves
    assert message in error_of(tmp_path, text)


def test_unknown_names_are_refused_with_file_and_line(tmp_path: Path) -> None:
    base = "rollout:\n  group: production\n  health_suite: production-health\n  waves:\n    - {hosts: 100%}\n"
    assert "rollout.yml:3: unknown suite 'no-suite'; suites: " in error_of(
        tmp_path / "a", base.replace("health_suite: production-health", "health_suite: no-suite"))
    assert "rollout.yml:2: inventory group 'nobody' has no hosts" in error_of(
        tmp_path / "b", base.replace("group: production", "group: nobody"))
    assert "rollout.yml:2: unknown stage 'prod'; stages in agreement.yml: lab, pilot, production" in error_of(
        tmp_path / "c", base.replace("rollout:\n", "rollout:\n  stage: prod\n"))
    assert "no rollout settings: add a 'rollout:' section to agreement.yml or create rollout.yml" in error_of(
        tmp_path / "d", None)
