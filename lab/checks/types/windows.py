"""The check types runner.ps1 understands on Windows sandboxes, each one's parameters as a JSON Schema.

Same style as ``lab.checks.types.linux.CHECK_TYPES``. The types both runners share (file, command,
process, port, http, version, service, package) keep the Linux parameters with the same meaning,
so a suite can target both platforms, with these differences:

- ``file`` has no ``mode`` (Windows has ACLs, not mode bits) nor the Linux-only link and owner
  parameters, ``kind`` is ``file`` or ``directory``, and it adds ``file_version`` (a version constraint
  on a PE file's version resource); paths of 260 characters and more work, and text without a BOM
  that is not valid UTF-8 is read in the ANSI code page;
- ``command`` adds ``output_encoding``; ``exit_code`` may be given signed or unsigned (0xC0000005 is
  3221225477 or -1073741819); a program named without extension is found by PATHEXT (``.cmd``, ``.bat``);
- ``http`` sets restricted headers (Connection, Content-Length, Date, Expect, If-Modified-Since, Range,
  Transfer-Encoding) through their properties, decodes the body by its declared charset and connects
  without the WinRM account's proxy;
- ``service`` has no ``process``/``pid_file`` and adds ``state`` (running/stopped/paused), ``start_mode``
  (auto/manual/disabled) and ``exists``; ``running`` and ``enabled`` (= start mode auto) work as on Linux;
  drivers count as services;
- ``package`` has no ``manager``: it reads the Uninstall registry keys (HKLM 64- and 32-bit views, and
  the hives of HKEY_USERS loaded now: the WinRM account and users logged on); ``name`` is the
  DisplayName (spaces allowed), ``name_matches`` and ``product_id`` are added;
- ``version`` without command or file reads the installed product's own DisplayVersion, from the
  Uninstall key of the product id that playbooks/windows/deploy.yml records in
  ``%ProgramData%\\lab\\installed\\<product>.json`` (never the version the record says was asked for).

Windows-only types: registry, launch, eventlog (``since: deploy`` = the host's own time of the last
deploy), pester. ``launch`` holds the program's whole process tree in a job object (alive while any of
its processes runs, memory of the tree, the tree killed at the end) with every stream redirected; it
runs in the WinRM account's session (session 0 on a server, without a desktop), so it proves that the
program starts, survives and stays within its budget, not that an RDS user sees a working window.

Objects whose keys are names on Windows (``command``'s ``env``, ``http``'s ``headers``) must not hold two
keys that differ only in case: Windows PowerShell 5.1's ConvertFrom-Json rejects the whole manifest for
them, so ``case_clashes`` names them and validation refuses the suite.

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
                r"|deploy|.*" + VARIABLE_REF + r".*)$"),
}
EXIT_CODE = {"type": "integer", "minimum": -(2**31), "maximum": 2**32 - 1}  # signed or unsigned 32-bit
# Parameters whose keys are names Windows compares without case.
CASELESS_KEYS = {"command": ("env",), "http": ("headers",)}
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


def shared(type_name: str, /, drop: tuple[str, ...] = (), **added: Any) -> dict[str, Any]:
    """The Linux schema of ``type_name`` with the parameters in ``drop`` removed and ``added`` added or replaced."""
    base = CHECK_TYPES[type_name]
    properties = {k: v for k, v in base["properties"].items() if k not in drop}
    properties.update(added)
    extra = {k: v for k, v in base.items() if k not in ("type", "additionalProperties", "required", "properties")}
    return params([r for r in base["required"] if r not in drop], properties, **extra)


def case_clashes(kind: str, params: dict[str, Any]) -> list[str]:
    """Keys of a ``kind`` check's name-keyed parameters that differ only in case, e.g. ``env: Path, PATH``."""
    clashes = []
    for name in CASELESS_KEYS.get(kind, ()):
        value = params.get(name)
        if not isinstance(value, dict):
            continue
        seen: dict[str, list[str]] = {}
        for key in value:
            seen.setdefault(str(key).casefold(), []).append(str(key))
        clashes += [f"{name}: {', '.join(keys)}" for keys in seen.values() if len(keys) > 1]
    return clashes


WINDOWS_CHECK_TYPES: dict[str, dict[str, Any]] = {
    "file": shared("file", drop=("mode", *LINUX_ONLY["file"]), kind={"enum": ["file", "directory"]},
                   file_version=CONSTRAINT),
    "command": shared("command", output_encoding={"enum": ["console", "utf-8", "utf-16le", "oem", "ansi"]},
                      exit_code=EXIT_CODE),
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
