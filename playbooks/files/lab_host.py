"""lab's helper on a target: check a build's digest and install it (with a restore point on a
production host), roll back, keep the host's log.

Run by playbooks/deploy.yml (after the artifact was copied) and playbooks/rollback.yml, through
Ansible's ``script`` module: one module run per host for the whole install. Python 3.8+, stdlib
only. Prints one JSON object; on an error, one line to stderr (the lab shows it as the failed
task's message) and exits 1. ``place`` and ``install`` first check that the artifact A on the target has sha256 D
(so what is tested is exactly what was registered) and answer with its "digest".

  lab_host.py place --root R --product P --version V --digest D --artifact A
      A sandbox's deploy: unpack A under R (as ``tar -x`` does) and write the install record.
  lab_host.py install --root R --product P --version V --digest D --artifact A --note TEXT
      A production host's deploy (a staged rollout): install the build whose artifact A is on
      the host. Nothing happens when the install record already says D, so a host records each
      build it gets exactly once. Otherwise: keep a restore point for D first (once: a
      complete one is never retaken, so a repeated install after a crash cannot save the
      candidate's own files) - a tar of every file A would overwrite plus the install record,
      and the list of paths A would add; restore points of other builds of P are dropped -
      then unpack A under R (as ``tar -x`` does: modes kept, nothing outside R), append one
      line to <root>/var/log/lab-deploy.log and write the install record atomically.
  lab_host.py restore --root R --product P --digest D [--artifact A] --note TEXT
      Undo digest D: remove what it added, put back what it overwrote (and the previous
      install record), remove the copied artifact A, log it, drop the restore point. Nothing
      to do when D never got here.
"""

import argparse
import datetime
import hashlib
import json
import os
import shutil
import sys
import tarfile
import tempfile

LOG = "var/log/lab-deploy.log"


def registry_path(product):
    return "var/lib/lab/installed/%s.json" % product


def points_dir(root, product):
    return os.path.join(root, "var/lib/lab/restore", product)


def under(root, name):
    """``name`` (a relative path from an archive or a record) joined under ``root``, refusing escapes."""
    clean = os.path.normpath(name)
    if clean.startswith("..") or os.path.isabs(clean) or clean in ("", "."):
        raise ValueError("refusing path outside the root: %r" % name)
    return os.path.join(root, clean), clean


def read_json(path):
    try:
        with open(path) as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None


def write_atomic(path, data):
    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".%s." % os.path.basename(path), dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def log_line(root, text):
    """Append one line to the host's deploy log (O_APPEND: one write, never interleaved)."""
    path = os.path.join(root, LOG)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    stamp = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, ("%s %s\n" % (stamp, text)).encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def members(artifact):
    """(files, directories) the artifact holds, as clean relative paths."""
    files, dirs = [], []
    with tarfile.open(artifact) as tar:
        for member in tar.getmembers():
            _, name = under("/", member.name)
            (dirs if member.isdir() else files).append(name)
    return files, dirs


def keep_restore_point(args, current):
    root = args.root
    base = points_dir(root, args.product)
    point = os.path.join(base, args.digest)
    if os.path.exists(os.path.join(point, "manifest.json")):
        return
    if os.path.isdir(base):
        for other in os.listdir(base):
            shutil.rmtree(os.path.join(base, other), ignore_errors=True)
    files, dirs = members(args.artifact)
    files.append(registry_path(args.product))
    saved = [name for name in files if os.path.lexists(under(root, name)[0])]
    added = [name for name in files if name not in saved]
    new_dirs = [name for name in dirs if not os.path.isdir(under(root, name)[0])]
    os.makedirs(base, exist_ok=True)
    scratch = tempfile.mkdtemp(prefix=".%s." % args.digest[:12], dir=base)
    with tarfile.open(os.path.join(scratch, "saved.tar"), "w") as tar:
        for name in saved:
            tar.add(under(root, name)[0], arcname=name, recursive=False)
    manifest = {"product": args.product, "digest": args.digest, "previous": current,
                "saved": saved, "added": added, "new_dirs": new_dirs}
    write_atomic(os.path.join(scratch, "manifest.json"), json.dumps(manifest, indent=1).encode())
    os.replace(scratch, point)  # the restore point appears complete, or not at all


