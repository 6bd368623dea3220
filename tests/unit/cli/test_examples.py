"""The examples under examples/ (CI pipelines, systemd units) run lab commands that exist, with
options the CLI takes, and publish the reports they ask lab to write."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest
from ruamel.yaml import YAML

from lab.api import Lab
from lab.cli.app import cli
from tests.support.labfiles import lab_command

REPO = Path(__file__).resolve().parents[3]
EXAMPLES = REPO / "examples"
VARIABLE = re.compile(r"\$\{?[A-Za-z_][A-Za-z0-9_]*\}?|\$\([^)]*\)")


def yaml(path: Path) -> Any:
    return YAML(typ="safe").load(path.read_text())


def lab_arguments(line: str) -> list[str] | None:
    """The arguments of the lab command a shell line runs (None when it runs no lab), variables
    replaced by a placeholder value."""
    words = shlex.split(line, comments=True)
    while words and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", words[0]):
        words = words[1:]
    if words[:1] == ["exec"]:
        words = words[1:]
    if not words or Path(words[0]).name != "lab":
        return None
    return [VARIABLE.sub("V", word) for word in words[1:]]


def parsed(arguments: list[str]) -> tuple[str, dict[str, Any]]:
    """Parse ``lab ARGUMENTS`` as the CLI would (UsageError for an unknown command or option, a
    missing argument, a bad value); return the command's path and its parameters."""
    context = cli.make_context("lab", list(arguments))
    command: click.Command = cli
    rest = [*context._protected_args, *context.args]
    path = []
    while isinstance(command, click.Group):
        name, sub, rest = command.resolve_command(context, rest)
        assert name is not None and sub is not None, f"`lab {' '.join(arguments)}`: no command"
        path.append(name)
        context = sub.make_context(name, rest, parent=context)
        command = sub
        rest = [*context._protected_args, *context.args] if isinstance(command, click.Group) else []
    return " ".join(path), dict(context.params)


def shell_lines(text: str) -> Iterator[str]:
    yield from (line for line in text.replace("\\\n", " ").splitlines() if line.strip())


def gitlab_lines(path: Path) -> Iterator[str]:
    for job in yaml(path).values():
        if isinstance(job, dict):
            for key in ("before_script", "script", "after_script"):
                for line in job.get(key, []):
                    yield from shell_lines(line)


def github_lines(path: Path) -> Iterator[str]:
    for job in yaml(path)["jobs"].values():
        for step in job["steps"]:
            yield from shell_lines(step.get("run", ""))


def jenkins_lines(path: Path) -> Iterator[str]:
    text = path.read_text()
    for match in re.finditer(r"\bsh\s+'([^']*)'|\bscript:\s*'([^']*)'", text):
        yield from shell_lines(match.group(1) or match.group(2))


def systemd_lines(path: Path) -> Iterator[str]:
    for line in path.read_text().splitlines():
        key, _, value = line.partition("=")
        if key.startswith("Exec"):
            yield value.lstrip("-@:+!")


READERS = {"ci/gitlab-ci.yml": gitlab_lines, "ci/github-actions.yml": github_lines, "ci/Jenkinsfile": jenkins_lines,
           "systemd/lab-nightly.service": systemd_lines}


def lab_commands(example: str) -> list[tuple[str, dict[str, Any]]]:
    found = [lab_arguments(line) for line in READERS[example](EXAMPLES / example)]
    return [parsed(arguments) for arguments in found if arguments is not None]


def test_every_example_is_read() -> None:
    files = sorted(p.relative_to(EXAMPLES).as_posix() for p in EXAMPLES.rglob("*") if p.is_file())
    assert files == sorted([*READERS, "systemd/lab-nightly.timer"])


