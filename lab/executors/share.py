"""The artifact share: builds by sha256 in one directory both the controller and the workers reach.

Tasks never carry an artifact: the controller puts the build into the share under its digest
before publishing, and a worker copies it into its own cache and checks the digest before
using it, so a worker deploys exactly the build that was tested, byte for byte, or nothing.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

from lab.errors import InfrastructureError

CHUNK = 1 << 20


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def copy_checked(source: Path, target: Path, digest: str) -> Path:
    """Copy ``source`` to ``target`` atomically when its sha256 is ``digest``; InfrastructureError (and
    nothing written) otherwise. A ``target`` already there with that digest is kept."""
    if target.is_file() and sha256_of(target) == digest:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    os.close(handle)
    try:
        shutil.copyfile(source, temporary)
        found = sha256_of(Path(temporary))
        if found != digest:
            raise InfrastructureError(f"artifact {source} has sha256 {found}, expected {digest}: refusing it")
        os.replace(temporary, target)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
    return target


def publish(share: Path, artifact: Path, digest: str) -> Path:
    """Put ``artifact`` into ``share`` under its ``digest`` (checked); the path there."""
    return copy_checked(artifact, share / digest, digest)


def fetch(share: Path, digest: str, cache: Path, name: str) -> Path:
    """The build ``digest`` copied from ``share`` into ``cache`` (as ``name``, the file name the
    playbooks see) and checked; InfrastructureError when the share lacks it or it differs."""
    source = share / digest
    if not source.is_file():
        raise InfrastructureError(f"the artifact share {share} has no build with sha256 {digest}")
    return copy_checked(source, cache / digest / name, digest)
