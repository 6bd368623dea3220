"""Builds: reproducible packing, and a digest that is the build's identity."""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

import pytest

from lab.campaign.builds import build_and_register, pack, sha256_file, verified_build
from lab.errors import ConfigError
from lab.evidence.store import Store
from lab.model import BuildSpec
from tests.support.labfiles import write


def tree(root: Path) -> Path:
    write(root / "opt/app/app.py", "print('hi')\n")
    write(root / "opt/app/VERSION", "1.0\n")
    (root / "opt/app/app.py").chmod(0o755)
    return root


def test_packing_is_reproducible_and_layered(tmp_path: Path) -> None:
    base = tree(tmp_path / "base")
    overlay = write(tmp_path / "overlay/opt/app/VERSION", "1.1\n").parents[2]
    first = pack([base, overlay])
    (base / "opt/app/app.py").touch()  # a new mtime must not change the artifact
    assert pack([base, overlay]) == first
    with tarfile.open(fileobj=io.BytesIO(first)) as tar:
        names = tar.getnames()
        assert names == ["opt", "opt/app", "opt/app/VERSION", "opt/app/app.py"]
        version = tar.extractfile("opt/app/VERSION")
        assert version is not None and version.read() == b"1.1\n"
        assert tar.getmember("opt/app/app.py").mode == 0o755
        assert {m.mtime for m in tar.getmembers()} == {1_767_225_600}


def test_register_then_verify(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.sqlite3")
    spec = BuildSpec("app", "1.0", tmp_path / "out/app-1.0.tgz", (tree(tmp_path / "src"),), None)
    registered, new = build_and_register(spec, store)
    assert new is True
    assert registered.digest == sha256_file(spec.artifact) == hashlib.sha256(spec.artifact.read_bytes()).hexdigest()
    assert build_and_register(spec, store) == (registered, False)
    assert verified_build(spec, store) == registered
    spec.artifact.write_bytes(b"other bytes")
    with pytest.raises(ConfigError, match="the artifact changed since registration"):
        verified_build(spec, store)
    spec.artifact.unlink()
    with pytest.raises(ConfigError, match="is missing; restore it"):
        verified_build(spec, store)


def test_a_given_artifact_without_source(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.sqlite3")
    artifact = write(tmp_path / "vendor.msi", "MSI bytes")
    spec = BuildSpec("office", "16.0", artifact, (), hashlib.sha256(b"MSI bytes").hexdigest())
    registered, _ = build_and_register(spec, store)
    assert registered.digest == hashlib.sha256(b"MSI bytes").hexdigest()
    missing = BuildSpec("office", "17.0", tmp_path / "none.msi", (), None)
    with pytest.raises(ConfigError, match="not found and no source to build it from"):
        build_and_register(missing, store)
