"""Load agreement.yml: stages in order, each stage's gate, approvals, waivers, windows and freezes.

Validated against ``lab/config/schemas/agreement.json`` first; every error after that still names the
file and line (a role that does not exist, an unknown time zone, a freeze that ends before it
starts, a gate that asks for more approvers than may approve).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

from lab.config.allowed_signers import read_signers
from lab.config.paths import Confinement
from lab.config.schemas import schema, validate
from lab.errors import ConfigError
from lab.model import Agreement, ApprovalRule, Freeze, Gate, Stage, Suite, Window
from lab.util.clock import DAY_NAMES, parse_duration, zone
from lab.util.suggest import nearest_hint
from lab.util.yamlfile import DEFAULT_LIMITS, Limits, line_of, load_yaml, plain

CLOCK = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")
DAY_SETS = {"weekdays": (0, 1, 2, 3, 4), "weekends": (5, 6), "daily": tuple(range(7))}


def stringify_dates(node: Any) -> None:
    """Turn the dates YAML parsed (``2026-12-20``) back into ISO text in place, keeping line numbers."""
    if isinstance(node, dict):
        for key in list(node):
            value = node[key]
            if isinstance(value, date | datetime):
                node[key] = value.isoformat()
            else:
                stringify_dates(value)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            if isinstance(value, date | datetime):
                node[index] = value.isoformat()
            else:
                stringify_dates(value)


class StageParser:
    """Builds the model of one stage from its validated body; errors name ``source`` and the line."""

    def __init__(self, source: Path, data: Any, roles: dict[str, tuple[str, ...]], timezone: str,
                 known_approvers: tuple[str, ...], suites: dict[str, Suite] | None,
                 platforms: set[str] | None = None) -> None:
        self.source = source
        self.data = data
        self.roles = roles
        self.timezone = timezone
        self.known_approvers = known_approvers
        self.suites = suites
        self.platforms = platforms

    def error(self, message: str, where: Sequence[Any]) -> ConfigError:
        return ConfigError(message, source=str(self.source), line=line_of(self.data, list(where)))

    def stage(self, body: dict[str, Any], previous: str | None, where: Sequence[Any]) -> Stage:
        """The stage ``body`` (a plain dict) found at ``where`` in the file."""
        gate = self.gate(body["name"], body["gate"], [*where, "gate"]) if "gate" in body else None
        windows = tuple(self.window(w, [*where, "windows", i]) for i, w in enumerate(body.get("windows", [])))
        freezes = tuple(self.freeze(f, [*where, "freezes", i]) for i, f in enumerate(body.get("freezes", [])))
        return Stage(body["name"], gate, body.get("description", ""), previous, windows, freezes)

    def gate(self, stage: str, body: dict[str, Any], where: list[Any]) -> Gate:
        wanted = body.get("suites", "mandatory")
        if wanted != "mandatory" and self.suites is not None:
            for index, suite_name in enumerate(wanted):
                if suite_name not in self.suites:
                    raise self.error(f"gate of stage {stage!r} names unknown suite {suite_name!r}"
                                     f"{nearest_hint(suite_name, self.suites)}; suites: "
                                     f"{', '.join(sorted(self.suites))}", [*where, "suites", index])
        for index, platform in enumerate(body["platforms"] if self.platforms is not None else []):
            if platform not in (self.platforms or ()):
                raise self.error(f"gate of stage {stage!r} needs platform {platform!r}, which no host of the inventory "
                                 f"has (lab_platform){nearest_hint(platform, self.platforms or ())}; platforms: "
                                 f"{', '.join(sorted(self.platforms or ())) or 'none'}", [*where, "platforms", index])
        rule = self.approvals(stage, body["approvals"], [*where, "approvals"]) if "approvals" in body else None
        try:
            soak = parse_duration(body["soak"]) if "soak" in body else 0
        except ConfigError as exc:
            raise self.error(f"soak: {exc}", [*where, "soak"]) from None
        rate = body.get("min_pass_rate")
        return Gate(
            platforms=tuple(body["platforms"]),
            suites=None if wanted == "mandatory" else tuple(wanted),
            max_flaky=body.get("max_flaky", 0),
            min_pass_rate=None if rate is None else float(rate),
            soak_seconds=soak,
            approvals=rule,
            waivers=bool(body.get("waivers", False)),
            waiver_approvers=rule.approvers if rule is not None else self.known_approvers,
        )

    def approvals(self, stage: str, body: dict[str, Any], where: list[Any]) -> ApprovalRule:
        people = list(body.get("approvers", []))
        role = body.get("role")
        if role is not None:
            if role not in self.roles:
                known = ", ".join(sorted(self.roles)) or "none declared; add a top-level 'roles' map"
                raise self.error(f"gate of stage {stage!r} asks for role {role!r}, which the agreement does not "
                                 f"declare{nearest_hint(role, self.roles)}; roles: {known}", [*where, "role"])
            people.extend(p for p in self.roles[role] if p not in people)
        minimum = body.get("min", 1)
        distinct = body.get("distinct", True)
        if distinct and minimum > len(set(people)):
            raise self.error(f"gate of stage {stage!r} needs {minimum} distinct approvals, but only "
                             f"{len(set(people))} people may approve ({', '.join(people)}); lower 'min' or add "
                             "approvers", [*where, "min"] if "min" in body else where)
        return ApprovalRule(tuple(people), minimum, distinct, role)

    def zone_name(self, name: str | None, where: list[Any]) -> str:
        chosen = name or self.timezone
        try:
            zone(chosen)
        except ConfigError as exc:
            raise self.error(str(exc), where) from None
        return chosen

    def window(self, body: dict[str, Any], where: list[Any]) -> Window:
        raw_days = body["days"]
        days = DAY_SETS[raw_days] if isinstance(raw_days, str) else tuple(sorted(DAY_NAMES.index(d) for d in raw_days))
        start = self.clock(body["from"], [*where, "from"])
        end_of_day = body["to"] == "24:00"
        end = time(0) if end_of_day else self.clock(body["to"], [*where, "to"])
        tz = self.zone_name(body.get("timezone"), [*where, "timezone"] if "timezone" in body else where)
        return Window(days, start, end, tz, end_of_day)

    def clock(self, text: str, where: list[Any]) -> time:
        if not CLOCK.match(text):
            raise self.error(f"window time {text!r} is not HH:MM (00:00 to 23:59; 'to' may be 24:00)", where)
        return time.fromisoformat(text)

    def freeze(self, body: dict[str, Any], where: list[Any]) -> Freeze:
        try:
            start, end = date.fromisoformat(body["from"]), date.fromisoformat(body["to"])
        except ValueError as exc:
            raise self.error(f"freeze: {exc}; write dates as YYYY-MM-DD", where) from None
        if end < start:
            raise self.error(f"freeze ends ({end}) before it starts ({start}); swap 'from' and 'to'", [*where, "to"])
        tz = self.zone_name(body.get("timezone"), [*where, "timezone"] if "timezone" in body else where)
        return Freeze(start, end, tz, body.get("reason", ""))


def named_approvers(raw: dict[str, Any]) -> tuple[str, ...]:
    """Every principal the agreement names: role members and approvers named in a gate."""
    people: list[str] = [p for members in raw.get("roles", {}).values() for p in members]
    for body in raw["stages"]:
        people.extend(body.get("gate", {}).get("approvals", {}).get("approvers", []))
    return tuple(dict.fromkeys(people))


def load_agreement(path: Path, suites: dict[str, Suite], limits: Limits = DEFAULT_LIMITS,
                   confinement: Confinement | None = None, platforms: set[str] | None = None) -> Agreement:
    """Load and validate ``path``; raise ConfigError naming file:line on the first problem.

    With ``confinement``, allowed_signers must resolve inside the lab (and, when it exists, list
    only well-formed keys); with ``platforms``, every gate's platforms must be ones the lab's hosts run.
    """
    data = load_yaml(path, limits)
    stringify_dates(data)
    validate(data, schema("agreement"), path)
    raw = plain(data)
    roles = {name: tuple(members) for name, members in raw.get("roles", {}).items()}
    timezone = raw.get("timezone", "UTC")
    try:
        zone(timezone)
    except ConfigError as exc:
        raise ConfigError(str(exc), source=str(path), line=line_of(data, ["timezone"])) from None
    parser = StageParser(path, data, roles, timezone, named_approvers(raw), suites, platforms)
    stages: list[Stage] = []
    for index, body in enumerate(raw["stages"]):
        if any(s.name == body["name"] for s in stages):
            raise ConfigError(f"stage {body['name']!r} is declared twice", source=str(path),
                              line=line_of(data, ["stages", index]))
        stages.append(parser.stage(body, stages[-1].name if stages else None, ["stages", index]))
    raw_signers = raw.get("allowed_signers")
    signers = None
    if raw_signers:
        base = confinement or Confinement(path.parent.resolve())
        signers = base.resolve(raw_signers, "allowed_signers", source=path, line=line_of(data, ["allowed_signers"]),
                               base=path.parent, must_exist=None)
        if signers.exists():
            if not signers.is_file():
                raise ConfigError(f"allowed_signers {raw_signers!r} is not a regular file ({signers}); name an "
                                  "ssh-keygen ALLOWED SIGNERS file", source=str(path),
                                  line=line_of(data, ["allowed_signers"]))
            read_signers(signers)
    return Agreement(raw["agreement"], tuple(stages), path, roles, signers, document=data)
