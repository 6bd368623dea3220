"""The baseline portfolio packed once on the controller, for the baseline playbook's packed path.

The baseline playbook (``playbooks/baseline.yml``) installs the tree ``files/baseline/`` beside
it. Given ``lab_baseline_pack`` (a tar.gz of that tree on the controller) it unpacks the pack on
each host in one module run instead of copying file by file; campaigns and ``lab production up``
both pass it. The pack is named by the sha256 of its bytes and cached under the state directory:
it is rebuilt from the tree every time it is asked for, so a changed baseline file always gives a
new pack and a stale one is never used.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Iterable
from pathlib import Path

from lab.campaign.builds import pack_tree
from lab.errors import InfrastructureError
from lab.model import SandboxSpec
from lab.sandboxes.base import Golden
from lab.util.atomic import write_bytes
from lab.util.canonical import digest_of, sha256_hex

PACK_VARIABLE = "lab_baseline_pack"


def baseline_tree(playbook: Path) -> Path:
    """The tree the baseline ``playbook`` installs: ``files/baseline/`` beside it."""
    return playbook.parent / "files" / "baseline"


def pack_baseline(tree: Path) -> bytes:
    """A reproducible tar.gz of ``tree`` as the playbook's ``copy`` (``mode: preserve``) installs it:
    every file with its own mode and the empty directories, symlinks followed."""
    files: dict[str, tuple[Path, int]] = {}
    empty: list[str] = []
    for top, dirs, names in os.walk(tree, followlinks=True):
        here = Path(top)
        for path in (here / name for name in names):
            files[path.relative_to(tree).as_posix()] = (path, stat.S_IMODE(path.stat().st_mode))
        if not dirs and not names and here != tree:
            empty.append(here.relative_to(tree).as_posix())
    return pack_tree(files, empty)


def baseline_pack(playbook: Path, state_dir: Path) -> Path | None:
    """The baseline tree of ``playbook`` packed now, at ``<state_dir>/packs/baseline-<sha256>.tar.gz``;
    None when the playbook has no ``files/baseline/`` tree to pack.

    Promises: the pack holds the tree's files as they are at this call (the name is the sha256 of
    the bytes just packed, and a cached file is rewritten unless it has exactly those bytes); it is
    written atomically, so concurrent callers never see half a pack. InfrastructureError if the
    tree cannot be read or the pack cannot be written.
    """
    tree = baseline_tree(playbook)
    if not tree.is_dir():
        return None
    try:
        data = pack_baseline(tree)
        path = (state_dir / "packs" / f"baseline-{hashlib.sha256(data).hexdigest()}.tar.gz").absolute()
        if not path.is_file() or path.read_bytes() != data:
            write_bytes(path, data)
    except OSError as exc:
        raise InfrastructureError(f"could not pack the baseline tree {tree}: {exc}") from exc
    return path


def baseline_vars(playbook: Path, state_dir: Path) -> dict[str, str]:
    """The extra variables that send the baseline ``playbook`` down its packed path (none without a tree)."""
    pack = baseline_pack(playbook, state_dir)
    return {} if pack is None else {PACK_VARIABLE: str(pack)}


def pack_digest(pack: Path) -> str:
    """The sha256 of ``pack``'s bytes, which ``baseline_pack`` put in its name."""
    return pack.name.removeprefix("baseline-").removesuffix(".tar.gz")


def goldens_of(playbook: Path, pack: Path | None, specs: Iterable[SandboxSpec]) -> dict[str, Golden]:
    """The golden baseline of each sandbox of ``specs``, by name: keyed by the digest of everything
    the baseline installs on it (the pack's sha256, the baseline playbook's, the platform, the
    provider, and the host's inventory variables other than the connection settings ``ansible_*``,
    which the playbook may read). Any change to one of them gives another key. The playbook is
    read once for all of them."""
    common = {"pack": pack_digest(pack) if pack is not None else None, "playbook": sha256_hex(playbook.read_bytes())}
    goldens = {}
    for spec in specs:
        variables = {k: v for k, v in spec.host_vars.items() if not k.startswith("ansible_")}
        goldens[spec.name] = Golden(digest_of({
            **common,
            "platform": spec.platform,
            "provider": spec.provider,
            "variables": json.loads(json.dumps(variables, sort_keys=True, default=str)),
        }))
    return goldens
