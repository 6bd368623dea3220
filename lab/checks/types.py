"""The check-type registry: each type's parameters as a JSON Schema.

A suite is validated against these at load time, so an unknown type or an unknown parameter
is a configuration error naming file:line, never a surprise on the sandbox.
"""

from __future__ import annotations

from typing import Any

STRING = {"type": "string", "minLength": 1}
ARGV = {"oneOf": [STRING, {"type": "array", "items": {"type": "string"}, "minItems": 1}]}
REGEX = {"type": "string", "format": "regex"}
PORT = {"type": ["integer", "string"], "minimum": 1, "maximum": 65535}


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
            "kind": {"enum": ["file", "directory"]},
            "mode": {"type": "string", "pattern": "^0?[0-7]{3,4}$"},
            "sha256": {"type": "string", "pattern": "^[0-9a-fA-F]{64}$"},
            "contains": {"type": "string"},
            "matches": REGEX,
        },
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
        {"name": STRING, "pid_file": STRING, "running": {"type": "boolean"}},
        oneOf=[{"required": ["name"]}, {"required": ["pid_file"]}],
    ),
    "port": params(
        ["port"],
        {"port": PORT, "host": STRING, "listening": {"type": "boolean"}},
    ),
    "http": params(
        ["url"],
        {
            "url": {"type": "string", "pattern": "^https?://"},
            "status": {"oneOf": [{"type": "integer"}, {"type": "array", "items": {"type": "integer"}}]},
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
            "constraint": {"type": "string", "pattern": r"^\s*(~=|==|!=|>=|<=|>|<)"},
            "command": ARGV,
            "file": STRING,
            "regex": REGEX,
        },
    ),
}

# Fields of a check entry that belong to the check itself, not to its type's parameters.
COMMON_FIELDS = frozenset({"id", "type", "description", "timeout", "retries", "skip"})
