"""How a namespace sandbox boots: its seeded files, its sshd configuration and its init.

A sandbox is started as ``setsid --fork unshare --mount --pid --uts --fork --kill-child sh -c
INIT ...``: it is detached from the lab (it outlives ``lab sandbox up``), its mounts live only in
its own mount namespace (the host's mount table never sees them, and they vanish with the last
process), and SIGKILL to its init ends every process it runs. The network namespace stays the
host's, so its sshd and services are reached on loopback ports; sshd listens on 127.0.0.1 only.

Every value reaches the init script as a positional argument, never spliced into its text.
"""

from __future__ import annotations

import os
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

from lab.errors import InfrastructureError
from lab.util.atomic import write_text

# A marker argument on the init's command line: with the sandbox's home directory, it finds the
# processes of a sandbox whose state file was lost in a crash.
INIT_MARK = "lab-namespace-init"
SSHD_DIR = "etc/ssh/lab"
BOOT_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", "HOME": "/root"}

# Run as `sh init.sh MARK NAME HOME LOWER UPPER WORK MERGED HIDE`; after dropping the marker:
# $1 name  $2 home (host)  $3 lower  $4 upper  $5 work  $6 merged mount point  $7 directory to hide
INIT_SCRIPT = r"""
# The init of a lab namespace sandbox, written by lab. It mounts the sandbox's root, becomes it,
# starts sshd and reaps orphans until it is killed.
set -eu
shift
name=$1 home=$2 m=$6 hide=$7
read -r hostpid _ _ hostppid _ < /proc/self/stat
printf '%s %s\n' "$hostpid" "$hostppid" > "$home/init.pid.tmp"
mv -f "$home/init.pid.tmp" "$home/init.pid"
exec 3>"$home/sshd.log"
mount -t overlay "lab-$name" -o "lowerdir=$3,upperdir=$4,workdir=$5" "$m"
for d in proc dev sys tmp run; do [ -d "$m/$d" ] || mkdir -p "$m/$d"; done
mount -t proc -o nosuid,nodev,noexec proc "$m/proc"
mount --rbind /dev "$m/dev"
mount -t sysfs -o ro,nosuid,nodev,noexec sysfs "$m/sys" 2>/dev/null || true
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$m/tmp"
mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs "$m/run"
if [ -n "$hide" ] && [ -d "$m$hide" ]; then mount -t tmpfs -o mode=0700,size=1m tmpfs "$m$hide"; fi
printf '%s' "$name" > /proc/sys/kernel/hostname
cd "$m"
pivot_root . .
umount -l .
cd /
mkdir -p /run/sshd
chmod 0755 /run/sshd
/usr/sbin/sshd -t -f /etc/ssh/lab/sshd_config 2>&3
/usr/sbin/sshd -D -e -f /etc/ssh/lab/sshd_config </dev/null >/dev/null 2>&3 &
exec 3>&-
echo "lab: sandbox $name up (init pid $hostpid on the host)"
set +e
trap 'kill -KILL -1 2>/dev/null; exit 0' TERM INT
while :; do wait; sleep 1 & wait $!; done
"""


@dataclass(frozen=True)
class BootPaths:
    """Where one generation of a sandbox lives on the host."""

    home: Path
    lower: Path
    upper: Path
    work: Path
    merged: Path
    hide: str  # a host directory to cover inside the sandbox (the lab's state dir), or ""


def sshd_config(name: str, port: int) -> str:
    """The sandbox's sshd configuration: loopback only, keys only, root by key, VERBOSE logging."""
    return f"""# Written by lab for sandbox {name}: its own sshd, reachable on loopback only.
Port {port}
ListenAddress 127.0.0.1
AddressFamily inet
HostKey /{SSHD_DIR}/ssh_host_ed25519_key
PidFile /run/sshd.pid
LogLevel VERBOSE
PermitRootLogin prohibit-password
AuthenticationMethods publickey
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
AuthorizedKeysFile .ssh/authorized_keys
UsePAM no
UseDNS no
PrintMotd no
X11Forwarding no
AllowAgentForwarding no
AllowTcpForwarding no
PermitTunnel no
MaxStartups 50:30:100
Subsystem sftp internal-sftp
"""


