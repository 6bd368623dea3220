"""What a Linux host says about its processes, namespaces, mounts and ports, read from /proc.

Used by the ``namespace`` provider to find what a sandbox left behind (after a crash, too) and
to prove that nothing is left: a pid is only "ours" while its start time still matches, so a
recycled pid is never killed by mistake.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path

from lab.errors import InfrastructureError

PROC = Path("/proc")
TCP_LISTEN = "0A"


def start_time(pid: int) -> int | None:
    """The start time of ``pid`` in clock ticks since boot, or None if it is gone or a zombie."""
    try:
        raw = (PROC / str(pid) / "stat").read_text()
    except (OSError, ValueError):
        return None
    fields = raw.rpartition(")")[2].split()  # the command name may hold spaces and parentheses
    if not fields or fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


def is_running(pid: int | None, started: int | None) -> bool:
    """True if ``pid`` runs and is the process that started at ``started`` (not a recycled pid)."""
    if not pid:
        return False
    now = start_time(pid)
    return now is not None and (started is None or now == started)


def namespace_of(pid: int, kind: str) -> str | None:
    """The ``kind`` namespace of ``pid`` (``pid:[4026532...]``), or None if the process is gone."""
    try:
        return os.readlink(PROC / str(pid) / "ns" / kind)
    except OSError:
        return None


def all_pids() -> list[int]:
    """Every process id visible in /proc."""
    return [int(entry.name) for entry in PROC.iterdir() if entry.name.isdigit()]


def arguments(pid: int) -> list[str]:
    """The command line of ``pid`` as a list (empty for kernel threads, zombies and vanished pids)."""
    try:
        raw = (PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode("utf-8", "replace") for part in raw.split(b"\0") if part]


def pids_in_namespace(kind: str, namespace: str) -> list[int]:
    """Every live process in the ``kind`` namespace ``namespace``."""
    return [pid for pid in all_pids() if namespace_of(pid, kind) == namespace and start_time(pid) is not None]


def pids_with_arguments(*wanted: str) -> list[int]:
    """Every live process whose command line holds each of ``wanted`` as a whole argument."""
    me = os.getpid()
    found = []
    for pid in all_pids():
        if pid == me:
            continue
        argv = arguments(pid)
        if argv and all(w in argv for w in wanted) and start_time(pid) is not None:
            found.append(pid)
    return found


def kill_and_wait(pids: Iterable[int], timeout: float, what: str) -> None:
    """SIGKILL ``pids`` and wait until none runs; InfrastructureError naming ``what`` if one survives."""
    targets = {pid: start_time(pid) for pid in pids}
    for pid, started in targets.items():
        if started is None:
            continue
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        except PermissionError as exc:
            raise InfrastructureError(f"cannot stop {what}: pid {pid}: {exc}; run the lab as root") from exc
    deadline = time.monotonic() + timeout
    while True:
        left = [pid for pid, started in targets.items() if started is not None and is_running(pid, started)]
        if not left:
            return
        if time.monotonic() >= deadline:
            raise InfrastructureError(f"{what}: processes {left} survived SIGKILL for {timeout:.0f}s")
        time.sleep(0.01)


def unescape_mount_path(field: str) -> str:
    """A mount point as /proc/self/mountinfo writes it (octal escapes for space, tab, newline, \\)."""
    out, i = [], 0
    while i < len(field):
        code = field[i + 1:i + 4]
        if field[i] == "\\" and len(code) == 3 and code.isdigit():
            out.append(chr(int(code, 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def mounts_under(directory: Path) -> list[str]:
    """Mount points of this mount namespace at or below ``directory``, deepest first."""
    prefix = str(directory).rstrip("/")
    found = []
    for line in (PROC / "self" / "mountinfo").read_text().splitlines():
        parts = line.split()
        if len(parts) > 4:
            point = unescape_mount_path(parts[4])
            if point == prefix or point.startswith(prefix + "/"):
                found.append(point)
    return sorted(found, key=len, reverse=True)


def detach_mounts(directory: Path) -> None:
    """Lazily unmount everything mounted at or below ``directory`` (left over from a crash)."""
    for point in mounts_under(directory):
        result = subprocess.run(["umount", "--lazy", point], capture_output=True, text=True, check=False)
        if result.returncode != 0 and point in mounts_under(directory):
            raise InfrastructureError(f"cannot unmount {point}: {result.stderr.strip()}")


def listening_addresses(port: int) -> list[str]:
    """Addresses with a TCP socket listening on ``port``, as ``ip:port`` (IPv4 and IPv6)."""
    found = []
    for table, width in (("tcp", 8), ("tcp6", 32)):
        try:
            lines = (PROC / "net" / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            if len(parts) < 4 or parts[3] != TCP_LISTEN:
                continue
            address, _, hex_port = parts[1].partition(":")
            if int(hex_port, 16) == port and len(address) == width:
                found.append(f"{decode_address(address)}:{port}")
    return found


def decode_address(hex_address: str) -> str:
    """An address from /proc/net/tcp{,6} (host byte order words) in its usual notation."""
    raw = bytes.fromhex(hex_address)
    words = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
    return socket.inet_ntop(socket.AF_INET if len(raw) == 4 else socket.AF_INET6, words)


def port_is_free(port: int) -> bool:
    """True if a listening socket could bind 127.0.0.1:``port`` now (TIME_WAIT leftovers do not count)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port(taken: set[int]) -> int:
    """A TCP port free on 127.0.0.1 that is not in ``taken`` (ports other sandboxes have claimed)."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
        if port not in taken:
            return port
    raise InfrastructureError("no free TCP port on 127.0.0.1 after 100 tries")


def ssh_banner(port: int, timeout: float) -> bytes | None:
    """The identification line an SSH server on 127.0.0.1:``port`` sends, or None if none answers."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            data = b""
            while b"\n" not in data and len(data) < 256:
                chunk = sock.recv(256)
                if not chunk:
                    break
                data += chunk
            sock.sendall(b"SSH-2.0-lab-probe\r\n")
    except OSError:
        return None
    line = data.split(b"\n", 1)[0].strip()
    return line if line.startswith(b"SSH-") else None
