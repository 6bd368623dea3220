"""The provider registry: the built-ins, and providers other packages register under ``lab.providers``.

The third-party provider here is a real installed distribution: a package and its ``.dist-info``
(METADATA and entry_points.txt, as pip writes them) in a directory put on ``sys.path``, found
by ``importlib.metadata`` like any installed package.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from lab.config.labfile import load_lab
from lab.config.schemas import document, schema
from lab.errors import ConfigError
from lab.model import SandboxSpec
from lab.sandboxes import registry
from lab.sandboxes.base import PRODUCTION, HostHandle, Provider
from lab.sandboxes.local import LocalProvider
from tests.support.labfiles import REPO, CliResult, copy_default_lab

FAKE_PROVIDER = '''
"""A provider kept as one JSON file per host, as a third-party package would ship one."""

import json

from lab.sandboxes.base import HostHandle, Provider


class FakeProvider(Provider):
    name = "fake"

    def path(self, spec):
        return self.state_dir / "fake" / self.pool / f"{spec.name}.json"

    def reset(self, spec):
        self.path(spec).parent.mkdir(parents=True, exist_ok=True)
        self.path(spec).write_text(json.dumps({"root": "/srv/" + spec.name}))
        return self.current(spec)

    def current(self, spec):
        if not self.path(spec).exists():
            return None
        root = json.loads(self.path(spec).read_text())["root"]
        return HostHandle(spec.name, root, {"sandbox_root": root, "sandbox_name": spec.name})

    def destroy(self, spec):
        self.path(spec).unlink(missing_ok=True)

    def describe(self, spec):
        return {"state": "ready" if self.path(spec).exists() else "absent", "where": str(self.path(spec))}
'''


def install(site: Path, dist: str, entry_points: str, modules: dict[str, str]) -> None:
    """Write the distribution ``dist`` (version 1.0) into ``site`` as pip would: modules and dist-info."""
    for name, text in modules.items():
        (site / name).mkdir(parents=True)
        (site / name / "__init__.py").write_text(text)
    info = site / f"{dist.replace('-', '_')}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(entry_points)


@pytest.fixture
def site_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty directory on ``sys.path`` to install distributions into; the registry forgets them after."""
    site = tmp_path / "site"
    site.mkdir()
    with monkeypatch.context() as patch:
        patch.syspath_prepend(str(site))
        registry.refresh()
        yield site
    for name in [m for m in sys.modules if m.startswith(("fake_lab_provider", "clashing_provider"))]:
        del sys.modules[name]
    registry.refresh()


@pytest.fixture
def fake_installed(site_dir: Path) -> Path:
    install(site_dir, "fake-lab-provider", "[lab.providers]\nfake = fake_lab_provider:FakeProvider\n",
            {"fake_lab_provider": FAKE_PROVIDER})
    registry.refresh()
    return site_dir


def name_fake_in_inventory(lab_yml: Path) -> None:
    """Every sandbox of the lab names provider fake (the production hosts keep local)."""
    hosts = lab_yml.parent / "inventory" / "hosts.yml"
    text = hosts.read_text()
    assert "    sandboxes:\n      vars:\n        ansible_connection: local\n        lab_provider: local\n" in text
    hosts.write_text(text.replace("lab_provider: local", "lab_provider: fake", 1))


def default_provider(lab_yml: Path, name: str) -> None:
    """lab.yml's ``provider:`` (the default for hosts without lab_provider) set to ``name``."""
    text = lab_yml.read_text()
    assert "\nprovider: local\n" in text
    lab_yml.write_text(text.replace("\nprovider: local\n", f"\nprovider: {name}\n"))


def test_the_built_in_providers_are_registered() -> None:
    assert registry.provider_names() == ("local", "namespace", "static")
    assert registry.provider_class("local") is LocalProvider
    with pytest.raises(ConfigError, match=r"^unknown provider 'fake'; known: local, namespace, static$"):
        registry.provider_class("fake")


