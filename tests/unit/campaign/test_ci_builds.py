"""Builds from CI without editing the lab: `lab build PRODUCT --version V (--artifact FILE | --source DIR)`
registers a version by digest; PRODUCT@VERSION and PRODUCT@latest then name it."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from lab import api
from lab.api.session import build_spec
from lab.errors import ConfigError, NotFoundError
from tests.support.labfiles import CliResult, copy_default_lab

NIGHTLY = "2.3.0+nightly.20261204"


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[api.Lab]:
    with api.Lab(str(copy_default_lab(tmp_path / "lab"))) as session:
        yield session


def sources(lab: api.Lab, variant: str = "2.0.0") -> list[Path]:
    root = lab.config.root / "products" / "care-planner"
    return [root / "app", root / variant]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_nightly_from_source_is_registered_without_touching_lab_yml(fresh: api.Lab) -> None:
    lab_yml = fresh.config.path.read_bytes()
    first = api.build(fresh, "care-planner", NIGHTLY, sources=sources(fresh))
    assert (first.new, first.build.ref) == (True, f"care-planner@{NIGHTLY}")
    assert first.build.artifact.parent == fresh.config.root / "artifacts" / "ci"
    assert first.build.artifact.name == f"care-planner-{NIGHTLY}-{first.build.digest[:12]}.tar.gz"
    assert sha256(first.build.artifact) == first.build.digest
    # the same trees packed by a declared build give the same bytes: packing is reproducible
    declared = api.build(fresh, "care-planner@2.0.0")
    assert declared.build.digest == first.build.digest
    again = api.build(fresh, f"care-planner@{NIGHTLY}", sources=sources(fresh))
    assert (again.new, again.build.digest) == (False, first.build.digest)
    assert fresh.config.path.read_bytes() == lab_yml


def test_an_artifact_is_copied_and_registered_by_its_digest(fresh: api.Lab, tmp_path: Path) -> None:
    built = tmp_path / "ci-output" / "care-planner.msi"
    built.parent.mkdir()
    built.write_bytes(b"MSI bytes of tonight's build\x00\x01")
    registered = api.build(fresh, "care-planner", "2.4.0-rc.1", artifact=built).build
    assert registered.digest == sha256(built)
    assert registered.artifact == fresh.config.root / "artifacts" / "ci" / \
        f"care-planner-2.4.0-rc.1-{registered.digest[:12]}.msi"
    assert registered.artifact.read_bytes() == built.read_bytes()
    built.unlink()  # CI cleans its workspace: the lab keeps its own copy
    assert api.build(fresh, "care-planner@2.4.0-rc.1").new is False


def test_the_same_version_with_other_content_is_refused_and_nothing_is_left(fresh: api.Lab) -> None:
    first = api.build(fresh, "care-planner", NIGHTLY, sources=sources(fresh)).build
    before = sorted(first.artifact.parent.iterdir())
    refused = re.escape(f"care-planner@{NIGHTLY} is registered with sha256 {first.digest}")
    with pytest.raises(ConfigError, match=refused):
        api.build(fresh, "care-planner", NIGHTLY, sources=sources(fresh, "2.1.0"))
    assert sorted(first.artifact.parent.iterdir()) == before
    other = first.artifact.parent.parent / "other.bin"
    other.write_bytes(b"other")
    with pytest.raises(ConfigError, match="give the changed build a new version"):
        api.build(fresh, "care-planner", NIGHTLY, artifact=other)
    assert sorted(first.artifact.parent.iterdir()) == before


@pytest.mark.parametrize(("version", "artifact", "use_sources", "message"), [
    ("3.0.0", None, True, r"version '3.0.0' does not match care-planner's ci_builds.versions"),
    ("latest", None, True, r"--version 'latest' is not a version"),
    ("2.3.0 nightly", None, True, r"--version '2.3.0 nightly' is not a version"),
    ("2.0.0", None, True, r"care-planner@2.0.0 is declared in lab.yml; build it with `lab build care-planner@2.0.0`"),
    ("2.3.0", None, False, r"give either --artifact FILE or --source DIR"),
    ("2.3.0", "missing.tar.gz", False, r"--artifact missing.tar.gz: no such file"),
])
def test_bad_registrations_say_what_to_do_and_register_nothing(fresh: api.Lab, version: str, artifact: str | None,
                                                               use_sources: bool, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        api.build(fresh, "care-planner", version, artifact=Path(artifact) if artifact else None,
                  sources=sources(fresh) if use_sources else ())
    assert fresh.store.builds("care-planner") == []
    assert not (fresh.config.root / "artifacts" / "ci").exists() or not any(
        (fresh.config.root / "artifacts" / "ci").iterdir())


def test_a_product_without_ci_builds_takes_no_unlisted_version(tmp_path: Path) -> None:
    lab_yml = copy_default_lab(tmp_path / "lab")
    text = lab_yml.read_text()
    start = text.index("    ci_builds:")
    lab_yml.write_text(text[:start] + text[text.index("    builds:"):])
    advice = re.escape("add `ci_builds: {versions: REGEX}`")
    with api.Lab(str(lab_yml)) as lab, pytest.raises(ConfigError, match=advice):
        api.build(lab, "care-planner", NIGHTLY, sources=sources(lab))


def test_latest_names_the_build_registered_last(fresh: api.Lab) -> None:
    with pytest.raises(NotFoundError, match="care-planner has no registered build"):
        api.gate(fresh, "care-planner@latest", "pilot")
    api.build(fresh, "care-planner", "2.3.0+nightly.20261205", sources=sources(fresh))
    api.build(fresh, "care-planner", "2.3.0+nightly.20261204", sources=sources(fresh, "2.1.0"))

    assert build_spec(fresh, "care-planner@latest").version == "2.3.0+nightly.20261204"
    api.build(fresh, "care-planner@2.2.0")
    assert build_spec(fresh, "care-planner@latest").version == "2.2.0"
    with pytest.raises(NotFoundError) as unknown:
        build_spec(fresh, "care-planner@2.3.0+nightly.1")
    assert str(unknown.value) == (
        "unknown build 'care-planner@2.3.0+nightly.1'; versions of care-planner: 2.0.0, 2.1.0, 2.2.0, "
        "2.3.0+nightly.20261204, 2.3.0+nightly.20261205; register it with "
        "`lab build care-planner --version 2.3.0+nightly.1 --artifact FILE` (or --source DIR)")


def test_the_cli_registers_a_nightly_and_refuses_a_half_command(fresh: api.Lab,
                                                                 run_cli: Callable[..., CliResult]) -> None:
    app, variant = sources(fresh)
    done = run_cli("--lab", str(fresh.config.path), "build", "care-planner", "--version", NIGHTLY,
                   "--source", str(app), "--source", str(variant))
    assert done.code == 0, done.err
    assert done.out.splitlines()[0] == f"care-planner@{NIGHTLY}: registered"
    half = run_cli("--lab", str(fresh.config.path), "build", "care-planner", "--version", "2.3.0+nightly.2")
    assert (half.code, half.out) == (2, "")
    assert half.err == ("lab: lab build care-planner --version 2.3.0+nightly.2: give either --artifact FILE or "
                        "--source DIR\n")
    both = run_cli("--lab", str(fresh.config.path), "build", "care-planner@2.3.0+nightly.3", "--version", "2.3.0",
                   "--source", str(app))
    assert both.code == 2 and "name two versions" in both.err