@pytest.mark.parametrize("example", ["ci/gitlab-ci.yml", "ci/github-actions.yml", "ci/Jenkinsfile"])
def test_ci_examples_build_register_run_and_keep_junit_and_html(example: str) -> None:
    commands = lab_commands(example)
    assert [name for name, _ in commands] == ["validate", "build", "run"]
    build, run = commands[1][1], commands[2][1]
    assert (build["version"], build["build_ref"]) == ("V", "V")  # "$VERSION", "$PRODUCT"
    # the version the example makes is one the default lab's care-planner takes from CI
    made = re.search(r"2\.3\.0\+nightly\.(?:\$\(date -u \+)?%Y%m%d%H%M", (EXAMPLES / example).read_text())
    assert made is not None
    with Lab(str(REPO / "lab.yml")) as lab:
        ci = lab.config.products["care-planner"].ci
    assert ci is not None and re.fullmatch(ci.versions, "2.3.0+nightly.202612050130")
    assert build["artifact"] == Path("dist/care-planner.tar.gz")
    assert run["build_ref"] == "V@V"
    assert (run["junit_output"], run["html_output"], run["json_output"]) == (
        Path("out/lab.junit.xml"), Path("out/lab.html"), Path("out/lab.json"))


def test_each_ci_system_publishes_the_junit_and_html_lab_writes() -> None:
    gitlab = yaml(EXAMPLES / "ci/gitlab-ci.yml")["lab"]["artifacts"]
    assert gitlab["reports"]["junit"] == "out/lab.junit.xml" and "out/lab.html" in gitlab["paths"]
    assert gitlab["when"] == "always"
    steps = yaml(EXAMPLES / "ci/github-actions.yml")["jobs"]["lab"]["steps"]
    junit = next(s for s in steps if s.get("uses", "").startswith("mikepenz/action-junit-report@"))
    kept = next(s for s in steps if s.get("uses", "").startswith("actions/upload-artifact@"))
    assert junit["with"]["report_paths"] == "out/lab.junit.xml" and junit["if"] == "always()"
    assert {"out/lab.html", "out/lab.junit.xml"} <= set(kept["with"]["path"].split())
    jenkins = (EXAMPLES / "ci/Jenkinsfile").read_text()
    assert "junit testResults: 'out/lab.junit.xml'" in jenkins
    assert "reportDir: 'out', reportFiles: 'lab.html'" in jenkins
    assert "if (code == 1) {\n                        unstable(" in jenkins


def test_the_nightly_unit_runs_the_latest_build_and_maps_exit_codes() -> None:
    [(name, run)] = lab_commands("systemd/lab-nightly.service")
    assert (name, run["build_ref"]) == ("run", "care-planner@latest")
    assert run["junit_output"] == Path("/srv/lab/reports/nightly/lab.junit.xml")
    assert run["html_output"] == Path("/srv/lab/reports/nightly/lab.html")
    unit = (EXAMPLES / "systemd/lab-nightly.service").read_text().splitlines()
    assert {"Type=oneshot", "SuccessExitStatus=1", "Restart=on-failure", "RestartPreventExitStatus=2"} <= set(unit)


def test_a_wrong_option_in_an_example_would_be_caught() -> None:
    with pytest.raises(click.UsageError, match="No such option '--junit-xml'"):
        parsed(lab_arguments('lab run "care-planner@$V" --junit-xml out/lab.xml') or [])
    with pytest.raises(click.UsageError, match="No such command 'nightly'"):
        parsed(["nightly"])


@pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                    reason="systemd-analyze is not installed; `apt-get install systemd` and run this test again")
def test_systemd_analyze_verifies_the_units(tmp_path: Path) -> None:
    # the unit names /opt/lab/bin/lab; verify checks the command exists, so point it at this lab
    service = (EXAMPLES / "systemd/lab-nightly.service").read_text()
    assert "ExecStart=/opt/lab/bin/lab " in service
    (tmp_path / "lab-nightly.service").write_text(service.replace("/opt/lab/bin/lab", lab_command()[0]))
    shutil.copy(EXAMPLES / "systemd/lab-nightly.timer", tmp_path)
    verified = subprocess.run(["systemd-analyze", "verify", "--man=no", "lab-nightly.service", "lab-nightly.timer"],
                              cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False)
    assert (verified.returncode, verified.stderr) == (0, "")
    broken = tmp_path / "lab-nightly.service"
    broken.write_text(broken.read_text().replace("Type=oneshot", "Type=oneshott"))
    complaint = subprocess.run(["systemd-analyze", "verify", "--man=no", "lab-nightly.service"], cwd=tmp_path,
                               capture_output=True, text=True, timeout=60, check=False)
    assert "Failed to parse service type" in complaint.stderr
