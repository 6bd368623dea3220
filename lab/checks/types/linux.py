"""The check-type registry: each type's parameters as a JSON Schema.

A suite is validated against these at load time, so an unknown type or an unknown parameter
is a configuration error naming file:line, never a surprise on the sandbox.
"""

from __future__ import annotations

from typing import Any

STRING = {"type": "string", "minLength": 1}
ARGV = {"oneOf": [STRING, {"type": "array", "items": {"type": "string"}, "minItems": 1}]}
REGEX = {"type": "string", "format": "regex"}
# A port: a number from 1 to 65535, or a ${variable} filled in per sandbox (e.g. ${lab_port})
PORT = {"oneOf": [
    {"type": "integer", "minimum": 1, "maximum": 65535},
    {"type": "string", "pattern": (r"^(\$\{[A-Za-z_][A-Za-z0-9_]*\}|[1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|"
                                   r"65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])$")},
]}
BOOLEAN = {"type": "boolean"}
HTTP_STATUS = {"type": "integer", "minimum": 100, "maximum": 599}
ID = {"type": "integer", "minimum": 0}
ABSOLUTE_PATH = {"type": "string", "pattern": "^/"}
CONSTRAINT = {"type": "string", "pattern": r"^\s*(~=|==|!=|>=|<=|>|<)"}
# Names that end up in paths (/etc/init.d/<name>) or argv (systemctl is-enabled <name>): no "/",
# no leading "-" or ".", so a parameter can never become a path elsewhere or an option.
PACKAGE_NAME = {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9+._-]*(:[A-Za-z0-9_-]+)?$"}
ACCOUNT_NAME = {"type": "string", "pattern": r"^[A-Za-z0-9_][A-Za-z0-9_.-]*\$?$"}
SERVICE_NAME = {"type": "string", "pattern": r"^[A-Za-z0-9_][A-Za-z0-9_.@:\\-]*$"}
NAMES = {"type": "array", "items": STRING, "uniqueItems": True}
# A file's owner or group: an id, or a name (a string of digits is a name first, then an id, as chown reads it).
OWNER = {"oneOf": [ID, ACCOUNT_NAME]}
FILE_KINDS = ("file", "directory", "symlink", "socket", "fifo", "char", "block")
IP_ADDRESS = {"type": "string", "pattern": "^[0-9A-Fa-f:.]+$"}
# A package that must be absent has no version to constrain.
NO_VERSION_WHEN_ABSENT = {"dependentSchemas": {"version": {"properties": {"installed": {"const": True}}}}}


def params(required: list[str], properties: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "type": "object",
        "additionalProperties": False,
        "required": required,
        "properties": properties,
        **extra,
    }


CHECK_TYPES: dict[str, dict[str, Any]] = {
    "file": params(
        ["path"],
        {
            "path": STRING,
            "exists": {"type": "boolean"},
            "kind": {"enum": list(FILE_KINDS)},
            "follow": BOOLEAN,
            "mode": {"type": "string", "pattern": "^0?[0-7]{3,4}$"},
            "owner": OWNER,
            "group": OWNER,
            "target": STRING,
            "sha256": {"type": "string", "pattern": "^[0-9a-fA-F]{64}$"},
            "contains": {"type": "string"},
            "matches": REGEX,
        },
        # kind: symlink is about the link itself: a followed path is never a symlink
        **{"if": {"required": ["kind"], "properties": {"kind": {"const": "symlink"}}},
           "then": {"properties": {"follow": {"const": False}}}},
    ),
    "command": params(
        ["command"],
        {
            "command": ARGV,
            "exit_code": {"type": "integer"},
            "stdout": REGEX,
            "stderr": REGEX,
            "stdout_not": REGEX,
            "stderr_not": REGEX,
            "stdin": {"type": "string"},
            "env": {"type": "object", "additionalProperties": {"type": "string"}},
        },
    ),
    "process": params(
        [],
        {"name": STRING, "comm": STRING, "exe": STRING, "cmdline": REGEX, "pid_file": STRING,
         "running": {"type": "boolean"}},
        anyOf=[{"required": [key]} for key in ("name", "comm", "exe", "cmdline", "pid_file")],
    ),
    "port": params(
        ["port"],
        {"port": PORT, "host": STRING, "listening": {"type": "boolean"}},
    ),
    "http": params(
        ["url"],
        {
            "url": {"type": "string", "pattern": "^https?://"},
            "status": {"oneOf": [HTTP_STATUS, {"type": "array", "items": HTTP_STATUS, "minItems": 1}]},
            "body": REGEX,
            "method": {"enum": ["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS"]},
            "headers": {"type": "object", "additionalProperties": {"type": "string"}},
            "timeout": {"type": "number", "exclusiveMinimum": 0},
            "follow_redirects": {"type": "boolean"},
            "tls_verify": {"type": "boolean"},
            "ca_file": STRING,
        },
    ),
    "version": params(
        ["product", "constraint"],
        {
            "product": STRING,
            "constraint": CONSTRAINT,
            "command": ARGV,
            "file": STRING,
            "regex": REGEX,
        },
    ),
    # Linux server checks; their meaning follows pytest-testinfra's modules (see runner.py).
    "package": params(
        ["name"],
        {"name": PACKAGE_NAME, "installed": BOOLEAN, "version": CONSTRAINT, "manager": {"enum": ["dpkg", "rpm"]}},
        **NO_VERSION_WHEN_ABSENT,
    ),
    "service": params(
        ["name"],
        {"name": SERVICE_NAME, "running": BOOLEAN, "enabled": BOOLEAN, "process": STRING, "pid_file": ABSOLUTE_PATH},
    ),
    "user": params(
        ["name"],
        {"name": ACCOUNT_NAME, "exists": BOOLEAN, "uid": ID, "gid": ID, "home": ABSOLUTE_PATH,
         "shell": ABSOLUTE_PATH, "groups": NAMES},
    ),
    "group": params(
        ["name"],
        {"name": ACCOUNT_NAME, "exists": BOOLEAN, "gid": ID, "members": NAMES},
    ),
    "listening": params(
        ["port"],
        {"port": PORT, "protocol": {"enum": ["tcp", "udp"]}, "address": IP_ADDRESS, "process": STRING,
         "listening": BOOLEAN},
    ),
    "mount": params(
        ["path"],
        {"path": ABSOLUTE_PATH, "exists": BOOLEAN, "fstype": STRING, "device": STRING, "options": NAMES},
    ),
    "sysctl": params(
        ["key", "value"],
        {"key": {"type": "string", "pattern": "^[A-Za-z0-9_][A-Za-z0-9_.:@/-]*$"},
         "value": {"type": ["integer", "string"]}},
    ),
    # Run by the controller, not the runner (lab.checks.testinfra_suite): pytest-testinfra files,
    # relative to the suite's directory, each test one result.
    "testinfra": params(
        ["files"],
        {"files": {"type": "array", "minItems": 1, "uniqueItems": True,
                   "items": {"type": "string", "pattern": r"^[^/\-][^\x00]*\.py$"}}},
    ),
    "kernel_module": params(
        ["name"],
        {"name": {"type": "string", "pattern": "^[A-Za-z0-9_-]+$"}, "loaded": BOOLEAN},
    ),
}

# Parameters of the shared types that only runner.py understands (runner.ps1's schemas leave them out).
LINUX_ONLY = {"file": ("follow", "owner", "group", "target"), "process": ("comm", "exe", "cmdline")}

# Fields of a check entry that belong to the check itself, not to its type's parameters.
COMMON_FIELDS = frozenset({"id", "type", "description", "timeout", "retries", "skip"})
