"""playbooks/files/lab_host.py, deploy's helper on a target: the digest check, a sandbox's install,
and on a production host an install with a restore point, exactly-once install records, and a
rollback that gives back the tree as it was."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

from lab.campaign.builds import pack
from tests.support.labfiles import REPO, write

HELPER = REPO / "playbooks" / "files" / "lab_host.py"


def helper(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(HELPER), *args, "--root", str(root), "--product", "app"],
                          capture_output=True, text=True, timeout=30, check=False)


def artifact(tmp: Path, name: str, files: dict[str, str]) -> tuple[Path, str]:
    source = tmp / f"src-{name}"
    for path, text in files.items():
        write(source / path, text)
    (source / "usr/bin").mkdir(parents=True, exist_ok=True)
    data = pack([source])
    out = tmp / f"{name}.tar.gz"
    out.write_bytes(data)
    return out, hashlib.sha256(data).hexdigest()


def install(root: Path, archive: Path, digest: str, version: str) -> dict[str, object]:
    target = root / "var/lib/lab/artifacts" / archive.name
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(archive.read_bytes())
    done = helper(root, "install", "--digest", digest, "--version", version, "--artifact", str(target),
                  "--note", f"test={version}")
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout)
    return result


def tree(root: Path) -> dict[str, tuple[int, str]]:
    """Every file under ``root`` except lab's own bookkeeping: path -> (mode, content)."""
    return {p.relative_to(root).as_posix(): (p.stat().st_mode & 0o7777, p.read_text())
            for p in sorted(root.rglob("*")) if p.is_file() and not p.relative_to(root).as_posix().startswith(
                ("var/lib/lab/restore", "var/lib/lab/artifacts", "var/log/"))}


def log(root: Path) -> list[list[str]]:
    path = root / "var/log/lab-deploy.log"
    return [line.split()[1:] for line in path.read_text().splitlines()] if path.exists() else []


def test_install_then_restore_gives_back_the_tree_it_overwrote(tmp_path: Path) -> None:
    root = tmp_path / "host"
    write(root / "opt/shared/lib.py", "API = 1\n")  # a baseline file the candidate overwrites
    old, old_digest = artifact(tmp_path, "old", {"opt/app/VERSION": "1\n", "opt/app/old-only.txt": "x\n"})
    new, new_digest = artifact(tmp_path, "new", {"opt/app/VERSION": "2\n", "opt/shared/lib.py": "API = 2\n",
                                                 "opt/app/plugins/new.py": "new\n"})
    install(root, old, old_digest, "1.0")
    before = tree(root)
    assert install(root, new, new_digest, "2.0")["installed"] is True
    assert (root / "opt/shared/lib.py").read_text() == "API = 2\n"
    assert json.loads((root / "var/lib/lab/installed/app.json").read_text())["version"] == "2.0"

    restored = helper(root, "restore", "--digest", new_digest, "--artifact", new.name, "--note", "undo")
    assert restored.returncode == 0, restored.stderr
    assert json.loads(restored.stdout) == {"changed": True, "restored": "1.0"}
    assert tree(root) == before  # overwritten files back, added files and the new directory gone
    assert not (root / "opt/app/plugins").exists()
    assert not (root / "var/lib/lab/restore/app" / new_digest).exists()
    assert sorted(p.name for p in (root / "var/lib/lab/artifacts").iterdir()) == ["old.tar.gz"]
    assert log(root) == [["deploy", "app", "1.0", old_digest, "test=1.0"], ["deploy", "app", "2.0", new_digest,
                         "test=2.0"], ["rollback", "app", new_digest, "->", "1.0", "undo"]]
    again = helper(root, "restore", "--digest", new_digest, "--note", "again")  # nothing left to undo
    assert (again.returncode, json.loads(again.stdout)) == (0, {"changed": False, "restored": None})
    assert len(log(root)) == 3


def test_a_build_already_installed_is_not_installed_or_logged_twice(tmp_path: Path) -> None:
    root = tmp_path / "host"
    build, digest = artifact(tmp_path, "a", {"opt/app/VERSION": "1\n"})
    assert install(root, build, digest, "1.0")["installed"] is True
    assert install(root, build, digest, "1.0") == {"installed": False, "previous": None, "digest": digest}
    assert log(root) == [["deploy", "app", "1.0", digest, "test=1.0"]]


