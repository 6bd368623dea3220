"""A nightly CI job end to end, as real processes: register tonight's build without editing lab.yml,
run the latest registered build, and collect JUnit, HTML and JSON where CI asked for them."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.support.labfiles import copy_default_lab, run_lab

pytestmark = pytest.mark.integration
NIGHTLY = "2.3.0+nightly.1"


def test_build_from_source_then_run_latest_without_touching_lab_yml(tmp_path: Path) -> None:
    lab_yml = copy_default_lab(tmp_path / "lab", sandboxes=1)
    before = lab_yml.read_bytes()
    products = lab_yml.parent / "products" / "care-planner"
    built = run_lab(lab_yml, "build", "care-planner", "--version", NIGHTLY,
                    "--source", str(products / "app"), "--source", str(products / "2.0.0"))
    assert built.returncode == 0, built.stderr
    digest = built.stdout.split("sha256")[1].split()[0]
    out = tmp_path / "ci-artifacts"
    ran = run_lab(lab_yml, "run", "care-planner@latest", "--junit", str(out / "lab.junit.xml"),
                  "--html", str(out / "lab.html"), "--json", str(out / "lab.json"))
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert f"care-planner@{NIGHTLY} (sha256 {digest[:12]}…): PROMOTABLE to pilot" in ran.stdout
    report = json.loads((out / "lab.json").read_text())
    assert (report["build"]["version"], report["build"]["digest"], report["verdict"]["allowed"]) == (
        NIGHTLY, digest, True)
    suites = ET.parse(out / "lab.junit.xml").getroot().findall("testsuite")
    assert suites and all(
        {p.get("name"): p.get("value") for p in s.iter("property")}.get("version") == NIGHTLY for s in suites)
    assert f"care-planner@{NIGHTLY}" in (out / "lab.html").read_text()
    listed = json.loads(run_lab(lab_yml, "list", "--json").stdout)
    assert [c["build"] for c in listed["campaigns"]] == [f"care-planner@{NIGHTLY}"]
    assert lab_yml.read_bytes() == before
