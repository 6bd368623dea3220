"""Load YAML keeping line numbers, so every config error can name file:line (schemas: ``lab.config.schemas``).

Every file is read under limits (``Limits``) before a YAML object is built: it must be a regular
file no larger than ``max_bytes``; one document only; no tags beyond YAML's own and Ansible's
``!vault``/``!unsafe`` (never ``!!python/...``); and aliases are counted, with the size of the
data they expand to, so an alias bomb is refused in milliseconds instead of eating the machine.
"""

from __future__ import annotations

import datetime
import os
import re
import stat
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError, YAMLFutureWarning, YAMLWarning
from ruamel.yaml.events import (
    AliasEvent,
    CollectionEndEvent,
    CollectionStartEvent,
    DocumentStartEvent,
    Event,
    NodeEvent,
    ScalarEvent,
)

from lab.errors import ConfigError

STANDARD_TAGS = frozenset(f"tag:yaml.org,2002:{name}" for name in (
    "str", "int", "float", "bool", "null", "map", "seq", "timestamp", "binary", "omap", "set", "merge"))
ANSIBLE_TAGS = frozenset({"!vault", "!unsafe"})
ALLOWED_TAGS = STANDARD_TAGS | ANSIBLE_TAGS | {"!"}


@dataclass(frozen=True)
class Limits:
    """What one input file may hold. The defaults fit any real lab many times over; lab.yml's
    ``limits:`` section changes them for the files it names (``lab.config.labfile``)."""

    max_bytes: int = 2 * 1024 * 1024
    max_aliases: int = 1000
    max_nodes: int = 200_000  # scalars and collections after every alias is expanded
    max_depth: int = 64


DEFAULT_LIMITS = Limits()


def read_capped(path: Path, max_bytes: int, what: str = "file") -> bytes:
    """The bytes of ``path``, which must be a regular file of at most ``max_bytes``; ConfigError
    (naming the file, what it is instead and what to do) otherwise. A device, FIFO or directory is
    refused before it is opened, so ``/dev/zero`` or a pipe never hangs or fills memory."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise ConfigError(f"{what} not found; check the path", source=str(path)) from None
    except OSError as exc:
        raise ConfigError(f"cannot read the {what}: {exc.strerror}", source=str(path)) from None
    if not stat.S_ISREG(info.st_mode):
        kind = "a directory" if stat.S_ISDIR(info.st_mode) else "not a regular file (a device, pipe or socket)"
        raise ConfigError(f"the {what} is {kind}; give the path of a regular file", source=str(path))
    if info.st_size > max_bytes:
        raise ConfigError(too_large(info.st_size, max_bytes, what), source=str(path))
    try:
        with open(path, "rb") as handle:
            data = handle.read(max_bytes + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read the {what}: {exc.strerror}; check its permissions", source=str(path)) from None
    if len(data) > max_bytes:
        raise ConfigError(too_large(len(data), max_bytes, what), source=str(path))
    return data


def too_large(size: int, max_bytes: int, what: str) -> str:
    return (f"the {what} is larger than the limit of {max_bytes:,} bytes ({size:,} or more); split it, or raise "
            "limits.max_bytes in lab.yml if it really must be this large")


def decode(data: bytes, path: Path) -> str:
    """``data`` as UTF-8 text; ConfigError naming the line of the first bad byte otherwise."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise ConfigError(f"not UTF-8 text (byte 0x{data[exc.start]:02x}); save the file as UTF-8",
                          source=str(path), line=line) from None


