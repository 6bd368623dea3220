"""Load YAML keeping line numbers, and validate it against a JSON Schema with file:line errors."""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
from referencing import Registry
from referencing.jsonschema import DRAFT202012
from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from lab.errors import ConfigError


def load_yaml(path: Path) -> Any:
    """Parse ``path`` (round-trip mode keeps each key's line); raise ConfigError naming file:line."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("file not found; check the path", source=str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read: {exc}", source=str(path)) from None
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = False
    try:
        return yaml.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = " ".join(str(p) for p in (exc.context, exc.problem) if p)
        raise ConfigError(f"malformed YAML: {problem}; fix the syntax", source=str(path), line=line) from None
    except YAMLError as exc:
        raise ConfigError(f"malformed YAML: {exc}", source=str(path)) from None


def line_of(data: Any, path: Sequence[Any]) -> int | None:
    """The 1-based line of the value at ``path`` in data loaded by ``load_yaml``, if known."""
    node, line = data, getattr(getattr(data, "lc", None), "line", None)
    for key in path:
        lc = getattr(node, "lc", None)
        try:
            if lc is not None:
                line = lc.key(key)[0] if isinstance(key, str) else lc.item(key)[0]
            node = node[key]
        except (KeyError, IndexError, TypeError, AttributeError):
            break
    return None if line is None else line + 1


@cache
def schema(name: str) -> dict[str, Any]:
    """The JSON Schema ``lab/config/schemas/<name>.json``."""
    text = resources.files("lab.config.schemas").joinpath(f"{name}.json").read_text(encoding="utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


@cache
def registry() -> Registry[Any]:
    """Every schema of ``lab/config/schemas/``, so one refers to another by file name (``"$ref": "rollout.json"``)."""
    names = sorted(p.name for p in resources.files("lab.config.schemas").iterdir() if p.name.endswith(".json"))
    return Registry().with_resources((name, DRAFT202012.create_resource(schema(name[:-5]))) for name in names)


def validate(data: Any, schema_doc: dict[str, Any], source: Path, base: Sequence[Any] = ()) -> None:
    """Raise ConfigError for the first schema violation, naming file:line and the field."""
    validator = jsonschema.Draft202012Validator(schema_doc, registry=registry())
    errors = sorted(validator.iter_errors(data), key=lambda e: (len(e.absolute_path), list(map(str, e.path))))
    if not errors:
        return
    error = errors[0]
    where = list(error.absolute_path)
    field = ".".join(str(p) for p in [*base, *where]) or "(top level)"
    if error.validator == "additionalProperties":
        unknown = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        allowed = ", ".join(sorted(error.schema.get("properties", {})))
        line = line_of(data, [*where, unknown[0]]) if unknown else line_of(data, where)
        raise ConfigError(
            f"unknown field {unknown[0]!r} in {field}; allowed fields: {allowed}", source=str(source), line=line
        )
    raise ConfigError(f"{field}: {error.message}", source=str(source), line=line_of(data, where))


def plain(data: Any) -> Any:
    """Convert ruamel's round-trip containers to plain dicts and lists."""
    if isinstance(data, dict):
        return {str(k): plain(v) for k, v in data.items()}
    if isinstance(data, list):
        return [plain(v) for v in data]
    return data
