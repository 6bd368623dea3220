"""JSON-Schema errors as sentences in the lab's words: what was found, what to write instead.

``jsonschema`` says ``'150%' is not valid under any of the given schemas`` or ``inf is not of type
'string'``; a user needs ``waves.1.hosts: '150%' is not a share of hosts; write a percentage from 1%
to 100%, or a host count``. ``sentence`` turns any error of lab's schemas into such a sentence.
"""

from __future__ import annotations

import math
import re
from datetime import date, datetime
from typing import Any

from jsonschema.exceptions import ValidationError

from lab.util.suggest import nearest_hint

# What a pattern of lab's schemas asks for, in words (the pattern itself is no help to a user).
PATTERN_HINTS: dict[str, str] = {
    "^[0-9a-f]{64}$": "64 lowercase hex digits, as sha256sum prints them (quote it)",
    "^[0-9a-fA-F]{64}$": "64 hex digits, as sha256sum prints them (quote it)",
    "^[0-9A-Za-z][0-9A-Za-z.+_-]*$": "a version: a letter or digit first, then letters, digits, '.', '+', '_' or '-'",
    "^[a-z0-9][a-z0-9._-]*$": "a name in lowercase letters, digits, '.', '_' and '-', starting with a letter or digit",
    "^[a-z0-9][a-z0-9_-]*$": "a name in lowercase letters, digits, '_' and '-', starting with a letter or digit",
    "^[A-Za-z0-9][A-Za-z0-9._-]*$": "an id of letters, digits, '.', '_' and '-', starting with a letter or digit",
    "^[A-Za-z0-9][A-Za-z0-9_.-]*$": "a name of letters, digits, '.', '_' and '-', starting with a letter or digit",
    "^[^\\s,*?!\"]+$": "one identity, as in allowed_signers: no spaces, commas, quotes or wildcards",
    "^\\d{4}-\\d{2}-\\d{2}$": "a date as YYYY-MM-DD",
    "^/": "an absolute path (starting with /)",
    "^https?://": "a URL starting with http:// or https://",
    "^0?[0-7]{3,4}$": "an octal mode such as '0644' (quote it)",
    "^(100|[1-9]?[0-9](\\.[0-9]+)?)%$": "a share of the hosts from 1% to 100% (e.g. '10%'), or a host count",
    "^(0|(?=.)(\\d+w)?(\\d+d)?(\\d+h)?(\\d+m)?(\\d+s)?)$": "a duration such as 30m, 2h, 1d12h or 0",
    "^[0-9A-Fa-f:.]+$": "an IPv4 or IPv6 address",
}

TYPE_WORDS = {
    "string": "text", "integer": "a whole number", "number": "a number", "boolean": "true or false",
    "array": "a list", "object": "a mapping of fields", "null": "nothing (null)",
}


def found(value: Any) -> str:
    """``value`` described as the YAML a user wrote, with the trap it often is."""
    if isinstance(value, bool):
        return (f"the yes/no value {str(value).lower()} (YAML reads true/false/yes/no/on/off as booleans; "
                "quote it if you meant text)")
    if isinstance(value, float) and math.isnan(value):
        return "not-a-number (.nan)"
    if isinstance(value, float) and math.isinf(value):
        return "infinity (.inf; YAML reads inf, .inf and 1e999 as numbers)"
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, datetime | date):
        return f"the date {value.isoformat()} (YAML reads it as a date; quote it for text)"
    if value is None:
        return "nothing (an empty value)"
    if isinstance(value, str):
        return repr(value) if len(value) <= 60 else f"{value[:57]!r}... (text of {len(value)} characters)"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return repr(value)


def wanted(schema: Any) -> str:
    """What ``schema`` accepts, in words."""
    if not isinstance(schema, dict):
        return "a valid value"
    if "const" in schema:
        return repr(schema["const"])
    if "enum" in schema:
        return "one of " + ", ".join(map(repr, schema["enum"]))
    if "oneOf" in schema or "anyOf" in schema:
        return " or ".join(wanted(s) for s in schema.get("oneOf") or schema.get("anyOf") or [])
    if "pattern" in schema:
        return PATTERN_HINTS.get(schema["pattern"], f"text matching {schema['pattern']}")
    if schema.get("format") == "regex":
        return "a regular expression"
    kinds = schema.get("type")
    if isinstance(kinds, list):
        return " or ".join(TYPE_WORDS.get(str(k), str(k)) for k in kinds)
    if isinstance(kinds, str):
        words = TYPE_WORDS.get(kinds, kinds)
        if kinds == "array" and isinstance(schema.get("items"), dict):
            words += f" of {wanted(schema['items'])}"
        return words + bounds(schema)
    return "a valid value"


