"""Rollout settings: how a build that entered production reaches the production hosts, in waves.

The settings are the agreement's ``rollout:`` section (the agreement says how production is
rolled out), validated against ``lab/config/schemas/rollout.json`` (which the agreement's schema refers
to, so any command that loads the lab refuses a malformed section). Every error after that
names the file and line: an unknown stage, suite or inventory group, a missing rollback
playbook, a wave that adds no host, a last wave that leaves hosts out.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lab.config.labfile import LabConfig
from lab.errors import ConfigError
from lab.util.clock import MAX_DURATION, parse_duration
from lab.util.suggest import nearest_hint
from lab.util.yamlfile import line_of, plain

OLD_SETTINGS_FILE = "rollout.yml"  # where the settings lived before; no longer read
DEFAULT_ROLLBACK = "playbooks/rollback.yml"
FORKS_PER_CORE = 4  # Ansible's workers mostly wait on their hosts; four per core keep the cores busy


def default_forks() -> int:
    """Forks (and shard size) when the agreement sets none: four per core of this controller, at least 4."""
    return max(4, FORKS_PER_CORE * (os.cpu_count() or 1))


@dataclass(frozen=True)
class WavePlan:
    """One wave as planned: its hosts (in order), its halt threshold and the pause after it.

    The wave halts when more than ``max_failures`` of its hosts fail, or (when
    ``max_failure_rate`` is set) when the failed share of its hosts is above that rate.
    """

    index: int  # 1-based
    name: str
    hosts: tuple[str, ...]
    max_failures: int | None
    max_failure_rate: float | None
    pause_seconds: int

    def breached(self, failures: int) -> bool:
        """Whether ``failures`` failed hosts (errors included) exceed this wave's threshold."""
        if self.max_failure_rate is not None:
            return failures / max(1, len(self.hosts)) > self.max_failure_rate
        return failures > (self.max_failures or 0)

    def threshold(self) -> str:
        """The threshold in words, for messages."""
        if self.max_failure_rate is not None:
            return f"at most {self.max_failure_rate:.0%} of {len(self.hosts)} host(s) may fail"
        return f"at most {self.max_failures or 0} of {len(self.hosts)} host(s) may fail"


@dataclass(frozen=True)
class RolloutSettings:
    """The validated ``rollout:`` section and the waves it gives over the production group."""

    source: Path
    stage: str
    group: str
    hosts: tuple[str, ...]  # every production host, sorted
    health_suite: str
    rollback_playbook: Path
    forks: int
    pause_seconds: int
    waves: tuple[WavePlan, ...]


def seconds(value: Any) -> int:
    """A pause as seconds: an integer, ``0`` or a duration such as ``30m``."""
    if isinstance(value, int):
        if value > MAX_DURATION:
            raise ConfigError(f"pause of {value} seconds is longer than a year; write at most 366d")
        return value
    return 0 if str(value).strip() == "0" else parse_duration(str(value))


def has_rollout(config: LabConfig) -> bool:
    """Whether the agreement has a ``rollout:`` section (a lab without production has none)."""
    agreement = config.agreement.document
    return isinstance(agreement, dict) and "rollout" in agreement


def find_section(config: LabConfig) -> tuple[Path, Any]:
    """The agreement's file and its content as loaded with the lab (already validated against the
    agreement's schema, which includes the rollout schema); ConfigError without a ``rollout:``."""
    path = config.agreement.path
    if has_rollout(config):
        return path, config.agreement.document
    old = config.root / OLD_SETTINGS_FILE
    moved = f"; {old} is no longer read: move its section there" if old.exists() else ""
    raise ConfigError(f"no rollout settings: add a 'rollout:' section (the waves to production){moved}",
                      source=str(path))