def unpack(archive, root):
    """Extract ``archive`` under ``root`` as ``tar -x`` would, refusing members outside it."""
    with tarfile.open(archive) as tar:
        for member in tar.getmembers():
            under(root, member.name)
            target = under(root, member.name)[0]
            if not member.isdir() and os.path.lexists(target) and not os.path.isdir(target):
                os.unlink(target)  # replace, never write through an existing link
        if hasattr(tarfile, "tar_filter"):
            tar.extractall(root, filter="tar")  # noqa: S202 - members were checked above
        else:
            tar.extractall(root)  # noqa: S202 - members were checked above


def check_digest(args):
    """Refuse an artifact on the target that is not the registered build."""
    found = sha256_of(args.artifact)
    if found != args.digest:
        raise ValueError("artifact on the target has sha256 %s, expected %s" % (found, args.digest))


def write_record(args):
    record = {"product": args.product, "version": args.version, "digest": args.digest}
    write_atomic(os.path.join(args.root, registry_path(args.product)), (json.dumps(record, indent=4) + "\n").encode())


def place(args):
    check_digest(args)
    unpack(args.artifact, args.root)
    write_record(args)
    return {"installed": True, "digest": args.digest}


def install(args):
    check_digest(args)
    current = read_json(os.path.join(args.root, registry_path(args.product)))
    if isinstance(current, dict) and current.get("digest") == args.digest:
        return {"installed": False, "previous": None, "digest": args.digest}
    keep_restore_point(args, current if isinstance(current, dict) else None)
    unpack(args.artifact, args.root)
    log_line(args.root, "deploy %s %s %s %s" % (args.product, args.version, args.digest, args.note))
    write_record(args)
    return {"installed": True, "previous": current, "digest": args.digest}


def restore(args):
    root = args.root
    point = os.path.join(points_dir(root, args.product), args.digest)
    manifest = read_json(os.path.join(point, "manifest.json"))
    if manifest is None:
        current = read_json(os.path.join(root, registry_path(args.product)))
        if isinstance(current, dict) and current.get("digest") == args.digest:
            raise RuntimeError("%s %s is installed but has no restore point" % (args.product, args.digest))
        return {"changed": False, "restored": None}
    for name in manifest["added"]:
        path = under(root, name)[0]
        if os.path.lexists(path) and not os.path.isdir(path):
            os.unlink(path)
    unpack(os.path.join(point, "saved.tar"), root)
    for name in sorted(manifest["new_dirs"], key=len, reverse=True):
        try:
            os.rmdir(under(root, name)[0])
        except OSError:
            pass  # not empty (something else lives there) or already gone
    if args.artifact:  # the candidate's copied artifact, when it is the candidate's indeed
        copied = os.path.join(root, "var/lib/lab/artifacts", os.path.basename(args.artifact))
        if os.path.isfile(copied) and sha256_of(copied) == args.digest:
            os.unlink(copied)
    previous = manifest.get("previous") or {}
    restored = previous.get("version")
    log_line(root, "rollback %s %s -> %s %s" % (args.product, args.digest, restored or "(none)", args.note))
    shutil.rmtree(point)
    return {"changed": True, "restored": restored}


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("place", "install", "restore"))
    parser.add_argument("--root", required=True)
    parser.add_argument("--product", required=True)
    parser.add_argument("--digest", required=True)
    parser.add_argument("--artifact")
    parser.add_argument("--version")
    parser.add_argument("--note", default="")
    args = parser.parse_args(argv)
    args.root = os.path.abspath(args.root)
    try:
        if args.command in ("place", "install") and not (args.artifact and args.version):
            parser.error("%s needs --artifact and --version" % args.command)
        result = {"place": place, "install": install, "restore": restore}[args.command](args)
    except (OSError, ValueError, RuntimeError, tarfile.TarError) as exc:
        sys.stderr.write("lab_host %s: %s\n" % (args.command, exc))
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
