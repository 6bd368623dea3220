"""Provider local through the contract: the pool decides where hosts live, current() changes nothing."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from lab.model import SandboxSpec
from lab.sandboxes.base import PRODUCTION
from lab.sandboxes.local import LocalProvider


def test_a_production_host_lives_in_the_production_pool_and_is_up_only_after_a_reset(tmp_path: Path) -> None:
    provider = LocalProvider(tmp_path, pool=PRODUCTION)
    spec = SandboxSpec("prod-01", "debian-12", "local")
    assert provider.current(spec) is None and provider.tree(spec) is None
    assert provider.describe(spec) == {"state": "absent", "where": str(tmp_path / "production" / "prod-01")}
    assert not (tmp_path / "production").exists()  # asking changed nothing
    handle = provider.up(spec)
    root = tmp_path / "production" / "prod-01" / "root"
    port = json.loads((root.parent / "facts.json").read_text())["lab_port"]
    assert handle.root == str(root) and provider.tree(spec) == root
    assert handle.facts == {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
                            "sandbox_root": str(root), "sandbox_name": "prod-01", "lab_port": port}
    (root / "etc" / "kept").write_text("x")
    assert provider.up(spec) == handle and (root / "etc" / "kept").exists()  # up leaves a host that is up alone
    provider.destroy(spec)
    assert provider.current(spec) is None and not root.parent.exists()


def test_hosts_of_a_pool_never_share_a_port_even_while_one_is_down(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    offered = iter([41000, 41000, 41001])  # what the OS finds free: sbx-1's port again, as nothing listens on it
    monkeypatch.setattr("lab.sandboxes.local.free_loopback_port", lambda: next(offered))
    provider = LocalProvider(tmp_path)
    first, second = (provider.reset(SandboxSpec(name, "debian-12", "local")) for name in ("sbx-1", "sbx-2"))
    assert (first.facts["lab_port"], second.facts["lab_port"]) == (41000, 41001)