def load_rollout_settings(config: LabConfig) -> RolloutSettings:
    """Load and validate the rollout settings of ``config``'s lab; ConfigError naming file:line otherwise."""
    path, data = find_section(config)
    where = ["rollout"]
    raw = plain(data["rollout"])

    def error(message: str, *at: Any) -> ConfigError:
        return ConfigError(message, source=str(path), line=line_of(data, [*where, *at]))

    stage = raw.get("stage", "production")
    if config.agreement.stage(stage) is None:
        names = ", ".join(s.name for s in config.agreement.stages)
        raise error(f"unknown stage {stage!r}; stages in {config.agreement.path.name}: {names}"
                    f"{nearest_hint(stage, [s.name for s in config.agreement.stages])}", "stage")
    hosts = tuple(config.inventory.hosts_in(raw["group"]))
    if not hosts:
        raise error(f"inventory group {raw['group']!r} has no hosts; add the production hosts to "
                    f"{config.inventory.path.name} or name their group", "group")
    suite = config.suites.get(raw["health_suite"])
    if suite is None:
        raise error(f"unknown suite {raw['health_suite']!r}; suites: {', '.join(sorted(config.suites))}"
                    f"{nearest_hint(raw['health_suite'], config.suites)}",
                    "health_suite")
    rollback = config.confinement.resolve(raw.get("rollback", DEFAULT_ROLLBACK), "rollback playbook", source=path,
                                          line=line_of(data, [*where, "rollback"]), must_exist="file")
    try:
        pause = seconds(raw.get("pause", 0))
        waves = plan_waves(raw["waves"], hosts, config, pause)
    except WaveError as exc:
        raise error(exc.message, *exc.where) from None
    except ConfigError as exc:
        raise error(str(exc)) from None
    return RolloutSettings(path, stage, raw["group"], hosts, suite.name, rollback,
                           raw.get("forks") or default_forks(), pause, waves)


class WaveError(Exception):
    """A wave that cannot be planned; ``where`` is its path under the section, for the line."""

    def __init__(self, message: str, where: list[Any]) -> None:
        super().__init__(message)
        self.message = message
        self.where = where


def plan_waves(bodies: list[dict[str, Any]], hosts: tuple[str, ...], config: LabConfig,
               default_pause: int) -> tuple[WavePlan, ...]:
    """The waves over ``hosts`` (sorted names): cumulative shares or counts take the next hosts in
    order, a ``group`` wave takes that group's production hosts not planned yet. Every wave must
    add at least one host and the last one must leave none out."""
    planned: list[str] = []
    waves: list[WavePlan] = []
    for index, body in enumerate(bodies):
        name = body.get("name", f"wave-{index + 1}")
        if "group" in body:
            members = set(config.inventory.hosts_in(body["group"]))
            if not members & set(hosts):
                raise WaveError(f"wave {name!r}: inventory group {body['group']!r} has no production host",
                                ["waves", index, "group"])
            chosen = [h for h in hosts if h in members and h not in planned]
        else:
            share = body["hosts"]
            if isinstance(share, int):
                if share > len(hosts):
                    raise WaveError(f"wave {name!r} goes up to {share} hosts, but the group has {len(hosts)}",
                                    ["waves", index, "hosts"])
                target = share
            else:
                target = max(1, math.ceil(float(share.rstrip("%")) * len(hosts) / 100 - 1e-9))
            chosen = [h for h in hosts if h not in planned][:max(0, target - len(planned))]
        if not chosen:
            raise WaveError(f"wave {name!r} adds no host: the waves before it already cover {len(planned)} of "
                            f"{len(hosts)}", ["waves", index])
        planned.extend(chosen)
        rate = body.get("max_failure_rate")
        waves.append(WavePlan(index + 1, name, tuple(chosen),
                              None if rate is not None else int(body.get("max_failures", 0)),
                              None if rate is None else float(rate),
                              seconds(body["pause"]) if "pause" in body else default_pause))
    if len(planned) < len(hosts):
        raise WaveError(f"the waves cover {len(planned)} of the {len(hosts)} production hosts; end with a wave of "
                        "hosts: 100%", ["waves", len(bodies) - 1])
    return tuple(waves)