def test_the_schema_file_does_not_repeat_the_provider_names() -> None:
    assert "enum" not in document("lab")["properties"]["provider"]
    assert schema("lab")["properties"]["provider"]["enum"] == ["local", "namespace", "static"]


def test_a_provider_installed_as_a_package_is_registered_and_in_the_schema(fake_installed: Path) -> None:
    assert registry.provider_names() == ("fake", "local", "namespace", "static")
    assert registry.registered()["fake"].origin == "fake-lab-provider 1.0"
    provider = registry.provider_for("fake", fake_installed / "state", pool=PRODUCTION)
    assert isinstance(provider, Provider) and type(provider).__name__ == "FakeProvider"
    spec = SandboxSpec("prod-01", "debian-12", "fake")
    assert provider.current(spec) is None
    assert provider.up(spec) == HostHandle("prod-01", "/srv/prod-01", {"sandbox_root": "/srv/prod-01",
                                                                       "sandbox_name": "prod-01"})
    assert (fake_installed / "state" / "fake" / "production" / "prod-01.json").is_file()
    assert schema("lab")["properties"]["provider"]["enum"] == ["fake", "local", "namespace", "static"]


def test_lab_validate_accepts_a_host_of_an_installed_provider(
    fake_installed: Path, tmp_path: Path, run_cli: Callable[..., CliResult]
) -> None:
    lab_yml = copy_default_lab(tmp_path / "lab", sandboxes=2)
    name_fake_in_inventory(lab_yml)
    default_provider(lab_yml, "fake")
    result = run_cli("--lab", str(lab_yml), "validate")
    assert result.code == 0, result.err
    assert "    ts-sbx-01        platform debian-12      provider fake\n" in result.out
    assert "    ts-sbx-02        platform debian-12      provider fake\n" in result.out
    assert result.out.endswith("valid\n")


def test_without_the_package_the_same_lab_is_refused(site_dir: Path, tmp_path: Path) -> None:
    lab_yml = copy_default_lab(tmp_path / "lab", sandboxes=2)
    name_fake_in_inventory(lab_yml)
    with pytest.raises(ConfigError) as info:
        load_lab(lab_yml)
    assert "host 'ts-sbx-01': unknown sandbox provider 'fake'; use one of: local, namespace, static" in str(info.value)
    default_provider(lab_yml, "fake")
    with pytest.raises(ConfigError) as info:
        load_lab(lab_yml)
    assert "provider: found 'fake'; write one of 'local', 'namespace', 'static'" in str(info.value)


def test_the_cli_offers_an_installed_provider_in_a_new_process(fake_installed: Path, tmp_path: Path) -> None:
    lab_yml = copy_default_lab(tmp_path / "lab", sandboxes=1)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(fake_installed), str(REPO)]))
    result = subprocess.run([sys.executable, "-m", "lab", "--lab", str(lab_yml), "--provider", "fake", "validate"],
                            capture_output=True, text=True, env=env, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert "    ts-sbx-01        platform debian-12      provider fake\n" in result.stdout


def test_a_package_may_not_take_a_built_in_name(site_dir: Path) -> None:
    install(site_dir, "clashing-provider", "[lab.providers]\nlocal = clashing_provider:Other\n",
            {"clashing_provider": "class Other:\n    pass\n"})
    registry.refresh()
    with pytest.raises(ConfigError, match=r"^provider name 'local' of clashing-provider 1.0 "
                                          r"\(clashing_provider:Other\) is already taken by built-in; rename its "
                                          r"lab.providers entry point$"):
        registry.provider_names()


def test_an_entry_point_that_is_no_provider_is_refused_when_used(site_dir: Path) -> None:
    install(site_dir, "clashing-provider", "[lab.providers]\nother = clashing_provider:Other\n",
            {"clashing_provider": "class Other:\n    pass\n"})
    registry.refresh()
    assert "other" in registry.provider_names()
    with pytest.raises(ConfigError, match=r"^provider 'other' \(clashing_provider:Other, from clashing-provider "
                                          r"1.0\) is not a lab.sandboxes.base.Provider subclass; fix the package's "
                                          r"lab.providers entry point$"):
        registry.provider_class("other")
