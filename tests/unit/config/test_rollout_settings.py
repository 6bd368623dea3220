"""Rollout settings (the agreement's ``rollout:`` section): waves over the production group,
thresholds, and errors that name file:line."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab.config.labfile import load_lab
from lab.config.rollout_plan import RolloutSettings, WavePlan, load_rollout_settings
from lab.errors import ConfigError
from tests.support.labfiles import copy_default_lab, set_rollout


def settings_with(tmp_path: Path, text: str | None) -> RolloutSettings:
    """The settings of a copy of the default lab whose agreement has ``text`` as its rollout section."""
    lab_yml = copy_default_lab(tmp_path / "lab")
    set_rollout(lab_yml.parent, text)
    return load_rollout_settings(load_lab(lab_yml))


def error_of(tmp_path: Path, text: str | None) -> str:
    with pytest.raises(ConfigError) as caught:
        settings_with(tmp_path, text)
    return str(caught.value)


def at(tmp_path: Path, offset: int) -> str:
    """``agreement.yml:N`` for the line ``offset`` lines into the rollout section (0: ``rollout:``)."""
    start = next(i for i, line in enumerate((tmp_path / "lab" / "agreement.yml").read_text().splitlines(), 1)
                 if line.startswith("rollout:"))
    return f"agreement.yml:{start + offset}"


def test_the_default_lab_rolls_out_to_24_hosts_in_waves_of_1_10_50_and_100_percent(tmp_path: Path) -> None:
    lab_yml = copy_default_lab(tmp_path / "lab")
    settings = load_rollout_settings(load_lab(lab_yml))
    assert settings.source == lab_yml.parent / "agreement.yml"
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
    set_rollout(lab_yml.parent, "rollout:\n  group: production\n  health_suite: production-health\n  waves:\n"
                                "    - {group: canary}\n    - {hosts: 50%}\n    - {hosts: 100%}\n")
    waves = load_rollout_settings(load_lab(lab_yml)).waves
    assert waves[0].hosts == ("prod-ts-05", "prod-ts-07")
    assert waves[1].hosts == ("prod-ts-01", "prod-ts-02", "prod-ts-03", "prod-ts-04", "prod-ts-06", "prod-ts-08",
                              "prod-ts-09", "prod-ts-10", "prod-ts-11", "prod-ts-12")
    assert len(waves[2].hosts) == 12


@pytest.mark.parametrize(("waves", "line", "message"), [
    ("    - {hosts: 2}\n    - {hosts: 5%}\n    - {hosts: 100%}\n", 5,
     "wave 'wave-2' adds no host: the waves before it already cover 2 of 24"),
    ("    - {hosts: 50%}\n", 4, "the waves cover 12 of the 24 production hosts; end with a wave of hosts: 100%"),
    ("    - {hosts: 30}\n", 4, "wave 'wave-1' goes up to 30 hosts, but the group has 24"),
    ("    - {hosts: 100%, max_failures: 1, max_failure_rate: 0.1}\n", 4, "rollout.waves.0: "),
    ("    - {hosts: 100%, max_failure: 1}\n", 4, "unknown field 'max_failure' in rollout.waves.0 "
                                                "(did you mean 'max_failures'?); allowed fields: "
                                                "group, hosts, max_failure_rate, max_failures, name, pause"),
    ("    - {group: no-such-group}\n", 4, "wave 'wave-1': inventory group 'no-such-group' has no production host"),
])
def test_waves_that_cannot_be_planned_are_refused_with_file_and_line(tmp_path: Path, waves: str, line: int,
                                                                     message: str) -> None:
    text = "rollout:\n  group: production\n  health_suite: production-health\n  waves:\n" + waves
    error = error_of(tmp_path, text)
    assert f"{at(tmp_path, line)}: {message}" in error


def test_unknown_names_are_refused_with_file_and_line(tmp_path: Path) -> None:
    base = "rollout:\n  group: production\n  health_suite: production-health\n  waves:\n    - {hosts: 100%}\n"
    suite = error_of(tmp_path / "a", base.replace("health_suite: production-health", "health_suite: no-suite"))
    assert f"{at(tmp_path / 'a', 2)}: unknown suite 'no-suite'; suites: " in suite
    group = error_of(tmp_path / "b", base.replace("group: production", "group: nobody"))
    assert f"{at(tmp_path / 'b', 1)}: inventory group 'nobody' has no hosts" in group
    stage = error_of(tmp_path / "c", base.replace("rollout:\n", "rollout:\n  stage: prod\n"))
    assert f"{at(tmp_path / 'c', 1)}: unknown stage 'prod'; stages in agreement.yml: lab, pilot, production" in stage


def test_without_a_rollout_section_the_message_says_where_to_put_it(tmp_path: Path) -> None:
    assert error_of(tmp_path / "a", None).endswith(
        "agreement.yml: no rollout settings: add a 'rollout:' section (the waves to production)")
    lab_yml = copy_default_lab(tmp_path / "b" / "lab")
    set_rollout(lab_yml.parent, None)
    (lab_yml.parent / "rollout.yml").write_text("rollout: {}\n")
    with pytest.raises(ConfigError) as caught:
        load_rollout_settings(load_lab(lab_yml))
    assert str(caught.value).endswith(f"no rollout settings: add a 'rollout:' section (the waves to production); "
                                      f"{lab_yml.parent / 'rollout.yml'} is no longer read: move its section there")


def test_every_command_that_loads_the_lab_refuses_a_malformed_rollout_section(tmp_path: Path) -> None:
    lab_yml = copy_default_lab(tmp_path / "lab")
    start = set_rollout(lab_yml.parent, "rollout:\n  group: production\n  health_suite: production-health\n"
                                        "  waves:\n    - {hosts: 100%, max_failures: -1}\n")
    with pytest.raises(ConfigError) as caught:
        load_lab(lab_yml)
    assert str(caught.value) == f"{lab_yml.parent / 'agreement.yml'}:{start + 4}: " \
                                "rollout.waves.0.max_failures: the number -1 is out of range; " \
                                "write a whole number of at least 0"