def make_dirs_like(upper: Path, lower: Path, relative: str, default_mode: int) -> Path:
    """Create ``upper/relative`` with each level's mode and owner copied from ``lower`` where it exists.

    Overlayfs shows a directory present in both layers with the upper one's attributes, so a
    seeded /root or /etc must keep the lower layer's mode and owner.
    """
    current_upper, current_lower = upper, lower
    for part in Path(relative).parts:
        current_upper, current_lower = current_upper / part, current_lower / part
        if current_upper.is_dir():
            continue
        try:
            info = os.stat(current_lower)
            mode, uid, gid = stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid
        except OSError:
            mode, uid, gid = default_mode, 0, 0
        current_upper.mkdir()
        os.chown(current_upper, uid, gid)
        os.chmod(current_upper, mode)
    return current_upper


def write_file(path: Path, text: str, mode: int = 0o644) -> None:
    """Write a file of the sandbox's upper layer. Not atomic on purpose: a crash while seeding
    leaves a layer that the next reset throws away anyway, and skipping fsync keeps resets fast."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.chmod(path, mode)


def seed_upper(paths: BootPaths, name: str, port: int, host_key: Path, authorized_key: str) -> None:
    """Write what the sandbox needs before it boots into its (empty) upper layer."""
    sshd = make_dirs_like(paths.upper, paths.lower, SSHD_DIR, 0o755)
    write_file(sshd / "sshd_config", sshd_config(name, port))
    write_file(sshd / "ssh_host_ed25519_key", host_key.read_text(), mode=0o600)
    write_file(sshd / "ssh_host_ed25519_key.pub", host_key.with_name(host_key.name + ".pub").read_text())
    home = make_dirs_like(paths.upper, paths.lower, "root", 0o700)
    # root's home starts empty (an opaque directory hides the lower layer's): the host's shell
    # start-up files, history and caches do not leak into the sandbox.
    os.setxattr(home, "trusted.overlay.opaque", b"y")
    dot_ssh = make_dirs_like(paths.upper, paths.lower, "root/.ssh", 0o700)
    os.chmod(dot_ssh, 0o700)
    write_file(dot_ssh / "authorized_keys", authorized_key + "\n", mode=0o600)
    etc = make_dirs_like(paths.upper, paths.lower, "etc", 0o755)
    write_file(etc / "hostname", name + "\n")


def launch(paths: BootPaths, name: str) -> None:
    """Start the sandbox's init, detached from the lab; its output goes to ``home/console.log``."""
    script = paths.home / "init.sh"
    if not script.is_file() or script.read_text() != INIT_SCRIPT.lstrip():
        write_text(script, INIT_SCRIPT.lstrip(), mode=0o600)
    argv = ["setsid", "--fork", "unshare", "--mount", "--pid", "--uts", "--fork", "--kill-child",
            "--propagation", "private", "/bin/sh", str(script), INIT_MARK, name, str(paths.home),
            str(paths.lower), str(paths.upper), str(paths.work), str(paths.merged), paths.hide]
    with open(paths.home / "console.log", "ab") as console:
        try:
            result = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=console, stderr=console,
                                    env=BOOT_ENV, check=False, timeout=30)
        except FileNotFoundError as exc:
            raise InfrastructureError(f"cannot start sandbox {name}: {exc.filename} not found; install "
                                      "util-linux (Debian: apt-get install util-linux)") from exc
    if result.returncode != 0:
        raise InfrastructureError(f"cannot start sandbox {name}: setsid/unshare exited {result.returncode}; "
                                  f"see {paths.home / 'console.log'}")


def sshd_failed(log: Path) -> bool:
    """True if the sshd log says sshd gave up (a fatal error, no address to listen on)."""
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return False
    return "Cannot bind any address" in text or any(line.startswith("fatal:") for line in text.splitlines())


def tail(path: Path, lines: int = 5) -> str:
    """The last ``lines`` lines of ``path`` joined with " | " (empty if there is no such file)."""
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(text[-lines:])
