"""Read an Ansible YAML inventory the way Ansible does, keeping file:line for errors.

The inventory's variables (``ansible_host``, ``ansible_port``, ``ansible_connection``,
``ansible_winrm_*``, ...) are the source of truth for reaching a host: Ansible reads the same
files for deploy, so deploy and verify never disagree. Supported: YAML inventory files (a file,
or a directory of them) with ``group_vars/`` and ``host_vars/`` beside them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lab.errors import ConfigError
from lab.util.yamlfile import line_of, load_yaml, plain

YAML_SUFFIXES = (".yml", ".yaml")


@dataclass
class Group:
    name: str
    vars: dict[str, Any] = field(default_factory=dict)
    hosts: set[str] = field(default_factory=set)
    children: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class Inventory:
    """Hosts, their groups and their merged variables."""

    path: Path
    groups: dict[str, Group]
    host_vars: dict[str, dict[str, Any]]

    def hosts_in(self, group: str) -> list[str]:
        """Every host of ``group`` and its child groups, sorted by name."""
        seen: set[str] = set()
        stack, found = [group], set()
        while stack:
            name = stack.pop()
            if name in seen or name not in self.groups:
                continue
            seen.add(name)
            found |= self.groups[name].hosts
            stack.extend(self.groups[name].children)
        return sorted(found)

    def variables(self, host: str) -> dict[str, Any]:
        """The host's variables: group vars from shallow to deep groups, then its own."""
        depth: dict[str, int] = {}

        def walk(name: str, level: int) -> None:
            if depth.get(name, -1) >= level:
                return
            depth[name] = level
            for child in self.groups[name].children:
                walk(child, level + 1)

        walk("all", 0)
        merged: dict[str, Any] = {}
        member = [g for g in self.groups if host in self.hosts_in(g)]
        for name in sorted(member, key=lambda g: (depth.get(g, 0), g)):
            merged.update(self.groups[name].vars)
        merged.update(self.host_vars.get(host, {}))
        return merged


def load_inventory(path: Path) -> Inventory:
    """Load the inventory at ``path`` (a YAML file or a directory of YAML files)."""
    if not path.exists():
        raise ConfigError("inventory not found; create it or fix 'inventory' in lab.yml", source=str(path))
    files = sorted(p for p in path.iterdir() if p.suffix in YAML_SUFFIXES) if path.is_dir() else [path]
    groups: dict[str, Group] = {"all": Group("all"), "ungrouped": Group("ungrouped")}
    host_vars: dict[str, dict[str, Any]] = {}
    for file in files:
        data = load_yaml(file)
        if data is None:
            continue
        if not isinstance(data, dict):
            raise ConfigError("an inventory must be a mapping of groups", source=str(file), line=1)
        for name, body in data.items():
            parse_group(file, data, [name], str(name), body, groups, host_vars)
    groups["all"].children |= {g for g in groups if g != "all" and not any(g in o.children for o in groups.values())}
    base = path if path.is_dir() else path.parent
    for kind in ("group_vars", "host_vars"):
        directory = base / kind
        for file in sorted(directory.glob("*.y*ml")) if directory.is_dir() else []:
            values = plain(load_yaml(file)) or {}
            if not isinstance(values, dict):
                raise ConfigError(f"{kind} files must hold a mapping of variables", source=str(file), line=1)
            if kind == "group_vars":
                groups.setdefault(file.stem, Group(file.stem)).vars.update(values)
            else:
                host_vars.setdefault(file.stem, {}).update(values)
    return Inventory(path, groups, host_vars)


def parse_group(
    file: Path,
    root: Any,
    where: list[Any],
    name: str,
    body: Any,
    groups: dict[str, Group],
    host_vars: dict[str, dict[str, Any]],
) -> None:
    group = groups.setdefault(name, Group(name))
    if body is None:
        return
    if not isinstance(body, dict):
        raise ConfigError(f"group {name!r} must be a mapping with hosts, vars or children",
                          source=str(file), line=line_of(root, where))
    unknown = set(map(str, body)) - {"hosts", "vars", "children"}
    if unknown:
        key = sorted(unknown)[0]
        raise ConfigError(f"unknown key {key!r} in group {name!r}; use hosts, vars or children",
                          source=str(file), line=line_of(root, [*where, key]))
    for host, values in (body.get("hosts") or {}).items():
        group.hosts.add(str(host))
        host_vars.setdefault(str(host), {}).update(plain(values) or {})
    group.vars.update(plain(body.get("vars")) or {})
    for child, child_body in (body.get("children") or {}).items():
        group.children.add(str(child))
        parse_group(file, root, [*where, "children", child], str(child), child_body, groups, host_vars)
