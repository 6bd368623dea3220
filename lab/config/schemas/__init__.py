"""lab's JSON Schemas (the ``*.json`` files beside this module) and validation with file:line errors.

The contract of this package: ``schema(name)`` is ``<name>.json`` parsed, with the lists a registry
owns filled in; ``validate`` checks data loaded by ``lab.util.yamlfile.load_yaml`` against any
schema (these files refer to each other by file name, ``"$ref": "rollout.json"``) and raises
ConfigError naming the file, line and field.

A list a registry owns is never written in a schema file: ``lab.json``'s ``provider`` property
has no enum, and ``schema("lab")`` fills it in from the provider registry
(``lab.sandboxes.registry``: the built-ins and the ``lab.providers`` entry points), so a provider
installed as a package of its own is valid in lab.yml at once. ``FILLED`` says which lists.
"""

from __future__ import annotations

import copy
import json
import math
import re
from collections.abc import Callable, Sequence
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from lab.config.schemas.messages import sentence
from lab.errors import ConfigError
from lab.sandboxes.registry import provider_names
from lab.util.yamlfile import line_of

# schema name -> (path to a property in it, the registry's names that are its enum)
FILLED: dict[str, tuple[tuple[tuple[str, ...], Callable[[], tuple[str, ...]]], ...]] = {
    "lab": ((("properties", "provider"), provider_names),),
}


@cache
def document(name: str) -> dict[str, Any]:
    """The file ``lab/config/schemas/<name>.json`` parsed, as written."""
    text = resources.files(__name__).joinpath(f"{name}.json").read_text(encoding="utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def schema(name: str) -> dict[str, Any]:
    """The JSON Schema ``<name>.json`` with the enums of ``FILLED`` read from their registries now."""
    fills = FILLED.get(name, ())
    if not fills:
        return document(name)
    filled = copy.deepcopy(document(name))
    for path, names in fills:
        node = filled
        for key in path:
            node = node[key]
        node["enum"] = list(names())
    return filled


@cache
def registry() -> Registry[Any]:
    """Every schema of ``lab/config/schemas/``, so one refers to another by file name (``"$ref": "rollout.json"``).

    The files as written: a list ``FILLED`` fills in is checked where its schema is the one validated.
    """
    names = sorted(p.name for p in resources.files(__name__).iterdir() if p.name.endswith(".json"))
    return Registry().with_resources((name, DRAFT202012.create_resource(document(name[:-5]))) for name in names)


def finite_number(checker: Any, instance: Any) -> bool:
    """A JSON number that is a real quantity: ``.nan`` and ``.inf`` are numbers to YAML, never to lab."""
    return jsonschema.Draft202012Validator.TYPE_CHECKER.is_type(instance, "number") and math.isfinite(instance)


def finite_integer(checker: Any, instance: Any) -> bool:
    return jsonschema.Draft202012Validator.TYPE_CHECKER.is_type(instance, "integer") and math.isfinite(instance)


FORMATS = jsonschema.FormatChecker(formats=())


@FORMATS.checks("regex", raises=re.error)
def compiles(instance: object) -> bool:
    """A ``format: regex`` value must compile (Python's ``re``; the runners' dialects agree on the common part)."""
    if isinstance(instance, str):
        re.compile(instance)
    return True


Validator = jsonschema.validators.extend(  # type: ignore[no-untyped-call]
    jsonschema.Draft202012Validator,
    type_checker=jsonschema.Draft202012Validator.TYPE_CHECKER.redefine_many(
        {"number": finite_number, "integer": finite_integer}),
)


def validate(data: Any, schema_doc: dict[str, Any], source: Path, base: Sequence[Any] = ()) -> None:
    """Raise ConfigError for the first schema violation, naming file:line, the field, what is wrong and
    what to write instead (``lab.config.schemas.messages``). Numbers must be finite and ``format:
    regex`` values must compile."""
    validator = Validator(schema_doc, registry=registry(), format_checker=FORMATS)
    # the shallowest error first, and at one place a wrong type before what follows from it
    errors = sorted(validator.iter_errors(data),
                    key=lambda e: (len(e.absolute_path), list(map(str, e.path)), e.validator != "type"))
    if not errors:
        return
    error = errors[0]
    where = list(error.absolute_path)
    field = ".".join(str(p) for p in [*base, *where]) or "(top level)"
    line = line_of(data, where)
    if error.validator == "additionalProperties":
        unknown = sorted(set(map(str, error.instance)) - set(error.schema.get("properties", {})))
        line = line_of(data, [*where, unknown[0]]) if unknown else line
    raise ConfigError(sentence(error, field), source=str(source), line=line)