def test_an_install_interrupted_after_its_restore_point_keeps_the_original_restore_point(tmp_path: Path) -> None:
    root = tmp_path / "host"
    write(root / "opt/app/VERSION", "1\n")
    build, digest = artifact(tmp_path, "b", {"opt/app/VERSION": "2\n"})
    install(root, build, digest, "2.0")
    manifest = root / "var/lib/lab/restore/app" / digest / "manifest.json"
    kept = manifest.read_text()
    (root / "var/lib/lab/installed/app.json").unlink()  # as if killed after unpacking, before the record
    install(root, build, digest, "2.0")
    assert manifest.read_text() == kept  # not retaken over the candidate's own files
    assert helper(root, "restore", "--digest", digest, "--note", "x").returncode == 0
    assert (root / "opt/app/VERSION").read_text() == "1\n"
    assert not (root / "var/lib/lab/installed/app.json").exists()  # there was no record before


def test_unpacking_gives_the_same_tree_as_gnu_tar(tmp_path: Path) -> None:
    build, digest = artifact(tmp_path, "c", {"opt/app/run.sh": "#!/bin/sh\n", "etc/app.conf": "a = 1\n"})
    (tmp_path / "src-c/opt/app/run.sh").chmod(0o755)
    data = pack([tmp_path / "src-c"])
    build.write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    by_tar = tmp_path / "by-tar"
    by_tar.mkdir()
    subprocess.run(["tar", "-xzf", str(build), "-C", str(by_tar)], check=True)
    by_helper = tmp_path / "by-helper"
    install(by_helper, build, digest, "1.0")

    def listing(root: Path) -> dict[str, tuple[int, int, bytes]]:
        return {p.relative_to(root).as_posix(): (p.stat().st_mode, int(p.stat().st_mtime),
                                                  p.read_bytes() if p.is_file() else b"")
                for p in root.rglob("*") if not p.relative_to(root).as_posix().startswith("var")}

    assert listing(by_helper) == listing(by_tar)
    assert (by_helper / "opt/app/run.sh").stat().st_mode & 0o777 == 0o755


def test_a_member_outside_the_root_is_refused_and_nothing_is_installed(tmp_path: Path) -> None:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:gz") as tar:
        info = tarfile.TarInfo("../escaped.txt")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"bad"))
    archive = tmp_path / "evil.tar.gz"
    archive.write_bytes(raw.getvalue())
    root = tmp_path / "host"
    root.mkdir()
    digest = hashlib.sha256(raw.getvalue()).hexdigest()  # the registered build: the digest check passes
    result = helper(root, "install", "--digest", digest, "--version", "6.6.6", "--artifact", str(archive))
    assert result.returncode == 1 and "refusing path outside the root: '../escaped.txt'" in result.stderr
    assert not (tmp_path / "escaped.txt").exists() and not (root / "var/lib/lab/installed/app.json").exists()


def test_place_unpacks_and_records_the_build_without_a_restore_point_or_log(tmp_path: Path) -> None:
    root = tmp_path / "sandbox"
    write(root / "opt/app/VERSION", "0\n")
    build, digest = artifact(tmp_path, "p", {"opt/app/VERSION": "3\n", "etc/app.conf": "a = 1\n"})
    done = helper(root, "place", "--digest", digest, "--version", "3.0", "--artifact", str(build))
    assert (done.returncode, json.loads(done.stdout)) == (0, {"installed": True, "digest": digest})
    assert (root / "opt/app/VERSION").read_text() == "3\n"
    assert json.loads((root / "var/lib/lab/installed/app.json").read_text()) == {
        "product": "app", "version": "3.0", "digest": digest}
    assert not (root / "var/lib/lab/restore").exists() and log(root) == []


def test_an_artifact_that_is_not_the_registered_build_is_refused_before_anything_changes(tmp_path: Path) -> None:
    build, digest = artifact(tmp_path, "x", {"opt/app/VERSION": "9\n"})
    wrong = "f" * 64
    for command in ("place", "install"):
        root = tmp_path / command
        root.mkdir()
        done = helper(root, command, "--digest", wrong, "--version", "9", "--artifact", str(build), "--note", "n")
        said = f"lab_host {command}: artifact on the target has sha256 {digest}, expected {wrong}"
        assert (done.returncode, done.stdout, done.stderr) == (1, "", said + "\n")
        assert sorted(p.name for p in root.iterdir()) == []  # nothing unpacked, recorded or logged