def bounds(schema: dict[str, Any]) -> str:
    low = schema.get("minimum", schema.get("exclusiveMinimum"))
    high = schema.get("maximum", schema.get("exclusiveMaximum"))
    if low is None and high is None:
        return ""
    low_word = "above" if "exclusiveMinimum" in schema else "from"
    if high is None:
        return f" {low_word} {low}" if low_word == "above" else f" of at least {low}"
    if low is None:
        return f" of at most {high}"
    return f" {low_word} {low} to {high}"


def sentence(error: ValidationError, field: str) -> str:
    """The error as one sentence: ``field``, what is wrong and what to write instead."""
    value: Any = error.instance
    kind: Any = error.validator
    schema: dict[str, Any] = error.schema if isinstance(error.schema, dict) else {}
    expected: Any = error.validator_value
    if kind == "additionalProperties":
        allowed = sorted(schema.get("properties", {}))
        unknown = sorted(set(map(str, value)) - set(allowed))
        name = unknown[0] if unknown else "?"
        return f"unknown field {name!r} in {field}{nearest_hint(name, allowed)}; allowed fields: {', '.join(allowed)}"
    if kind == "required":
        missing = [n for n in expected if isinstance(value, dict) and n not in value]
        name = missing[0] if missing else expected[0]
        return f"{field}: the required field {name!r} is missing; add it"
    if kind in ("type", "pattern"):
        return f"{field}: found {found(value)}; write {wanted(schema)}"
    if kind in ("enum", "const"):
        choices = schema.get("enum", [schema.get("const")])
        return f"{field}: found {found(value)}{nearest_hint(str(value), map(str, choices))}; write {wanted(schema)}"
    if kind == "format" and expected == "regex":
        try:
            re.compile(value)
            reason = "it is not a regular expression"
        except re.error as exc:
            reason = str(exc)
        return (f"{field}: {value!r} is not a valid regular expression ({reason}); fix it (a literal '(', '[', '*' "
                "or '+' needs a backslash before it)")
    if kind in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        return f"{field}: {found(value)} is out of range; write {wanted(schema)}"
    if kind == "minLength":
        return f"{field}: must not be empty; write {wanted(schema)}"
    if kind == "maxLength":
        return f"{field}: is longer than {expected} characters; shorten it"
    if kind == "minItems":
        return f"{field}: needs at least {expected} item(s); add them"
    if kind == "minProperties":
        return f"{field}: needs at least {expected} entry; add one"
    if kind == "uniqueItems":
        return f"{field}: lists the same item twice; keep each once"
    if kind in ("oneOf", "anyOf"):
        return alternatives(error, field)
    if kind == "not":
        names = expected.get("required", []) if isinstance(expected, dict) else []
        if names:
            return f"{field}: give only one of {' and '.join(map(repr, names))}, not both"
    return f"{field}: {error.message}"  # propertyNames, dependentSchemas and the rest say it well enough


def alternatives(error: ValidationError, field: str) -> str:
    """A ``oneOf``/``anyOf`` error: the branch meant by the value's type, else the choices."""
    value: Any = error.instance
    branches: Any = error.validator_value
    if all(isinstance(b, dict) and set(b) == {"required"} for b in branches):
        names = [b["required"][0] for b in branches]
        present = [n for n in names if isinstance(value, dict) and n in value]
        if present:
            return f"{field}: give only one of {' or '.join(map(repr, names))}, not both"
        return f"{field}: give one of {' or '.join(map(repr, names))}"
    same_type = [e for e in error.context if e.validator != "type" and len(e.relative_path) == 0]
    deeper = [e for e in error.context if len(e.relative_path) > 0]
    if deeper:
        best = max(deeper, key=lambda e: len(e.relative_path))
        inner = ".".join(str(p) for p in best.relative_path)
        return sentence(best, f"{field}.{inner}")
    if len(same_type) == 1:
        return sentence(same_type[0], field)
    choices = wanted(dict(error.schema) if isinstance(error.schema, dict) else {})
    return f"{field}: found {found(value)}; write {choices}"
