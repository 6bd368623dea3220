"""The baseline pack: the tree as the playbook's copy installs it, named by its sha256, never stale."""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

import pytest

from lab.campaign.baseline import PACK_VARIABLE, baseline_pack, baseline_tree, baseline_vars, pack_baseline
from lab.errors import InfrastructureError
from tests.support.labfiles import write


def playbook_with_tree(root: Path) -> Path:
    """A baseline playbook with a small tree beside it: modes 0644, 0755, 0600, an empty directory, a symlink."""
    playbook = write(root / "playbooks" / "baseline.yml", "- hosts: all\n  tasks: []\n")
    tree = baseline_tree(playbook)
    write(tree / "etc" / "app.conf", "port = 1\n").chmod(0o644)
    write(tree / "usr" / "local" / "bin" / "app", "#!/bin/sh\n").chmod(0o755)
    write(tree / "etc" / "secret", "token\n").chmod(0o600)
    (tree / "var" / "spool").mkdir(parents=True)
    (tree / "etc" / "app-link.conf").symlink_to("app.conf")
    return playbook


def members(data: bytes) -> dict[str, tuple[str, int, bytes | None]]:
    """name -> (kind, mode, content) of every entry of a tar.gz."""
    found: dict[str, tuple[str, int, bytes | None]] = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for info in tar.getmembers():
            handle = tar.extractfile(info) if info.isfile() else None
            found[info.name] = ("dir" if info.isdir() else "file", info.mode, handle.read() if handle else None)
    return found


def test_the_pack_holds_every_file_with_its_own_mode_and_the_empty_directories(tmp_path: Path) -> None:
    playbook = playbook_with_tree(tmp_path)
    assert members(pack_baseline(baseline_tree(playbook))) == {
        "etc": ("dir", 0o755, None),
        "etc/app-link.conf": ("file", 0o644, b"port = 1\n"),
        "etc/app.conf": ("file", 0o644, b"port = 1\n"),
        "etc/secret": ("file", 0o600, b"token\n"),
        "usr": ("dir", 0o755, None),
        "usr/local": ("dir", 0o755, None),
        "usr/local/bin": ("dir", 0o755, None),
        "usr/local/bin/app": ("file", 0o755, b"#!/bin/sh\n"),
        "var": ("dir", 0o755, None),
        "var/spool": ("dir", 0o755, None),
    }


def test_the_pack_is_named_by_its_sha256_and_reproducible(tmp_path: Path) -> None:
    playbook = playbook_with_tree(tmp_path)
    pack = baseline_pack(playbook, tmp_path / "state")
    data = pack_baseline(baseline_tree(playbook))
    assert pack == (tmp_path / "state" / "packs" / f"baseline-{hashlib.sha256(data).hexdigest()}.tar.gz")
    assert pack.read_bytes() == data
    (baseline_tree(playbook) / "etc" / "app.conf").touch()  # a new modification time changes nothing
    assert baseline_pack(playbook, tmp_path / "state") == pack
    assert baseline_vars(playbook, tmp_path / "state") == {PACK_VARIABLE: str(pack)}


@pytest.mark.parametrize("change", ["content", "mode", "new file"])
def test_a_changed_tree_gives_a_new_pack_with_the_change(tmp_path: Path, change: str) -> None:
    playbook = playbook_with_tree(tmp_path)
    old = baseline_pack(playbook, tmp_path / "state")
    conf = baseline_tree(playbook) / "etc" / "app.conf"
    if change == "content":
        conf.write_text("port = 2\n")
    elif change == "mode":
        conf.chmod(0o640)
    else:
        write(baseline_tree(playbook) / "opt" / "new.txt", "new\n")
    new = baseline_pack(playbook, tmp_path / "state")
    assert old is not None and new is not None and new != old
    expected = {"content": ("file", 0o644, b"port = 2\n"), "mode": ("file", 0o640, b"port = 1\n"),
                "new file": ("file", 0o644, b"port = 1\n")}[change]
    assert members(new.read_bytes())["etc/app.conf"] == expected
    assert ("opt/new.txt" in members(new.read_bytes())) is (change == "new file")
    assert sorted(p.name for p in (tmp_path / "state" / "packs").iterdir()) == sorted([old.name, new.name])


def test_a_cached_pack_that_was_altered_is_written_again(tmp_path: Path) -> None:
    playbook = playbook_with_tree(tmp_path)
    pack = baseline_pack(playbook, tmp_path / "state")
    assert pack is not None
    pack.write_bytes(b"not the pack")
    assert baseline_pack(playbook, tmp_path / "state") == pack
    assert pack.read_bytes() == pack_baseline(baseline_tree(playbook))


def test_a_playbook_without_a_tree_gets_no_pack(tmp_path: Path) -> None:
    playbook = write(tmp_path / "custom" / "baseline.yml", "- hosts: all\n  tasks: []\n")
    assert baseline_pack(playbook, tmp_path / "state") is None
    assert baseline_vars(playbook, tmp_path / "state") == {}
    assert not (tmp_path / "state").exists()


def test_an_unreadable_tree_is_an_infrastructure_error(tmp_path: Path) -> None:
    playbook = playbook_with_tree(tmp_path)
    (baseline_tree(playbook) / "etc" / "dangling").symlink_to("nowhere")
    with pytest.raises(InfrastructureError, match=r"could not pack the baseline tree .*files/baseline: .*dangling"):
        baseline_pack(playbook, tmp_path / "state")
