"""The order of build versions: ``2.0.0 < 2.3.0-rc.1 < 2.3.0 < 2.3.0+nightly.20261204 < 2.3.0+nightly.20261205``.

Versions are compared like Semantic Versioning, with one addition CI needs: build metadata (the part
after ``+``, e.g. ``nightly.20261204``) is not ignored but orders builds of the same release, after
the plain release (as PEP 440 orders local versions). Dot-separated fields compare numbers as
numbers (``nightly.9 < nightly.10``) and numbers before words; trailing ``.0`` fields of the
release do not count (``2.3 == 2.3.0`` in order, the text breaking the tie).
"""

from __future__ import annotations

import re

# The text a version may be: what lab.yml's schema allows, and safe inside a file name.
VERSION_TEXT = re.compile(r"[0-9A-Za-z][0-9A-Za-z.+_-]*")

Field = tuple[int, int, str]


def fields(text: str) -> tuple[Field, ...]:
    """Dot-separated fields, each a comparable triple: numbers as (0, n, ""), words as (1, 0, word)."""
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in text.split(".") if part != "")


def version_key(version: str) -> tuple[object, ...]:
    """A sort key putting versions in the order of this module's docstring; total (the text breaks ties)."""
    main, plus, metadata = version.partition("+")
    release, dash, prerelease = main.partition("-")
    numbers = list(fields(release))
    while numbers and numbers[-1] == (0, 0, ""):
        numbers.pop()
    pre = (0, fields(prerelease)) if dash else (1, ())
    meta = (1, fields(metadata)) if plus else (0, ())
    return (tuple(numbers), pre, meta, version)


def sorted_versions(versions: list[str] | tuple[str, ...] | set[str]) -> list[str]:
    """``versions`` in ascending version order."""
    return sorted(versions, key=version_key)
