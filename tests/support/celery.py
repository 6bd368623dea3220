"""A loopback redis-server and real `lab worker` processes for the celery executor's tests."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.support.labfiles import lab_command

NEEDS_REDIS = pytest.mark.skipif(
    shutil.which("redis-server") is None,
    reason="the celery executor's tests start a loopback redis-server: install it (Debian: apt-get install "
           "redis-server; .ci/run does) and run pytest tests/integration/test_celery_*.py")
KEY = "k" * 48


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def redis_server(where: Path) -> Iterator[str]:
    """A redis-server of the caller's own on 127.0.0.1 (a free port, no persistence), stopped at the
    end; its URL (database 0)."""
    port = free_port()
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", str(where)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True, text=True,
                             check=False).stdout.strip() != "PONG":
            assert time.monotonic() < deadline and proc.poll() is None, "redis-server did not start"
            time.sleep(0.1)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def redis_cli(url: str, *args: str) -> str:
    port, db = url.rsplit(":", 1)[1].split("/")
    return subprocess.run(["redis-cli", "-p", port, "-n", db, *args], capture_output=True, text=True, check=True).stdout


READ = {"string": ("get",), "list": ("lrange", "0", "-1"), "hash": ("hgetall",), "set": ("smembers",),
        "zset": ("zrange", "0", "-1")}


def redis_dump(url: str) -> dict[str, str]:
    """Every key of the database at ``url`` with its value as redis-cli prints it (strings, lists,
    hashes, sets, sorted sets); a key of another type fails the test rather than go unread."""
    dump = {}
    for key in filter(None, redis_cli(url, "--scan").splitlines()):
        kind = redis_cli(url, "type", key).strip()
        if kind == "none":  # gone (expired) between the scan and now
            continue
        assert kind in READ, f"redis key {key} of type {kind}: read it too"
        command, *args = READ[kind]
        dump[key] = redis_cli(url, command, key, *args)
    return dump


def use_celery(lab_yml: Path, url: str) -> None:
    """Put the celery executor in ``lab_yml``: broker ``url``, a share and a signing key beside it."""
    root = lab_yml.parent
    (root / "executor.key").write_text(KEY + "\n")
    (root / "executor.key").chmod(0o600)
    (root / "share").mkdir(exist_ok=True)
    with lab_yml.open("a") as handle:
        handle.write(f"executor:\n  kind: celery\n  broker: {url}\n  share: share\n  key_file: executor.key\n"
                     "  visibility_timeout: 300\n  time_limit: 280\n")


def start_worker(lab_yml: Path, zone: str, log: Path, env: dict[str, str] | None = None,
                 command: list[str] | None = None,
                 preexec: Callable[[], None] | None = None) -> subprocess.Popen[bytes]:
    """`lab worker --queue ZONE` for ``lab_yml`` (or ``command``, a worker of the caller's own) in a
    session of its own, once it says it is ready; ``preexec`` runs in the child before it starts."""
    start = log.stat().st_size if log.exists() else 0
    argv = command or [*lab_command(), "--lab", str(lab_yml), "worker", "--queue", zone]
    with log.open("ab") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=dict(os.environ, CI="1", **(env or {})),
                                start_new_session=True, preexec_fn=preexec)
    deadline = time.monotonic() + 120
    while b"ready." not in log.read_bytes()[start:]:
        assert time.monotonic() < deadline and proc.poll() is None, log.read_text()
        time.sleep(0.2)
    return proc


def stop_workers(workers: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM each worker's process group (a warm shutdown), SIGKILL it after 30 s."""
    for proc in workers:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
    for proc in workers:
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def cmdline(proc: Path) -> str:
    try:
        return (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
    except OSError:
        return ""


def kill_group(proc: subprocess.Popen[bytes], marker: str) -> None:
    """SIGKILL ``proc``'s process group, then the orphaned Ansible processes whose command line
    names ``marker`` (their run directory): a machine that died."""
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    kill_orphans(marker)


def kill_orphans(marker: str) -> None:
    """SIGKILL every process whose command line names ``marker`` (a run directory), until none is left:
    what a killed controller or worker had started in sessions of their own (ansible-playbook and its forks)."""
    for _ in range(50):
        found = [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit() and marker in cmdline(p)]
        if not found:
            return
        for pid in found:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.1)
    raise AssertionError(f"processes of {marker} did not stop")
