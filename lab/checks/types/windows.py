"""The check types runner.ps1 understands on Windows sandboxes, each one's parameters as a JSON Schema.

Same style as ``lab.checks.types.linux.CHECK_TYPES``. The types both runners share (file, command,
process, port, http, version, service, package) keep the Linux parameters with the same meaning,
so a suite can target both platforms, with these differences:

- ``file`` has no ``mode`` (Windows has ACLs, not mode bits) and adds ``file_version`` (a version
  constraint on a PE file's version resource);
- ``command`` adds ``output_encoding``;
- ``service`` has no ``process``/``pid_file`` and adds ``state`` (running/stopped/paused), ``start_mode``
  (auto/manual/disabled) and ``exists``; ``running`` and ``enabled`` (= start mode auto) work as on Linux;
- ``package`` has no ``manager``: it reads the Uninstall registry keys (HKLM 64- and 32-bit views,
  HKCU); ``name`` is the DisplayName (spaces allowed), ``name_matches`` and ``product_id`` are added;
- ``version`` without command or file reads ``%ProgramData%\\lab\\installed\\<product>.json``, which
  playbooks/windows/deploy.yml writes.

Windows-only types: registry, launch, eventlog, pester.

Paths may use ``%VARIABLE%`` (runner.ps1 expands them). No parameter is named like a field of the
check itself (``lab.checks.types.linux.COMMON_FIELDS``), except http's ``timeout``, kept as in CHECK_TYPES.
"""

from __future__ import annotations

from typing import Any

from lab.checks.types.linux import (
    ARGV,
    BOOLEAN,
    CHECK_TYPES,
    CONSTRAINT,
    LINUX_ONLY,
    NO_VERSION_WHEN_ABSENT,  # a package that must be absent has no version to constrain (as on Linux)
    REGEX,
    STRING,
    params,
)

VARIABLE_REF = r"\$\{[A-Za-z_][A-Za-z0-9_]*\}"
TIMESTAMP = {
    "type": "string",
    "pattern": (r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})"
                r"|.*" + VARIABLE_REF + r".*)$"),
}
REGISTRY_KEY = {
    "type": "string",
    "pattern": (r"^(Registry::)?(HKLM|HKCU|HKCR|HKU|HKCC|HKEY_LOCAL_MACHINE|HKEY_CURRENT_USER|"
                r"HKEY_CLASSES_ROOT|HKEY_USERS|HKEY_CURRENT_CONFIG):?(\\.*)?$"),
}
REGISTRY_VALUE_TYPES = ["String", "ExpandString", "DWord", "QWord", "MultiString", "Binary"]
EVENT_LEVELS = ["critical", "error", "warning", "information", "verbose"]
STRINGS = {"type": "array", "items": {"type": "string"}, "minItems": 1}
# A provider name goes into an event query between quotes: keep quotes and markup out.
EVENT_SOURCE = {"type": "string", "minLength": 1, "pattern": r"^[^'\"<>&]+$"}


def shared(kind: str, drop: tuple[str, ...] = (), **added: Any) -> dict[str, Any]:
    """The Linux schema of ``kind`` with the parameters in ``drop`` removed and ``added`` added."""
    base = CHECK_TYPES[kind]
    properties = {k: v for k, v in base["properties"].items() if k not in drop}
    properties.update(added)
    extra = {k: v for k, v in base.items() if k not in ("type", "additionalProperties", "required", "properties")}
    return params([r for r in base["required"] if r not in drop], properties, **extra)


WINDOWS_CHECK_TYPES: dict[str, dict[str, Any]] = {
    "file": shared("file", drop=("mode", *LINUX_ONLY["file"]), file_version=CONSTRAINT),
    "command": shared("command", output_encoding={"enum": ["console", "utf-8", "utf-16le", "oem", "ansi"]}),
    "process": shared("process", drop=LINUX_ONLY["process"]),
    "port": shared("port"),
    "http": shared("http"),
    "version": shared("version"),
    "registry": params(
        ["key"],
        {
            "key": REGISTRY_KEY,
            "value": {"type": "string"},
            "exists": BOOLEAN,
            "value_type": {"enum": REGISTRY_VALUE_TYPES},
            "data": {"oneOf": [{"type": "string"}, {"type": "integer"},
                               {"type": "array", "items": {"type": "string"}}]},
            "matches": REGEX,
            "view": {"enum": [32, 64]},
        },
        dependentRequired={"value_type": ["value"], "data": ["value"], "matches": ["value"]},
    ),
    "service": params(
        ["name"],
        {
            "name": STRING,
            "exists": BOOLEAN,
            "running": BOOLEAN,
            "enabled": BOOLEAN,
            "state": {"enum": ["running", "stopped", "paused"]},
            "start_mode": {"enum": ["auto", "manual", "disabled"]},
        },
    ),
    "package": params(
        [],
        {
            "name": STRING,
            "name_matches": REGEX,
            "product_id": STRING,
            "version": CONSTRAINT,
            "installed": BOOLEAN,
        },
        anyOf=[{"required": ["name"]}, {"required": ["name_matches"]}, {"required": ["product_id"]}],
        **NO_VERSION_WHEN_ABSENT,
    ),
    "launch": params(
        ["command"],
        {
            "command": ARGV,
            "alive": {"type": "number", "exclusiveMinimum": 0},
            "max_memory_mb": {"type": "number", "exclusiveMinimum": 0},
        },
    ),
    "eventlog": params(
        ["since"],
        {
            "log": STRING,
            "source": EVENT_SOURCE,
            "level": {"oneOf": [{"enum": EVENT_LEVELS}, {"type": "array", "items": {"enum": EVENT_LEVELS},
                                                          "minItems": 1}]},
            "since": TIMESTAMP,
            "event_id": {"oneOf": [{"type": "integer"}, {"type": "array", "items": {"type": "integer"}}]},
            "max": {"type": "integer", "minimum": 0},
        },
    ),
    "pester": params(
        ["path"],
        {"path": STRING, "tag": STRINGS, "exclude_tag": STRINGS},
    ),
}
