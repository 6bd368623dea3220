"""Load YAML keeping line numbers, so every config error can name file:line (schemas: ``lab.config.schemas``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

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


def plain(data: Any) -> Any:
    """Convert ruamel's round-trip containers to plain dicts and lists."""
    if isinstance(data, dict):
        return {str(k): plain(v) for k, v in data.items()}
    if isinstance(data, list):
        return [plain(v) for v in data]
    return data
