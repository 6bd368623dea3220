"""The YAML loader refuses, as one ConfigError naming the file and line, what ruamel would only warn
about (a warning is an internal error under ``-W error`` and noise on stderr otherwise)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab.errors import ConfigError
from lab.util.yamlfile import load_yaml


def test_an_anchor_defined_twice_is_refused_naming_both_lines(tmp_path: Path) -> None:
    path = tmp_path / "lab.yml"
    path.write_text("name: &a demo\nstate_dir: &a .lab\nother: *a\n")
    with pytest.raises(ConfigError) as raised:
        load_yaml(path)
    assert raised.value.source == str(path)
    assert raised.value.line == 2
    assert "anchor &a is defined again (first on line 1)" in str(raised.value)


def test_a_collection_anchor_reused_on_a_scalar_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "suite.yml"
    path.write_text("base: &shared {a: 1}\nlist:\n  - &shared x\n")
    with pytest.raises(ConfigError) as raised:
        load_yaml(path)
    assert raised.value.line == 3
    assert "&shared is defined again (first on line 1)" in str(raised.value)


def test_distinct_anchors_and_their_aliases_load(tmp_path: Path) -> None:
    path = tmp_path / "lab.yml"
    path.write_text("a: &one 1\nb: &two [x, y]\nc: *one\nd: *two\n")
    assert load_yaml(path) == {"a": 1, "b": ["x", "y"], "c": 1, "d": ["x", "y"]}