def load_yaml(path: Path, limits: Limits = DEFAULT_LIMITS) -> Any:
    """Parse ``path`` (round-trip mode keeps each key's line) within ``limits``; raise ConfigError naming file:line."""
    text = decode(read_capped(path, limits.max_bytes), path)
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = False
    try:
        check_events(yaml.parse(text), limits, path)
        with warnings.catch_warnings():  # what ruamel only warns about is refused too, never printed or raised raw
            warnings.simplefilter("error", YAMLWarning)
            warnings.simplefilter("error", YAMLFutureWarning)
            return yaml.load(text)
    except (YAMLWarning, YAMLFutureWarning) as exc:
        raise ConfigError(f"questionable YAML: {' '.join(str(exc).split())}; fix it", source=str(path)) from None
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = " ".join(str(p) for p in (exc.context, exc.problem) if p)
        raise ConfigError(f"malformed YAML: {problem}; fix the syntax", source=str(path), line=line) from None
    except YAMLError as exc:
        raise ConfigError(f"malformed YAML: {exc}", source=str(path)) from None
    except RecursionError:
        raise ConfigError("the YAML is nested too deeply to read; flatten it", source=str(path)) from None
    except ValueError as exc:  # YAML's timestamps become dates: 2026-02-30 fails as Python builds it
        line, value = impossible_date(text)
        raise ConfigError(f"{value or 'a date'} is not a real calendar date ({exc}); write a date that exists, "
                          "e.g. 2026-02-28, or quote the value if it is not meant as a date",
                          source=str(path), line=line) from None


DATE = re.compile(r"(?<![\w.-])(\d{4})-(\d{1,2})-(\d{1,2})(?![\d])")


def impossible_date(text: str) -> tuple[int | None, str | None]:
    """The line and text of the first YYYY-MM-DD in ``text`` that names no real day, if any."""
    for number, line in enumerate(text.splitlines(), start=1):
        for match in DATE.finditer(line):
            try:
                datetime.date(*(int(part) for part in match.groups()))
            except ValueError:
                return number, match.group(0)
    return None, None


def check_events(events: Iterable[Event], limits: Limits, path: Path) -> None:
    """Walk the parser's events once, without building anything: one document, known tags only,
    at most ``max_aliases`` aliases, ``max_depth`` levels and ``max_nodes`` nodes once expanded, and
    each anchor defined once (a second ``&name`` would silently change what later ``*name`` mean)."""
    sizes: dict[str, int] = {}  # anchor -> nodes it expands to
    defined: dict[str, int] = {}  # anchor -> the line it is defined on
    stack: list[tuple[Any, int]] = []  # (anchor, total when it opened) per open collection
    documents = aliases = total = 0

    def refuse(message: str, event: Event) -> ConfigError:
        mark = event.start_mark
        return ConfigError(message, source=str(path), line=None if mark is None else mark.line + 1)

    for event in events:
        if isinstance(event, DocumentStartEvent):
            documents += 1
            if documents > 1:
                raise refuse("more than one YAML document (a second '---'); keep one document per file", event)
        tag = getattr(event, "tag", None)
        if isinstance(event, NodeEvent) and tag is not None and str(tag) not in ALLOWED_TAGS:
            raise refuse(f"YAML tag {tag!s} is not allowed (lab reads plain data only); remove the tag", event)
        if isinstance(event, ScalarEvent | CollectionStartEvent) and event.anchor is not None:
            anchor, line = str(event.anchor), event.start_mark.line + 1 if event.start_mark is not None else 0
            if anchor in defined:
                raise refuse(f"YAML anchor &{anchor} is defined again (first on line {defined[anchor]}); give each "
                             "anchor its own name", event)
            defined[anchor] = line
        if isinstance(event, AliasEvent):
            aliases += 1
            if aliases > limits.max_aliases:
                raise refuse(f"more than {limits.max_aliases} YAML aliases (*name); write the values out or raise "
                             "limits.max_aliases in lab.yml", event)
            total += sizes.get(str(event.anchor), 1)
        elif isinstance(event, ScalarEvent):
            total += 1
            if event.anchor is not None:
                sizes[str(event.anchor)] = 1
        elif isinstance(event, CollectionStartEvent):
            stack.append((event.anchor, total))
            total += 1
            if len(stack) > limits.max_depth:
                raise refuse(f"YAML nested more than {limits.max_depth} levels deep; flatten it", event)
        elif isinstance(event, CollectionEndEvent) and stack:
            anchor, opened = stack.pop()
            if anchor is not None:
                sizes[str(anchor)] = total - opened
        if total > limits.max_nodes:
            raise refuse(f"the YAML expands to more than {limits.max_nodes:,} values (aliases included: an alias "
                         "bomb?); write it out plainly or raise limits.max_nodes in lab.yml", event)


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
