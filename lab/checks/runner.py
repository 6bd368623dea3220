"""The lab's check runner: executes a manifest on a sandbox and prints one JSON line per result.

Stdlib only, Python 3.8+. The transport sends this file and a manifest (JSON) in one go;
parameters stay data, nothing from a suite is ever turned into code here.

Input (stdin or ``run_manifest``): {"format": 1, "suite": str, "root": str, "deadline": float (optional),
  "checks": [{"id": str, "type": str, "params": {...}, "timeout": float, "retries": int}, ...]}

Every process a check starts runs in a session of its own (so one check's timeout kills that
check's whole group). The runner answers for all of them: past the manifest's ``deadline``
(seconds: the suite's budget, after which the lab gives up on the round trip), when its parent
goes away (the lab was killed, or the SSH session closed and sshd left it behind) or on SIGTERM
or SIGHUP, it kills every session its checks started, then exits. So a suite that times out
leaves no check running on the sandbox, over any transport.
Output: one line per check: {"id", "status", "message", "evidence", "duration_ms", "attempts"},
then a last line {"end": true, "checks": n}.
"""

import errno
import json
import os
import queue
import re
import signal
import stat
import struct
import sys
import threading
import time


class LazyModule:
    """A stdlib module imported on its first use. Most manifests need few of these, and importing
    them all at start-up took longer than judging a thousand file checks."""

    def __init__(self, name):
        self.name = name

    def __getattr__(self, attribute):
        return getattr(__import__(self.name), attribute)


glob = LazyModule("glob")
hashlib = LazyModule("hashlib")
shlex = LazyModule("shlex")
shutil = LazyModule("shutil")
socket = LazyModule("socket")
subprocess = LazyModule("subprocess")

MAX_TEXT = 64 * 1024
HEAD_BYTES = 48 * 1024  # clip(): what is kept of a long output's start and end (as lab/util/clipping.py)
TAIL_BYTES = 16 * 1024
FORMAT = 1
PROC = "/proc"


class CheckFailed(Exception):
    """The check ran and the sandbox does not meet it."""


class CheckBroken(Exception):
    """The check could not be judged (bad parameter, missing tool, unexpected error)."""


class Failure(CheckFailed):
    """A failed check that carries its evidence."""

    def __init__(self, message, evidence):
        CheckFailed.__init__(self, message)
        self.evidence = evidence



def clip(data):
    """Keep evidence bounded, honestly: output (bytes, or text taken as UTF-8) of at most
    HEAD_BYTES + TAIL_BYTES as it is; longer output as its first HEAD_BYTES and last TAIL_BYTES
    around one line with its true size and the sha256 of all of it (lab/util/clipping.py reads
    that line; the report never clips it again)."""
    if not isinstance(data, bytes):
        data = data.encode("utf-8", "surrogatepass")
    if len(data) <= HEAD_BYTES + TAIL_BYTES:
        return decode(data)
    return clipped(data[:HEAD_BYTES], data[len(data) - TAIL_BYTES:], len(data), hashlib.sha256(data).hexdigest())


def clipped(head, tail, total, digest):
    """The marker text of clip(): ``head`` and ``tail`` (bytes) around the size and sha256 of the whole."""
    first = head.decode("utf-8", "ignore")
    last = tail.decode("utf-8", "ignore")
    marker = ("[... clipped by the runner: %d bytes in all, sha256 %s; "
              "the first %d and the last %d bytes are shown ...]") % (
        total, digest, len(first.encode("utf-8")), len(last.encode("utf-8")))
    return "%s\n%s\n%s" % (first, marker, last)


def read_body(response):
    """An HTTP body read in full but kept bounded: (its first MAX_TEXT * 4 bytes, its clip() text)."""
    digest, total, kept, tail = hashlib.sha256(), 0, b"", b""
    while True:
        chunk = response.read(65536)
        if not chunk:
            break
        digest.update(chunk)
        total += len(chunk)
        if len(kept) < MAX_TEXT * 4:
            kept += chunk[:MAX_TEXT * 4 - len(kept)]
        tail = (tail + chunk)[-TAIL_BYTES:]
    if total <= MAX_TEXT * 4:
        return kept, clip(kept)
    return kept, clipped(kept[:HEAD_BYTES], tail, total, digest.hexdigest())


def decode(data):
    return data.decode("utf-8", errors="replace")


def under_root(root, path):
    """Resolve a sandbox path under the sandbox root (``/`` on a real server)."""
    if not isinstance(path, str) or not path:
        raise CheckBroken("path must be a non-empty string, got %r" % (path,))
    if root in ("", "/"):
        return path
    return os.path.join(root, path.lstrip("/"))


# --- file -------------------------------------------------------------------------------------

FILE_KINDS = (("file", stat.S_ISREG), ("directory", stat.S_ISDIR), ("symlink", stat.S_ISLNK),
              ("socket", stat.S_ISSOCK), ("fifo", stat.S_ISFIFO), ("char", stat.S_ISCHR), ("block", stat.S_ISBLK))
MAX_SYMLINKS = 40  # the kernel's limit (ELOOP) on symlinks followed in one lookup
ABSENT = (errno.ENOENT, errno.ENOTDIR, errno.ELOOP)  # what ``test -e`` and ``stat`` count as "no such file"


def file_kind(mode):
    """The kind of a stat mode, by the names of the file check (``stat -c %F`` in short)."""
    for name, test in FILE_KINDS:
        if test(mode):
            return name
    return "unknown"


def sandbox_path(root, path, follow):
    """The host path of sandbox path ``path``, its symlinks resolved as the sandbox sees them.

    On a real server (root ``/``) the kernel resolves links and the path is returned as it is. Under a
    local sandbox root, every link on the way is followed by hand so that an absolute target stays
    inside the root; the last component only when ``follow``. OSError(ELOOP) past MAX_SYMLINKS links.
    """
    if root in ("", "/"):
        return path
    pending = [p for p in path.split("/") if p]
    current, hops = [], 0
    while pending:
        part = pending.pop(0)
        if part == ".":
            continue
        if part == "..":
            current = current[:-1]
            continue
        host = os.path.join(root, *current, part)
        if (pending or follow) and os.path.islink(host):
            hops += 1
            if hops > MAX_SYMLINKS:
                raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), path)
            target = os.readlink(host)
            if target.startswith("/"):
                current = []
            pending = [p for p in target.split("/") if p] + pending
            continue
        current.append(part)
    return os.path.join(root, *current)


def stat_path(root, path, follow):
    """(stat result, host path), or (None, the errno name) when nothing is there to judge.

    ``follow`` stats what a symlink points to (``stat -L``); otherwise the path itself (``stat``).
    A missing file, a dangling link, a loop of links or a file used as a directory is absent, as
    ``test -e`` says; any other failure (permission) is an error: the lab cannot tell.
    """
    try:
        host = sandbox_path(root, path, follow)
        return (os.stat(host) if follow else os.lstat(host)), host
    except OSError as exc:
        if exc.errno in ABSENT:
            return None, errno.errorcode.get(exc.errno, str(exc.errno))
        raise CheckBroken("cannot stat %s: %s" % (path, exc.strerror or exc)) from None


def account_id(ctx, value, path, what):
    """(id, name) wanted by an ``owner`` or ``group`` parameter, named by the sandbox's own file.

    An integer is an id. A string is a name in /etc/passwd (or /etc/group) under the sandbox root; a
    string of digits that no entry is named is an id (the rule chown(1) follows). (None, value)
    for a name that is not there.
    """
    if isinstance(value, bool) or not isinstance(value, (int, str)) or value == "" or \
            (isinstance(value, int) and value < 0):
        raise CheckBroken("%s must be a name or a non-negative id, got %r" % (what, value))
    if isinstance(value, int):
        return value, account_name(ctx, path, value)
    try:
        entries = account_entries(ctx, path)
    except CheckBroken:
        if value.isdigit():
            return int(value), None
        raise
    if value in entries.id_of_name:
        return entries.id_of_name[value], value
    return (int(value), None) if value.isdigit() else (None, value)


def account_name(ctx, path, number):
    """The first name /etc/passwd (or /etc/group) under the sandbox root gives ``number``, or None."""
    try:
        entries = account_entries(ctx, path)
    except CheckBroken:
        return None
    return entries.by_id.get(str(number))


def file_follow(params):
    """Whether the file check follows a symlink at ``path``: ``follow`` when given; otherwise yes,
    except for ``kind: symlink`` and ``target``, which are about the link itself."""
    follow = param_bool(params, "follow", None)
    about_link = params.get("kind") == "symlink" or "target" in params
    if follow is None:
        return not about_link
    if follow and params.get("kind") == "symlink":
        raise CheckBroken("kind: symlink needs follow: false (a followed path is never a symlink)")
    return follow


def file_problems(params, ctx, st, evidence):
    """What differs from the check's kind, mode, owner, group and target."""
    problems = []
    want_kind = params.get("kind")
    if want_kind is not None and want_kind != evidence["kind"]:
        problems.append("is a %s, expected a %s" % (evidence["kind"], want_kind))
    if "mode" in params:
        try:
            want_mode = int(str(params["mode"]), 8)
        except ValueError:
            raise CheckBroken("mode must be octal digits, got %r" % (params["mode"],)) from None
        if want_mode != st.st_mode & 0o7777:
            problems.append("has mode %s, expected %s" % (evidence["mode"], params["mode"]))
    for key, path, number in (("owner", "/etc/passwd", st.st_uid), ("group", "/etc/group", st.st_gid)):
        if key not in params:
            continue
        wanted, name = account_id(ctx, params[key], path, key)
        if wanted != number:
            have = "%s (%d)" % (evidence[key], number) if evidence[key] else "%d" % number
            want = "%s (%d)" % (name, wanted) if name and wanted is not None else \
                "%s (no such name in %s)" % (name, path) if wanted is None else "%d" % wanted
            problems.append("%s is %s, expected %s" % (key, have, want))
    if "target" in params:
        link = evidence.get("link_target")
        if link is None:
            problems.append("is not a symlink, expected one to %s" % params["target"])
        elif link != params["target"]:
            problems.append("links to %s, expected %s" % (link, params["target"]))
    return problems


def check_file(params, ctx):
    """A path exists (or not), with a kind, mode, owner, group, symlink target and content.

    ``follow`` (default true, false for ``kind: symlink`` and ``target``) judges what a symlink points
    to, as ``stat -L`` does; a dangling link then does not exist (``test -e``), and with ``follow:
    false`` it does. ``target`` is the link's own text, as ``readlink`` prints it. ``owner`` and
    ``group`` are names (from the sandbox's /etc/passwd and /etc/group) or ids.
    """
    shown = param_text(params, "path")
    want_exists = param_bool(params, "exists", True)
    want_kind = params.get("kind")
    if want_kind is not None and want_kind not in [name for name, _ in FILE_KINDS]:
        raise CheckBroken("kind must be one of %s, got %r" % (", ".join(n for n, _ in FILE_KINDS), want_kind))
    follow = file_follow(params)
    root = ctx["root"]
    evidence = {"path": shown, "follow": follow}
    link_stat, _ = stat_path(root, shown, False)
    if link_stat is not None and stat.S_ISLNK(link_stat.st_mode):
        try:
            evidence["link_target"] = os.readlink(sandbox_path(root, shown, False))
        except OSError as exc:
            raise CheckBroken("cannot read the symlink %s: %s" % (shown, exc.strerror or exc)) from None
    st, host = stat_path(root, shown, follow) if follow else (link_stat, None)
    evidence["exists"] = st is not None
    if st is None:
        why = ("%s is a dangling symlink (to %s; follow: true judges what it points to)"
               % (shown, evidence["link_target"]) if "link_target" in evidence else "%s does not exist" % shown)
        if want_exists:
            raise Failure(why, evidence)
        return why, evidence
    if host is None:
        host = sandbox_path(root, shown, False)
    evidence.update(kind=file_kind(st.st_mode), mode="%04o" % (st.st_mode & 0o7777), uid=st.st_uid,
                    gid=st.st_gid, owner=account_name(ctx, "/etc/passwd", st.st_uid),
                    group=account_name(ctx, "/etc/group", st.st_gid))
    if not want_exists:
        raise Failure("%s exists (a %s) but must not" % (shown, evidence["kind"]), evidence)
    problems = file_problems(params, ctx, st, evidence)
    if problems:
        raise Failure("%s %s" % (shown, "; ".join(problems)), evidence)
    if "sha256" in params or "contains" in params or "matches" in params:
        if evidence["kind"] != "file":
            raise CheckBroken("%s is a %s: sha256/contains/matches need a regular file" % (shown, evidence["kind"]))
        with open(host, "rb") as handle:
            data = handle.read()
        if "sha256" in params:
            digest = hashlib.sha256(data).hexdigest()
            evidence["sha256"] = digest
            if digest != str(params["sha256"]).lower():
                raise Failure("%s has sha256 %s, expected %s" % (shown, digest, params["sha256"]), evidence)
        text = decode(data)
        if "contains" in params or "matches" in params:
            evidence["content"] = clip(data)
        if "contains" in params and params["contains"] not in text:
            raise Failure("%s does not contain %r" % (shown, params["contains"]), evidence)
        if "matches" in params and not re.search(params["matches"], text, re.MULTILINE):
            raise Failure("%s does not match /%s/" % (shown, params["matches"]), evidence)
    return "%s is as expected" % shown, evidence


# --- command ----------------------------------------------------------------------------------

def sandbox_env(ctx, extra=None):
    env = dict(os.environ)
    root = ctx["root"]
    if root not in ("", "/"):
        bins = [os.path.join(root, p) for p in ("usr/local/bin", "usr/bin", "bin")]
        env["PATH"] = os.pathsep.join([*bins, env.get("PATH", "")])
        env["SANDBOX_ROOT"] = root
    env.update(extra or {})
    return env


def resolve_argv(argv, ctx):
    root = ctx["root"]
    if root in ("", "/") or "/" in argv[0]:
        if argv[0].startswith("/"):
            candidate = under_root(root, argv[0])
            if os.path.exists(candidate):
                return [candidate, *argv[1:]]
        return argv
    for sub in ("usr/local/bin", "usr/bin", "bin"):
        candidate = os.path.join(root, sub, argv[0])
        if os.path.exists(candidate):
            return [candidate, *argv[1:]]
    return argv


def run_process(argv, ctx, timeout, stdin_data=None, env=None, raw=False):
    """Run argv (no shell) in its own process group; kill the group on timeout. Output as text,
    or as the bytes written with ``raw``."""
    cwd = ctx["root"] if ctx["root"] not in ("",) else "/"
    try:
        proc = subprocess.Popen(
            argv, cwd=cwd, env=sandbox_env(ctx, env), stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
        )
    except OSError as exc:
        raise CheckBroken("cannot start %s: %s" % (argv[0], exc.strerror or exc)) from None
    proc.lab_started = start_time(proc.pid)  # not reaped yet: the pid is still this child's
    ctx["children"].append(proc)
    STARTED.append(proc)
    try:
        out, err = proc.communicate(stdin_data, timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(proc)
        out, err = proc.communicate()
        raise CheckBroken("%s timed out after %ss" % (argv[0], timeout)) from None
    if raw:
        return proc.returncode, out, err
    return proc.returncode, decode(out), decode(err)


def start_time(pid):
    """When ``pid`` started (clock ticks since boot, from /proc), or None where that is unknown."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as stat_file:
            fields = stat_file.read()
    except OSError:
        return None
    return int(fields[fields.rindex(b")") + 2:].split()[19])


def still_ours(proc):
    """Whether ``proc.pid`` still names the session our check led. A reaped leader's pid stays
    reserved while anything of its session lives, so a live process under that pid that started
    at another time is a stranger who got the number after our whole session ended."""
    now = start_time(proc.pid)
    return now is None or now == getattr(proc, "lab_started", now)


def kill_group(proc):
    """Kill the session a check's process leads: its process group, and every process that left
    the group for another but stayed in the session (a daemon double-forked by the check).
    Nothing is signalled once the pid names someone else's process."""
    if not still_ours(proc):
        return
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:
        pass
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            if os.getsid(int(name)) == proc.pid:
                os.kill(int(name), signal.SIGKILL)
        except OSError:
            pass


STARTED = []  # every process any check started: the runner kills their sessions when it must stop
STOPPING = threading.Lock()


def stop_everything(code):
    """Kill every session a check started, then end the runner at once with ``code``."""
    STOPPING.acquire()  # once, even if the watchdog and a signal race
    for proc in list(STARTED):
        kill_group(proc)
    try:
        sys.stdout.flush()
    except (OSError, ValueError):  # the reader is gone: nothing more to say to it
        code = code or 1
    os._exit(code)


def watch(deadline, parent):
    """Stop everything past ``deadline`` (monotonic; None: never) or when the parent is gone."""
    while True:
        if deadline is not None and time.monotonic() >= deadline:
            stop_everything(124)
        if os.getppid() != parent:
            stop_everything(129)
        time.sleep(0.1)


def guard(manifest):
    """Start the watchdog and the signal handlers that stop every check's processes with the runner."""
    budget = manifest.get("deadline")
    deadline = time.monotonic() + float(budget) if isinstance(budget, (int, float)) and budget > 0 else None
    threading.Thread(target=watch, args=(deadline, os.getppid()), daemon=True).start()
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, lambda number, frame: stop_everything(128 + number))


def check_command(params, ctx):
    command = params.get("command")
    argv = shlex.split(command) if isinstance(command, str) else list(command or [])
    if not argv:
        raise CheckBroken("command is empty")
    argv = resolve_argv([str(a) for a in argv], ctx)
    stdin_data = params.get("stdin", "").encode("utf-8") if params.get("stdin") else None
    code, out_bytes, err_bytes = run_process(argv, ctx, ctx["timeout"], stdin_data, params.get("env"), raw=True)
    out, err = decode(out_bytes), decode(err_bytes)
    evidence = {"command": params["command"], "exit_code": code, "stdout": clip(out_bytes), "stderr": clip(err_bytes)}
    want = params.get("exit_code", 0)
    if code != want:
        raise Failure("exit code %d, expected %d" % (code, want), evidence)
    for stream, text in (("stdout", out), ("stderr", err)):
        if stream in params and not re.search(params[stream], text, re.MULTILINE):
            raise Failure("%s does not match /%s/" % (stream, params[stream]), evidence)
        key = stream + "_not"
        if key in params and re.search(params[key], text, re.MULTILINE):
            raise Failure("%s matches /%s/ but must not" % (stream, params[key]), evidence)
    return "exit code %d as expected" % code, evidence


# --- process ----------------------------------------------------------------------------------

def read_proc(pid, name):
    try:
        with open("/proc/%s/%s" % (pid, name), "rb") as handle:
            return handle.read()
    except OSError:
        return None


def pid_alive(pid):
    line = read_proc(pid, "stat")
    if line is None:
        return False
    state = line.rsplit(b")", 1)[-1].split()[0]
    return state not in (b"Z", b"X")


COMM_BYTES = 15  # the kernel keeps a process's comm in 16 bytes, the last one NUL (TASK_COMM_LEN)


def process_facts(pid, proc=PROC):
    """{comm (bytes), argv, exe (a path, "" when unreadable), exe_denied} of a process from one read
    of each; None for a process that is gone."""
    base = os.path.join(proc, str(pid))
    try:
        with open(os.path.join(base, "cmdline"), "rb") as handle:
            raw = handle.read()
        with open(os.path.join(base, "comm"), "rb") as handle:
            comm = handle.read().rstrip(b"\n")
    except OSError:
        return None
    exe, denied = "", False
    try:
        exe = os.readlink(os.path.join(base, "exe"))
    except PermissionError:
        denied = True
    except OSError:
        pass  # a kernel thread, or a process that ended meanwhile
    if exe.endswith(" (deleted)"):
        exe = exe[:-len(" (deleted)")]
    return {"comm": comm, "argv": [decode(a) for a in raw.split(b"\0") if a], "exe": exe, "exe_denied": denied}


def process_names(pid, proc=PROC):
    """The names a process goes by: its comm, and the basenames of argv[0] and of its executable."""
    facts = process_facts(pid, proc)
    return names_of(facts) if facts else set()


def names_of(facts):
    names = {decode(facts["comm"])}
    if facts["argv"]:
        names.add(os.path.basename(facts["argv"][0]))
    if facts["exe"]:
        names.add(os.path.basename(facts["exe"]))
    return names


def comm_matches(facts, comm):
    """The kernel's comm is ``comm`` (its first 15 bytes when longer: the kernel keeps no more)."""
    return facts["comm"] == comm.encode("utf-8")[:COMM_BYTES]


def exe_matches(facts, exe, root):
    """The executable is ``exe``: its basename, or its whole path when ``exe`` has a slash."""
    if not facts["exe"]:
        return False
    if "/" in exe:
        return facts["exe"] == os.path.normpath(under_root(root, exe))
    return os.path.basename(facts["exe"]) == exe


def command_line(facts):
    """The arguments joined by spaces, or ``[comm]`` for a process without any (a kernel thread), as
    ``ps -o args`` shows it and ``pgrep -f`` matches it."""
    return " ".join(facts["argv"]) if facts["argv"] else "[%s]" % decode(facts["comm"])


def process_matchers(params):
    """The tests a process must pass, one per selector given: name, comm, exe, cmdline."""
    tests = []
    name = param_text(params, "name", required=False)
    if name is not None:
        tests.append(("name", lambda f, root: name in names_of(f)))
    comm = param_text(params, "comm", required=False)
    if comm is not None:
        tests.append(("comm", lambda f, root: comm_matches(f, comm)))
    exe = param_text(params, "exe", required=False)
    if exe is not None:
        tests.append(("exe", lambda f, root: exe_matches(f, exe, root)))
    cmdline = param_text(params, "cmdline", required=False)
    if cmdline is not None:
        try:
            pattern = re.compile(cmdline)
        except re.error as exc:
            raise CheckBroken("cmdline is not a valid regex: %s" % exc) from None
        tests.append(("cmdline", lambda f, root: pattern.search(command_line(f)) is not None))
    return tests


def pid_from_file(root, path):
    """The pid a pid file (``path`` under ``root``) holds; 0 when it is absent, empty or not a number."""
    try:
        with open(under_root(root, path)) as handle:
            return int(handle.read().strip() or "0")
    except (OSError, ValueError):
        return 0


def matching_processes(tests, root, pids=None):
    """(pids of live processes that pass every test, how many processes' executables were unreadable).

    Zombies are not running. Under a local sandbox root only processes whose argv mentions the
    root count (another sandbox's on the same machine do not); the runner itself never counts.
    """
    found, denied = [], 0
    candidates = pids if pids is not None else [e for e in os.listdir("/proc") if e.isdigit()]
    for entry in candidates:
        if int(entry) == os.getpid() or not pid_alive(entry):
            continue
        facts = process_facts(entry)
        if facts is None:
            continue
        if not all(test(facts, root) for _, test in tests):
            denied += facts["exe_denied"]
            continue
        if pids is None and root not in ("", "/") and not any(a.startswith(root) for a in facts["argv"]):
            continue  # a process of another sandbox on the same machine
        found.append(int(entry))
    return found, denied


def processes_named(name, root):
    """Live processes that go by ``name`` (comm, argv[0]'s or the executable's basename)."""
    return matching_processes(process_matchers({"name": name}), root)[0]


def check_process(params, ctx):
    """A process is running (or not), found by its pid file or by what it is: ``comm`` (the kernel's
    name, as ``pgrep -x``), ``exe`` (its executable), ``cmdline`` (a regex on its arguments joined
    by spaces, as ``pgrep -f``), or ``name`` (any of comm, argv[0]'s or the executable's basename).
    Given together, every one must hold for the same process. A zombie is not running."""
    want_running = param_bool(params, "running", True)
    tests = process_matchers(params)
    evidence = {key: params[key] for key in ("pid_file", "name", "comm", "exe", "cmdline") if key in params}
    if "pid_file" in params:
        pid = pid_from_file(ctx["root"], param_text(params, "pid_file"))
        evidence["pid"] = pid
        pids, denied = matching_processes(tests, ctx["root"], [str(pid)] if pid > 0 else [])
    elif tests:
        pids, denied = matching_processes(tests, ctx["root"])
    else:
        raise CheckBroken("process check needs pid_file, name, comm, exe or cmdline")
    evidence["running_pids"] = pids
    given = [(key, value) for key, value in evidence.items() if key not in ("pid", "running_pids")]
    label = str(given[0][1]) if len(given) == 1 else ", ".join("%s %s" % pair for pair in given)
    if denied and "exe" in params:
        evidence["exe_unreadable"] = denied  # processes whose /proc/<pid>/exe could not be read (not root?)
    if want_running and not pids:
        raise Failure("%s is not running" % label, evidence)
    if not want_running and pids:
        raise Failure("%s is running (pid %s) but must not" % (label, pids[0]), evidence)
    return "%s is %s" % (label, "running" if pids else "not running"), evidence


# --- port -------------------------------------------------------------------------------------

def listening_ports():
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as handle:
                lines = handle.readlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 3 and fields[3] == "0A":
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def port_open(host, port, timeout):
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def ip_literal(host):
    """``host`` as /proc/net writes it when it is an IP address, else None (a name)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        packed = socket.inet_pton(family, host)
    except OSError:
        return None
    return proc_address("".join("%08X" % struct.unpack("=I", packed[i:i + 4])[0]
                                for i in range(0, len(packed), 4)), family)


def check_port(params, ctx):
    """A TCP port is listening: on any address, or with ``host`` on a socket that accepts connections
    to that address (bound to it or to a wildcard that covers it, IPV6_V6ONLY heeded, as the
    listening check judges it); a host name is tried with a real connect()."""
    port = int(params["port"])
    host = params.get("host")
    want = params.get("listening", True)
    address = ip_literal(host) if host is not None else None
    if address is not None and os.path.exists(proc_path("net", "tcp")):
        on_port = [s for s in listening_sockets("tcp")[0] if s["port"] == port]
        ipv4 = None if ":" in address or any(covers(s, address) for s in on_port if s["address"] != ANY_IPV6) \
            else address
        judge_v6only(on_port, "tcp", ipv4)
        listening = any(covers(s, address) for s in on_port)
        how = "/proc/net/tcp, a socket covering %s" % host
    elif host is None and os.path.exists("/proc/net/tcp"):
        listening = port in listening_ports()
        how = "/proc/net/tcp"
    else:
        listening = port_open(host or "127.0.0.1", port, min(ctx["timeout"], 5))
        how = "connect"
    evidence = {"port": port, "listening": listening, "method": how}
    if host is not None:
        evidence["host"] = host
    if listening != want:
        raise Failure("port %d is %slistening" % (port, "" if listening else "not "), evidence)
    return "port %d is %slistening" % (port, "" if listening else "not "), evidence


# --- http -------------------------------------------------------------------------------------

def no_redirect():
    """A handler that follows no redirect (urllib's imports cost ~50 ms, so only http checks pay them)."""
    import urllib.request

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None
    return NoRedirect()


def check_http(params, ctx):
    import ssl
    import urllib.error
    import urllib.request
    url = params["url"]
    if not url.startswith(("http://", "https://")):
        raise CheckBroken("url must start with http:// or https://, got %r" % url)
    wanted = params.get("status", 200)
    wanted = wanted if isinstance(wanted, list) else [wanted]
    handlers = [] if params.get("follow_redirects", True) else [no_redirect()]
    if url.startswith("https://"):
        context = ssl.create_default_context(cafile=params.get("ca_file"))
        if params.get("tls_verify", True) is False:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        handlers.append(urllib.request.HTTPSHandler(context=context))
    opener = urllib.request.build_opener(*handlers)
    request = urllib.request.Request(url, method=params.get("method", "GET"), headers=params.get("headers", {}))
    timeout = min(float(params.get("timeout", ctx["timeout"])), ctx["timeout"])
    try:
        response = opener.open(request, timeout=timeout)
        status, (body, shown) = response.status, read_body(response)
    except urllib.error.HTTPError as exc:
        status, (body, shown) = exc.code, read_body(exc)
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise Failure("%s unreachable: %s" % (url, reason), {"url": url, "error": str(reason)}) from None
    text = decode(body)
    evidence = {"url": url, "status": status, "body": shown}
    if status not in wanted:
        raise Failure("%s answered %d, expected %s" % (url, status, "/".join(map(str, wanted))), evidence)
    if "body" in params and not re.search(params["body"], text, re.MULTILINE):
        raise Failure("body of %s does not match /%s/" % (url, params["body"]), evidence)
    return "%s answered %d" % (url, status), evidence


# --- version ----------------------------------------------------------------------------------

def version_key(text):
    parts = []
    for piece in re.split(r"[.\-+]", text.strip()):
        parts.append((0, int(piece), "") if piece.isdigit() else (1, 0, piece))
    while parts and parts[-1] == (0, 0, ""):
        parts.pop()
    return parts


def compare_dotted(a, b):
    """Order two versions as dotted numbers (1.10 > 1.9, 1.0 == 1.0.0): negative, zero or positive."""
    ka, kb = version_key(a), version_key(b)
    return (ka > kb) - (ka < kb)


def compatible_upper_bound(ref):
    """The exclusive upper bound of ``~=ref``: 1.4.2 -> 1.5, 2.1 -> 3; an epoch (``1:``) is kept."""
    epoch, colon, rest = ref.rpartition(":")
    parts = rest.split(".")
    if len(parts) < 2:
        raise CheckBroken("~= needs at least two version parts: %r" % ref)
    lead = re.match(r"^[0-9]+", parts[-2])
    if not lead or "-" in rest:
        raise CheckBroken("~= needs a plain numeric version (no revision or release): %r" % ref)
    return epoch + colon + ".".join([*parts[:-2], str(int(lead.group(0)) + 1)])


def satisfies(version, constraint, compare=compare_dotted, tilde=False):
    """True when version meets every comma-separated clause (==, !=, >=, <=, >, <, ~=).

    ``compare(a, b)`` orders two versions (negative, zero, positive); the default orders dotted
    numbers, package checks pass dpkg's or rpm's own ordering. ``~=X.Y`` means ``>=X.Y, <X+1``; with
    ``tilde`` (dpkg and rpm, where ``~`` sorts before everything) ``<X+1~``, so no pre-release of X+1
    (``2.0~rc1``) is compatible with ``~=1.4``.
    """
    tests = {
        "==": lambda c: c == 0, "!=": lambda c: c != 0, ">=": lambda c: c >= 0,
        "<=": lambda c: c <= 0, ">": lambda c: c > 0, "<": lambda c: c < 0,
    }
    for clause in [c.strip() for c in constraint.split(",") if c.strip()]:
        match = re.match(r"^(~=|==|!=|>=|<=|>|<)\s*([0-9A-Za-z.\-+:~^]+)$", clause)
        if not match:
            raise CheckBroken("bad version constraint clause %r" % clause)
        op, ref = match.groups()
        if op == "~=":
            upper = compatible_upper_bound(ref) + ("~" if tilde else "")
            if compare(version, ref) < 0 or compare(version, upper) >= 0:
                return False
        elif not tests[op](compare(version, ref)):
            return False
    return True


def installed_version(params, ctx):
    if "command" in params:
        command = params["command"]
        argv = shlex.split(command) if isinstance(command, str) else [str(a) for a in command]
        _code, out, err = run_process(resolve_argv(argv, ctx), ctx, ctx["timeout"])
        text = out + err
    elif "file" in params:
        try:
            with open(under_root(ctx["root"], params["file"]), encoding="utf-8", errors="replace") as handle:
                text = handle.read()
        except OSError:
            return None
    else:
        registry = under_root(ctx["root"], "/var/lib/lab/installed/%s.json" % params["product"])
        try:
            with open(registry, encoding="utf-8") as handle:
                return str(json.load(handle)["version"])
        except (OSError, ValueError, KeyError):
            return None
    match = re.search(params.get("regex", r"(\d+(?:\.\d+)+)"), text)
    return match.group(1) if match else None


def check_version(params, ctx):
    version = installed_version(params, ctx)
    evidence = {"product": params["product"], "installed": version, "constraint": params["constraint"]}
    if version is None:
        raise Failure("%s is not installed (no version found)" % params["product"], evidence)
    if not satisfies(version, params["constraint"]):
        raise Failure("%s %s does not satisfy %s" % (params["product"], version, params["constraint"]), evidence)
    return "%s %s satisfies %s" % (params["product"], version, params["constraint"]), evidence


# ==============================================================================================
# Linux server checks: package, service, user, group, listening, mount, sysctl, kernel_module.
#
# They mean what pytest-testinfra's modules of the same name mean (Package, Service, User, Group,
# Socket, MountPoint, Sysctl), so a suite ported from testinfra keeps its answers; where the lab
# deliberately differs, the docstring of the check says how and why. Files of the sandbox
# (/etc/passwd, the dpkg database, init scripts, rc links) are read under the manifest's root;
# kernel state under /proc (sockets, mounts, sysctl, modules) is the machine's own, which a local
# sandbox shares with its host, as the process and port checks already assume.
# ==============================================================================================

ANY_IPV4, ANY_IPV6 = "0.0.0.0", "::"  # noqa: S104 - the wildcard addresses, as /proc/net shows them
MODULES_DIR = "/lib/modules"
PACKAGE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9+._-]*(:[A-Za-z0-9_-]+)?$")
ACCOUNT_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*\$?$")
SERVICE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.@:\\-]*$")
MODULE_NAME = re.compile(r"^[A-Za-z0-9_-]+$")
UNIT_SUFFIXES = ("service", "socket", "device", "mount", "automount", "swap", "target", "path",
                 "timer", "slice", "scope")


def proc_path(*parts):
    """A path under /proc (PROC: unit tests point it at a fake tree)."""
    return os.path.join(PROC, *parts)


def param_text(params, key, pattern=None, what="value", required=True):
    value = params.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        raise CheckBroken("%s must be a non-empty string, got %r" % (key, value))
    if pattern is not None and not pattern.match(value):
        raise CheckBroken("%s %r is not a valid %s" % (key, value, what))
    return value


def param_bool(params, key, default):
    value = params.get(key, default)
    if value is not None and not isinstance(value, bool):
        raise CheckBroken("%s must be true or false, got %r" % (key, value))
    return value


def param_int(params, key):
    """An optional integer parameter; a string of digits (from a ${variable}) counts."""
    if key not in params:
        return None
    value = params[key]
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise CheckBroken("%s must be an integer, got %r" % (key, value))
    return value


def param_names(params, key):
    """An optional list of non-empty strings."""
    if key not in params:
        return None
    value = params[key]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise CheckBroken("%s must be a list of non-empty strings, got %r" % (key, value))
    return value


def read_text(path, what):
    """The text of a sandbox or /proc file; CheckBroken (with the reason) when it cannot be read."""
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read()
    except OSError as exc:
        raise CheckBroken("cannot read %s: %s" % (what, exc.strerror or exc)) from None


def signature(path):
    """What changes whenever a file is rewritten or replaced: inode, size, mtime and ctime (ns)."""
    st = os.stat(path)
    return st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns


class Sources:
    """The sandbox files many checks consult (/etc/passwd, /etc/group, the dpkg database), read and
    parsed once per manifest and again only when their stat signature changes (a check, a retry or
    another process rewrote them), so 100 user checks read /etc/passwd once, not 100 times."""

    def __init__(self):
        self.parsed = {}
        self.lock = threading.Lock()

    def get(self, key, version, load):
        """``load()`` the first time, or when ``version()`` differs from the one it was loaded at."""
        try:
            current = version()
        except OSError:
            return load()  # absent or unreadable: load() says why, every time
        with self.lock:
            hit = self.parsed.get(key)
        if hit is not None and hit[0] == current:
            return hit[1]
        value = load()
        with self.lock:
            self.parsed[key] = (current, value)
        return value


def sources_of(ctx):
    """The manifest's shared Sources (a fresh one for a check run on its own)."""
    found = ctx.get("sources")
    if found is None:
        found = ctx["sources"] = Sources()
    return found


# --- package ----------------------------------------------------------------------------------

def dpkg_order(char):
    if char == "~":
        return -1
    if char.isascii() and char.isalpha():
        return ord(char)
    return ord(char) + 256


def dpkg_compare_part(a, b):
    """Order two upstream versions (or two revisions) as dpkg does: digit runs by value, the rest
    character by character with letters before other signs and ``~`` before everything, even the end."""
    runs_a = re.findall(r"([^0-9]*)([0-9]*)", a)
    runs_b = re.findall(r"([^0-9]*)([0-9]*)", b)
    for index in range(max(len(runs_a), len(runs_b))):
        text_a, digits_a = runs_a[index] if index < len(runs_a) else ("", "")
        text_b, digits_b = runs_b[index] if index < len(runs_b) else ("", "")
        for pos in range(max(len(text_a), len(text_b))):
            order_a = dpkg_order(text_a[pos]) if pos < len(text_a) else 0
            order_b = dpkg_order(text_b[pos]) if pos < len(text_b) else 0
            if order_a != order_b:
                return -1 if order_a < order_b else 1
        number_a, number_b = int(digits_a or 0), int(digits_b or 0)
        if number_a != number_b:
            return -1 if number_a < number_b else 1
    return 0


def rpm_compare_part(a, b):
    """Order two version (or release) strings as rpm's rpmvercmp does: alphanumeric segments,
    numbers newer than letters, ``~`` older than anything, ``^`` newer than the bare version only."""
    while a or b:
        a = re.sub(r"^[^A-Za-z0-9~^]+", "", a)
        b = re.sub(r"^[^A-Za-z0-9~^]+", "", b)
        if a.startswith("~") or b.startswith("~"):
            if not a.startswith("~"):
                return 1
            if not b.startswith("~"):
                return -1
            a, b = a[1:], b[1:]
            continue
        if a.startswith("^") or b.startswith("^"):
            if not a:
                return -1
            if not b:
                return 1
            if not a.startswith("^"):
                return 1
            if not b.startswith("^"):
                return -1
            a, b = a[1:], b[1:]
            continue
        if not a or not b:
            break
        numeric = a[0].isdigit()
        segment = r"^[0-9]+" if numeric else r"^[A-Za-z]+"
        seg_a = re.match(segment, a).group(0)
        match_b = re.match(segment, b)
        if match_b is None:
            return 1 if numeric else -1
        seg_b = match_b.group(0)
        a, b = a[len(seg_a):], b[len(seg_b):]
        key_a, key_b = (int(seg_a), int(seg_b)) if numeric else (seg_a, seg_b)
        if key_a != key_b:
            return -1 if key_a < key_b else 1
    if not a and not b:
        return 0
    return 1 if a else -1


def split_evr(text):
    """``[epoch:]version[-revision]`` -> (epoch or None, version, revision or None)."""
    epoch, colon, rest = text.partition(":")
    if not colon:
        epoch, rest = None, text
    elif not epoch.isdigit():
        raise CheckBroken("bad epoch in version %r" % text)
    version, dash, revision = rest.rpartition("-")
    if not dash:
        version, revision = rest, None
    return epoch, version, revision


def dpkg_compare(a, b):
    """Order two versions exactly as ``dpkg --compare-versions`` does: epoch (absent: 0), then the
    upstream version, then the revision (absent: empty, which orders like ``0``)."""
    epoch_a, version_a, revision_a = split_evr(a)
    epoch_b, version_b, revision_b = split_evr(b)
    return (sign(int(epoch_a or 0) - int(epoch_b or 0)) or dpkg_compare_part(version_a, version_b)
            or dpkg_compare_part(revision_a or "", revision_b or ""))


def rpm_compare(a, b):
    """Order two versions as rpm does (``rpm.vercmp``, rpmverCmp): epoch (absent: 0), then version and
    release by rpmvercmp; an absent release is empty, below any release (``==1.0`` is not 1.0-3)."""
    epoch_a, version_a, release_a = split_evr(a)
    epoch_b, version_b, release_b = split_evr(b)
    return (sign(int(epoch_a or 0) - int(epoch_b or 0)) or rpm_compare_part(version_a, version_b)
            or rpm_compare_part(release_a or "", release_b or ""))


def sign(number):
    return (number > 0) - (number < 0)


def dpkg_stanzas(text):
    """The fields of each stanza of a dpkg status file (continuation lines are skipped)."""
    fields = {}
    for line in text.splitlines():
        if not line.strip():
            if fields:
                yield fields
            fields = {}
        elif line[0] not in " \t":
            key, sep, value = line.partition(":")
            if sep:
                fields[key] = value.strip()
    if fields:
        yield fields


def dpkg_installed(status):
    """testinfra's (and dpkg's) notion: selection install or hold, no error flag, state installed.

    Half-installed, unpacked, half-configured, triggers-pending and config-files are not installed,
    and neither is ``deinstall ok installed`` (files still there, but selected for removal).
    """
    words = status.split()
    return len(words) == 3 and words[0] in ("install", "hold") and words[1:] == ["ok", "installed"]


def dpkg_database(admin):
    """The texts of the status file and of its pending journal (updates/NNNN, in order).

    A running dpkg folds the journal into the status file and deletes it: when a journal entry
    vanishes between listing and reading, the whole read starts again.
    """
    for _ in range(5):
        texts = [read_text(os.path.join(admin, "status"), "/var/lib/dpkg/status")]
        try:
            journal = sorted((e for e in os.listdir(os.path.join(admin, "updates")) if e.isdigit()), key=int)
        except OSError:
            journal = []
        try:
            for entry in journal:
                with open(os.path.join(admin, "updates", entry), encoding="utf-8", errors="replace") as handle:
                    texts.append(handle.read())
        except FileNotFoundError:
            time.sleep(0.1)
            continue
        except OSError as exc:
            raise CheckBroken("cannot read the dpkg journal: %s" % (exc.strerror or exc)) from None
        return texts
    raise CheckBroken("the dpkg database kept changing while it was read (is dpkg running?)")


PACKAGE_LINE = re.compile(r"^Package:[ \t]*(\S+)[ \t]*$", re.MULTILINE)


def dpkg_version(admin):
    """The stat signatures of the status file, the journal directory and each journal entry."""
    updates = os.path.join(admin, "updates")
    try:
        entries = sorted(e for e in os.listdir(updates) if e.isdigit())
        journal = (signature(updates), *(signature(os.path.join(updates, e)) for e in entries))
    except FileNotFoundError:
        journal = ()
    return (signature(os.path.join(admin, "status")), *journal)


def dpkg_index(admin):
    """The dpkg database's texts and, per package name, where each of its ``Package:`` lines is:
    one pass over the (large) status file, so looking a package up parses only its own stanzas."""
    texts = dpkg_database(admin)
    where = {}
    for number, text in enumerate(texts):
        for match in PACKAGE_LINE.finditer(text):
            where.setdefault(match.group(1), []).append((number, match.start(), match.end()))
    return texts, where


def dpkg_package(name, ctx):
    """Look ``name`` (or ``name:arch``) up in the dpkg database under the sandbox root.

    Reads /var/lib/dpkg/status and then the journal in /var/lib/dpkg/updates/ (what a dpkg run
    that stopped half-way left), as dpkg-query does, so it needs no dpkg on a sandbox root. The
    database is read and indexed once per manifest (again only if it changes).
    """
    admin = under_root(ctx["root"], "/var/lib/dpkg")
    texts, where = sources_of(ctx).get(("dpkg", admin), lambda: dpkg_version(admin), lambda: dpkg_index(admin))
    records = {}
    package, _, arch = name.partition(":")
    for number, begin, finish in where.get(package, ()):  # parse only the package's own stanzas
        text = texts[number]
        start, end = text.rfind("\n\n", 0, begin), text.find("\n\n", finish)
        for fields in dpkg_stanzas(text[start + 1 if start >= 0 else 0:end if end >= 0 else len(text)]):
            if fields.get("Package") == package:
                records[fields.get("Architecture", "")] = fields
    instances = []
    for pkg_arch, fields in sorted(records.items()):
        if not arch or pkg_arch == arch:
            instances.append({"architecture": pkg_arch, "status": fields.get("Status", ""),
                              "version": fields.get("Version")})
    installed = [i for i in instances if dpkg_installed(i["status"])]
    if installed:
        state = "dpkg status: %s" % installed[0]["status"]
    elif instances:
        state = "dpkg status: %s" % "; ".join(i["status"] for i in instances)
    else:
        state = "not in the dpkg database"
    return {"installed": bool(installed), "versions": [i["version"] for i in installed],
            "instances": instances, "state": state, "source": "/var/lib/dpkg/status"}


def rpm_package(name, ctx):
    """Ask rpm (``rpm -q --qf``) about ``name``; every installed instance (a kernel has several)."""
    argv = ["rpm", "-q", "--qf", "%{NAME}\\t%{EPOCHNUM}\\t%{VERSION}\\t%{RELEASE}\\t%{ARCH}\\n"]
    if ctx["root"] not in ("", "/"):
        argv += ["--root", ctx["root"]]
    code, out, err = run_process([*argv, "--", name], ctx, ctx["timeout"], env={"LC_ALL": "C"})
    if code != 0:
        if "is not installed" in out + err:
            return {"installed": False, "versions": [], "instances": [], "state": "rpm: not installed",
                    "source": "rpm -q"}
        raise CheckBroken("rpm -q %s failed (exit %d): %s" % (name, code, clip((err or out).strip())))
    instances = []
    for line in out.splitlines():
        fields = line.split("\t")
        if len(fields) == 5:
            epoch = "" if fields[1] in ("0", "") else fields[1] + ":"
            instances.append({"architecture": fields[4], "epoch": fields[1], "release": fields[3],
                              "version": "%s%s-%s" % (epoch, fields[2], fields[3])})
    if not instances:
        raise CheckBroken("rpm -q %s answered nothing usable: %s" % (name, clip(out.strip())))
    return {"installed": True, "versions": [i["version"] for i in instances], "instances": instances,
            "state": "rpm: installed", "source": "rpm -q"}


def package_manager(ctx):
    """dpkg when the sandbox has a dpkg database, else rpm when it has an rpm one."""
    if os.path.exists(under_root(ctx["root"], "/var/lib/dpkg/status")):
        return "dpkg"
    for db in ("/var/lib/rpm", "/usr/lib/sysimage/rpm"):
        if os.path.isdir(under_root(ctx["root"], db)):
            return "rpm"
    raise CheckBroken("no package database on the sandbox (looked for /var/lib/dpkg/status, /var/lib/rpm, "
                      "/usr/lib/sysimage/rpm); set manager: dpkg or rpm")


def check_package(params, ctx):
    """A package is (not) installed, optionally in a version range.

    Installed means what testinfra's Package.is_installed means (for dpkg: status
    ``install|hold ok installed``; for rpm: ``rpm -q`` succeeds). ``version`` is a constraint for
    satisfies() on the full installed version in the manager's own order: dpkg_compare (a reference
    without an epoch has epoch 0, without a revision an empty one: ``<10`` does not hold for
    1:9.2p1-2, as ``dpkg --compare-versions`` says) or rpm_compare. Every installed instance
    (multi-arch, several kernels) must satisfy it.
    """
    name = param_text(params, "name", PACKAGE_NAME, "package name")
    want_installed = param_bool(params, "installed", True)
    constraint = param_text(params, "version", required=False)
    if constraint is not None and not want_installed:
        raise CheckBroken("version makes no sense with installed: false")
    manager = params.get("manager") or package_manager(ctx)
    if manager == "dpkg":
        found, compare = dpkg_package(name, ctx), dpkg_compare
    elif manager == "rpm":
        found, compare = rpm_package(name, ctx), rpm_compare
    else:
        raise CheckBroken("manager must be dpkg or rpm, got %r" % (manager,))
    versions = found["versions"]
    evidence = {"name": name, "manager": manager, "installed": found["installed"],
                "version": versions[0] if versions else None, "state": found["state"],
                "source": found["source"], "instances": found["instances"]}
    if not found["installed"]:
        if want_installed:
            raise Failure("package %s is not installed (%s)" % (name, found["state"]), evidence)
        return "package %s is not installed (%s)" % (name, found["state"]), evidence
    shown = "%s %s" % (name, ", ".join(versions))
    if not want_installed:
        raise Failure("package %s is installed (%s) but must not be" % (shown, manager), evidence)
    if constraint is None:
        return "package %s is installed (%s)" % (shown, manager), evidence
    evidence["constraint"] = constraint
    if not all(satisfies(v, constraint, compare, tilde=True) for v in versions):
        raise Failure("package %s does not satisfy %s (%s)" % (shown, constraint, manager), evidence)
    return "package %s is installed and satisfies %s (%s)" % (shown, constraint, manager), evidence


# --- user and group ---------------------------------------------------------------------------

class Accounts(list):
    """(line number, fields) of each entry of an account file, with the first entry per name and
    per id string looked up by dict, not by a scan per check."""

    def __init__(self, entries):
        super().__init__(entries)
        self.by_name, self.by_id, self.id_of_name = {}, {}, {}
        for number, parts in entries:
            self.by_name.setdefault(parts[0], (number, parts))
            if len(parts) > 2:
                self.by_id.setdefault(parts[2], parts[0])
                if parts[2].isdigit():
                    self.id_of_name.setdefault(parts[0], int(parts[2]))


def account_entries(ctx, path):
    """(line number, fields) of each entry of /etc/passwd or /etc/group under the sandbox root.

    Comments, blank lines and NIS compat lines (``+``/``-``) are skipped, as glibc's files backend
    does; an entry with the wrong number of fields is kept so that looking it up is an error. Read
    once per manifest, again only when the file changes.
    """
    host = under_root(ctx["root"], path)

    def load():
        entries = []
        for number, line in enumerate(read_text(host, path).splitlines(), 1):
            if line.strip() and line[0] not in "#+-":
                entries.append((number, line.split(":")))
        return Accounts(entries)
    return sources_of(ctx).get(("accounts", host), lambda: signature(host), load)


def account_entry(entries, name, fields, path):
    """The first entry named ``name`` (as getpwnam/getgrnam return it), or None."""
    found = entries.by_name.get(name)
    if found is None:
        return None
    number, parts = found
    if len(parts) != fields:
        raise CheckBroken("%s line %d has %d fields, expected %d: cannot judge %r"
                          % (path, number, len(parts), fields, name))
    for index in (2, 3) if fields == 7 else (2,):
        if not parts[index].isdigit():
            raise CheckBroken("%s line %d: id %r is not a number" % (path, number, parts[index]))
    return parts


def user_groups(name, gid, group_entries):
    """The user's group names as ``id -nG`` lists them: the primary group first, then the others."""
    names = []
    for _, parts in group_entries:
        if len(parts) == 4 and parts[2].isdigit() and int(parts[2]) == gid:
            names.append(parts[0])
            break
    else:
        names.append(str(gid))
    for _, parts in group_entries:
        if len(parts) == 4 and name in parts[3].split(",") and parts[0] not in names:
            names.append(parts[0])
    return names


def compare_fields(evidence, params, keys, integer):
    problems = []
    for key in keys:
        want = param_int(params, key) if integer else param_text(params, key, required=False)
        if want is not None and evidence.get(key) != want:
            problems.append("%s is %s, expected %s" % (key, evidence.get(key), want))
    return problems


def check_user(params, ctx):
    """A local user exists (or not) with the given uid, gid, home, shell and groups.

    Read from /etc/passwd and /etc/group under the sandbox root, so it works on a local sandbox too;
    testinfra asks NSS (``id``, ``getent``), which also sees LDAP/SSSD users: the lab checks local
    accounts only. ``groups`` must all be among the user's groups (primary included, like ``id -nG``).
    """
    name = param_text(params, "name", ACCOUNT_NAME, "user name")
    want_exists = param_bool(params, "exists", True)
    entry = account_entry(account_entries(ctx, "/etc/passwd"), name, 7, "/etc/passwd")
    evidence = {"name": name, "exists": entry is not None, "source": "/etc/passwd"}
    if entry is None:
        if want_exists:
            raise Failure("user %s does not exist (not in /etc/passwd)" % name, evidence)
        return "user %s does not exist" % name, evidence
    uid, gid = int(entry[2]), int(entry[3])
    evidence.update(uid=uid, gid=gid, home=entry[5], shell=entry[6])
    if not want_exists:
        raise Failure("user %s exists (uid %d) but must not" % (name, uid), evidence)
    wanted_groups = param_names(params, "groups")
    try:
        evidence["groups"] = user_groups(name, gid, account_entries(ctx, "/etc/group"))
    except CheckBroken:
        if wanted_groups is not None:
            raise
    problems = compare_fields(evidence, params, ("uid", "gid"), True)
    problems += compare_fields(evidence, params, ("home", "shell"), False)
    missing = [g for g in wanted_groups or [] if g not in evidence["groups"]]
    if missing:
        problems.append("not in group %s (groups: %s)" % (", ".join(missing), ", ".join(evidence["groups"])))
    if problems:
        raise Failure("user %s: %s" % (name, "; ".join(problems)), evidence)
    return "user %s exists (uid %d, gid %d, home %s, shell %s)" % (name, uid, gid, entry[5], entry[6]), evidence


def check_group(params, ctx):
    """A local group exists (or not) with the given gid, and lists the given users as members.

    From /etc/group under the sandbox root. Members are the group's own member list, as testinfra's
    Group.members (a user whose primary group it is does not appear there); ``members`` must all be in it.
    """
    name = param_text(params, "name", ACCOUNT_NAME, "group name")
    want_exists = param_bool(params, "exists", True)
    entry = account_entry(account_entries(ctx, "/etc/group"), name, 4, "/etc/group")
    evidence = {"name": name, "exists": entry is not None, "source": "/etc/group"}
    if entry is None:
        if want_exists:
            raise Failure("group %s does not exist (not in /etc/group)" % name, evidence)
        return "group %s does not exist" % name, evidence
    gid = int(entry[2])
    members = [m for m in entry[3].split(",") if m]
    evidence.update(gid=gid, members=members)
    if not want_exists:
        raise Failure("group %s exists (gid %d) but must not" % (name, gid), evidence)
    problems = compare_fields(evidence, params, ("gid",), True)
    missing = [m for m in param_names(params, "members") or [] if m not in members]
    if missing:
        problems.append("%s not among its members (%s)" % (", ".join(missing), ", ".join(members) or "none"))
    if problems:
        raise Failure("group %s: %s" % (name, "; ".join(problems)), evidence)
    return "group %s exists (gid %d, members: %s)" % (name, gid, ", ".join(members) or "none"), evidence


# --- service ----------------------------------------------------------------------------------

def systemd_is_init(ctx):
    """True when systemd runs the sandbox as PID 1 (``sd_booted()``: /run/systemd/system exists).

    Never for a local sandbox root: whatever manages the host does not manage that directory.
    """
    return ctx["root"] in ("", "/") and os.path.isdir("/run/systemd/system")


def service_running(name, params, ctx):
    """(running, method, detail). systemd when it is PID 1; otherwise process-based, in this order:
    the pid_file parameter, the process parameter, the init script's LSB ``status``, a process named
    like the service."""
    if systemd_is_init(ctx):
        code, out, err = run_process(["systemctl", "is-active", name], ctx, ctx["timeout"], env={"LC_ALL": "C"})
        state = out.strip() or err.strip()
        if code in (0, 3, 4):  # active; inactive or failed; no such unit (testinfra: not running)
            return code == 0, "systemd", "systemctl is-active %s: %s (exit %d)" % (name, state, code)
        # exit 1 is systemctl's "cannot talk to systemd": like testinfra, fall back to the ways below
    root = ctx["root"]
    if "pid_file" in params:
        path = param_text(params, "pid_file")
        pid = pid_from_file(root, path)
        alive = pid > 0 and pid_alive(pid)
        detail = "pid file %s: %s" % (path, "pid %d is alive" % pid if alive else
                                       "pid %d is not running" % pid if pid else "absent or empty")
        return alive, "pid-file", detail
    process = param_text(params, "process", required=False)
    script = under_root(root, "/etc/init.d/" + name)
    if process is None and root in ("", "/") and os.path.isfile(script) and os.access(script, os.X_OK):
        code, out, err = run_process([script, "status"], ctx, ctx["timeout"], env={"LC_ALL": "C"})
        detail = "/etc/init.d/%s status: exit %d" % (name, code)
        if code in (0, 1, 2, 3):  # LSB: running; dead, pid file left; dead, lock file left; not running
            return code == 0, "init-script", detail
        raise CheckBroken("%s (LSB 4 = unknown): cannot tell whether %s runs: %s"
                          % (detail, name, clip((err or out).strip())))
    pids = processes_named(process or name, root)
    detail = "process %s: %s" % (process or name, "pid %s" % ", ".join(map(str, pids)) if pids else "none running")
    return bool(pids), "process-name", detail


def service_enabled(name, ctx):
    """(enabled, method, detail), as testinfra's Service.is_enabled decides it.

    ``systemctl is-enabled`` (it reads unit files, so it answers without systemd running, and
    ``--root`` makes it answer for a sandbox root): exit 0 is enabled (also static, alias, indirect);
    ``disabled`` and ``masked`` are not. A name systemd does not know falls back to the SysV start
    links ``/etc/rc?.d/S??name``, which are also used where there is no systemctl.
    """
    root = ctx["root"]
    systemctl = shutil.which("systemctl")
    if systemctl:
        argv = [systemctl] + ([] if root in ("", "/") else ["--root=" + root]) + ["is-enabled", name]
        code, out, err = run_process(argv, ctx, ctx["timeout"], env={"LC_ALL": "C"})
        state = (out.strip().splitlines() or [""])[-1]
        detail = "systemctl is-enabled %s: %s (exit %d)" % (name, state or err.strip()[-200:], code)
        if code == 0 or state in ("disabled", "masked", "masked-runtime"):
            return code == 0, "systemctl", detail
        if name.rsplit(".", 1)[-1] in UNIT_SUFFIXES:
            raise CheckBroken("%s: cannot tell whether %s is enabled; does the unit exist?" % (detail, name))
    links = sorted(glob.glob(under_root(root, "/etc/rc?.d/S??" + glob.escape(name))))
    shown = ["/" + os.path.relpath(link, under_root(root, "/")) if root not in ("", "/") else link for link in links]
    detail = "SysV start links: %s" % (", ".join(shown) if shown else "no /etc/rc?.d/S??%s" % name)
    return bool(links), "sysv-rc-links", detail


def check_service(params, ctx):
    """A service is running and/or enabled (``running: true`` when neither is given).

    The message and the evidence say which method decided: ``systemd`` (systemctl is-active, when
    systemd is PID 1), ``init-script``, ``pid-file`` or ``process-name`` for running;
    ``systemctl`` or ``sysv-rc-links`` for enabled.
    """
    name = param_text(params, "name", SERVICE_NAME, "service name")
    want_running = param_bool(params, "running", None)
    want_enabled = param_bool(params, "enabled", None)
    if want_running is None and want_enabled is None:
        want_running = True
    evidence = {"name": name, "systemd_pid1": systemd_is_init(ctx)}
    said, wrong = [], []
    for what, want, probe in (("running", want_running, lambda: service_running(name, params, ctx)),
                              ("enabled", want_enabled, lambda: service_enabled(name, ctx))):
        if want is None:
            continue
        value, method, detail = probe()
        evidence[what] = value
        evidence[what + "_method"] = method
        evidence[what + "_detail"] = detail
        said.append("%s%s [%s: %s]" % ("" if value else "not ", what, method, detail))
        if value != want:
            wrong.append("%s%s" % ("" if want else "not ", what))
    message = "service %s is %s" % (name, " and ".join(said))
    if wrong:
        raise Failure("%s; expected %s" % (message, " and ".join(wrong)), evidence)
    return message, evidence


# --- listening --------------------------------------------------------------------------------

def proc_address(text, family):
    """An address of /proc/net/{tcp,udp}[6]: 32-bit words in hex, each in the kernel's byte order."""
    raw = b"".join(struct.pack("=I", int(text[i:i + 8], 16)) for i in range(0, len(text), 8))
    if family == socket.AF_INET6 and raw[:12] == b"\0" * 10 + b"\xff\xff":
        return socket.inet_ntop(socket.AF_INET, raw[12:])  # ::ffff:a.b.c.d is an IPv4 socket
    return socket.inet_ntop(family, raw)


def listening_sockets(protocol):
    """(sockets, tables read, whether IPv6 is there): each socket {address, port, inode}.

    TCP sockets in state LISTEN (0A); UDP sockets that are bound and not connected (07), which is
    what ``ss --listening`` shows for UDP and what testinfra counts.
    """
    wanted_state = "0A" if protocol == "tcp" else "07"
    sockets, tables, has_ipv6 = [], [], False
    for suffix, family in (("", socket.AF_INET), ("6", socket.AF_INET6)):
        path = proc_path("net", protocol + suffix)
        try:
            with open(path) as handle:
                lines = handle.readlines()[1:]
        except OSError:
            continue
        tables.append("/proc/net/" + protocol + suffix)
        has_ipv6 = has_ipv6 or family == socket.AF_INET6
        for line in lines:
            fields = line.split()
            if len(fields) < 10 or fields[3] != wanted_state:
                continue
            address, _, port = fields[1].rpartition(":")
            sockets.append({"address": proc_address(address, family), "port": int(port, 16), "inode": fields[9]})
    if not tables:
        raise CheckBroken("cannot read /proc/net/%s or /proc/net/%s6: no socket table on this system"
                          % (protocol, protocol))
    return sockets, tables, has_ipv6


NETLINK_SOCK_DIAG, SOCK_DIAG_BY_FAMILY, INET_DIAG_SKV6ONLY = 4, 20, 11
NLMSG_ERROR, NLMSG_DONE, NLM_F_REQUEST, NLM_F_DUMP = 2, 3, 1, 0x300


def v6only_flags(protocol):
    """{inode: IPV6_V6ONLY (bool)} of the IPv6 sockets of ``protocol`` in LISTEN or unconnected state,
    asked of the kernel over NETLINK_SOCK_DIAG (what ``ss`` reads to print ``*`` or ``[::]``); None
    when the kernel does not answer (no sock_diag, or a sandbox that forbids netlink)."""
    proto = socket.IPPROTO_TCP if protocol == "tcp" else socket.IPPROTO_UDP
    states = (1 << 10) if protocol == "tcp" else (1 << 7)  # TCP_LISTEN; TCP_CLOSE: a bound UDP socket
    request = struct.pack("=BBBBI", socket.AF_INET6, proto, 0, 0, states) + b"\0" * 48
    header = struct.pack("=IHHII", 16 + len(request), SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST | NLM_F_DUMP, 1, 0)
    flags = {}
    try:
        with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_SOCK_DIAG) as sock:
            sock.settimeout(5)
            sock.sendto(header + request, (0, 0))
            while True:
                data = sock.recv(65536)
                offset = 0
                while offset + 16 <= len(data):
                    length, kind = struct.unpack_from("=IH", data, offset)
                    if kind == NLMSG_DONE:
                        return flags
                    if kind == NLMSG_ERROR or length < 16:
                        return None
                    body = data[offset + 16:offset + length]
                    inode, value, at = struct.unpack_from("=I", body, 68)[0], None, 72
                    while at + 4 <= len(body):  # the attributes after struct inet_diag_msg
                        size, attribute = struct.unpack_from("=HH", body, at)
                        if size < 4:
                            break
                        if attribute == INET_DIAG_SKV6ONLY and size > 4:
                            value = bool(body[at + 4])
                        at += (size + 3) & ~3
                    if value is not None:
                        flags[str(inode)] = value
                    offset += (length + 3) & ~3
    except (OSError, AttributeError, struct.error):
        return None


def bindv6only_default():
    """/proc/sys/net/ipv6/bindv6only: IPV6_V6ONLY of sockets that do not set it (None if unreadable)."""
    try:
        return read_text(proc_path("sys", "net", "ipv6", "bindv6only"), "bindv6only").strip() == "1"
    except CheckBroken:
        return None


def judge_v6only(sockets, protocol, wanted_ipv4):
    """Set ``v6only`` on each ``::`` socket and return how it was told: the socket's own flag
    (sock_diag); else, for TCP and a loopback IPv4 question, a real connect(); else the system default
    (bindv6only). A ``::`` socket with IPV6_V6ONLY=1 serves no IPv4 client."""
    wildcards = [s for s in sockets if s["address"] == ANY_IPV6]
    if not wildcards:
        return None
    flags = v6only_flags(protocol)
    if flags is not None and all(s["inode"] in flags for s in wildcards):
        for sock in wildcards:
            sock["v6only"] = flags[sock["inode"]]
        return "sock_diag (the socket's own IPV6_V6ONLY)"
    if protocol == "tcp" and wanted_ipv4 is not None and wanted_ipv4.startswith("127."):
        served = port_open(wanted_ipv4, wildcards[0]["port"], 2)
        for sock in wildcards:
            sock["v6only"] = not served
        return "connect() to %s:%d" % (wanted_ipv4, wildcards[0]["port"])
    default = bindv6only_default()
    for sock in wildcards:
        sock["v6only"] = bool(default)
    return "/proc/sys/net/ipv6/bindv6only (the default; the socket's own flag could not be read)"


def covers(sock, wanted):
    """Whether a socket accepts connections to ``wanted``: bound to it, or to the wildcard of its family,
    or to ``::`` without IPV6_V6ONLY (Linux makes such a socket dual-stack)."""
    bound = sock["address"]
    if bound == wanted:
        return True
    if bound == ANY_IPV6:
        return ":" in wanted or not sock.get("v6only", False)
    return bound == ANY_IPV4 and ":" not in wanted


def show_socket(sock):
    shown = ("[%s]:%d" if ":" in sock["address"] else "%s:%d") % (sock["address"], sock["port"])
    return shown + " (v6only)" if sock.get("v6only") else shown


def socket_owners(inodes):
    """({inode: [pid, ...]}, number of processes whose fds could not be read), from /proc/<pid>/fd."""
    targets = {"socket:[%s]" % inode: inode for inode in inodes}
    owners, denied = {}, 0
    proc = PROC
    for entry in os.listdir(proc):
        if not entry.isdigit():
            continue
        fd_dir = os.path.join(proc, entry, "fd")
        try:
            fds = os.listdir(fd_dir)
        except PermissionError:
            denied += 1
            continue
        except OSError:
            continue  # the process ended meanwhile
        for fd in fds:
            try:
                link = os.readlink(os.path.join(fd_dir, fd))
            except OSError:
                continue
            if link in targets:
                owners.setdefault(targets[link], []).append(int(entry))
    return owners, denied


def check_listening(params, ctx):
    """A TCP or UDP socket listens on a port, on one address or on all of them, optionally held by a
    named process.

    Semantics of testinfra's Socket.is_listening: without ``address`` the port must be listening on
    every address, IPv4 and IPv6 (a dual-stack ``::`` socket, or ``::`` with IPV6_V6ONLY and
    ``0.0.0.0``, or ``0.0.0.0`` where the machine has no IPv6); use the port check for "on any
    address". With ``address``: a socket on that address or on a wildcard that covers it
    (``0.0.0.0`` covers every IPv4 address, ``::`` every IPv6 address and, unless it has
    IPV6_V6ONLY, every IPv4 address too: see judge_v6only). testinfra means the same but its code
    does not count ``0.0.0.0`` for a specific IPv4 address, and counts any ``::`` socket for IPv4.
    """
    port = param_int(params, "port")
    if port is None or not 1 <= port <= 65535:
        raise CheckBroken("port must be an integer from 1 to 65535, got %r" % (params.get("port"),))
    protocol = params.get("protocol", "tcp")
    if protocol not in ("tcp", "udp"):
        raise CheckBroken("protocol must be tcp or udp, got %r" % (protocol,))
    want = param_bool(params, "listening", True)
    process = param_text(params, "process", required=False)
    if process is not None and not want:
        raise CheckBroken("process only applies to listening: true")
    address = param_text(params, "address", required=False)
    if address is not None:
        given, address = address, ip_literal(address)
        if address is None:
            raise CheckBroken("address must be an IPv4 or IPv6 address, got %r" % given)
    sockets, tables, has_ipv6 = listening_sockets(protocol)
    on_port = [s for s in sockets if s["port"] == port]
    ipv4 = None if address is not None and ":" in address else address or "127.0.0.1"
    if ipv4 is not None and any(covers(s, ipv4) for s in on_port if s["address"] != ANY_IPV6):
        ipv4 = None  # an IPv4 socket already answers: no ``::`` socket needs judging for it
    v6only_source = judge_v6only(on_port, protocol, ipv4)
    if address is not None:
        matched = [s for s in on_port if covers(s, address)]
        where = "on %s" % address
    else:
        dual = [s for s in on_port if s["address"] == ANY_IPV6 and not s["v6only"]]
        pair = [s for s in on_port if s["address"] in (ANY_IPV4, ANY_IPV6)]
        if dual:
            matched = [s for s in pair if s in dual or s["address"] == ANY_IPV4]
        elif {s["address"] for s in pair} == {ANY_IPV4, ANY_IPV6} or (not has_ipv6 and pair):
            matched = pair
        else:
            matched = []
        where = "on all addresses"
    evidence = {"protocol": protocol, "port": port, "address": address, "listening": bool(matched),
                "matched": sorted({show_socket(s) for s in matched}),
                "on_port": sorted({show_socket(s) for s in on_port}), "source": ", ".join(tables)}
    if v6only_source:
        evidence["v6only_source"] = v6only_source
    label = "%s port %d" % (protocol, port)
    elsewhere = " (listening on: %s)" % ", ".join(evidence["on_port"]) if on_port else " (nothing on that port)"
    if not matched:
        if want:
            raise Failure("%s is not listening %s%s" % (label, where, elsewhere), evidence)
        return "%s is not listening %s%s" % (label, where, elsewhere), evidence
    via = ", ".join(evidence["matched"])
    if not want:
        raise Failure("%s is listening %s (%s) but must not" % (label, where, via), evidence)
    if process is None:
        return "%s is listening %s (%s)" % (label, where, via), evidence
    owners, denied = socket_owners([s["inode"] for s in matched])
    pids = sorted({pid for inode_pids in owners.values() for pid in inode_pids})
    evidence["owners"] = [{"pid": pid, "names": sorted(process_names(pid, PROC))} for pid in pids]
    if any(process in owner["names"] for owner in evidence["owners"]):
        return "%s is listening %s (%s), held by %s" % (label, where, via, process), evidence
    if not pids:
        why = ("/proc/<pid>/fd of %d processes is not readable (run the runner as root)" % denied if denied
               else "no process holds the socket")
        raise CheckBroken("%s is listening %s but its process cannot be told: %s" % (label, where, why))
    held = ", ".join("%s (pid %d)" % ("/".join(o["names"]) or "?", o["pid"]) for o in evidence["owners"])
    raise Failure("%s is listening %s, held by %s, not by %s" % (label, where, held, process), evidence)


# --- mount ------------------------------------------------------------------------------------

def unescape_mount_field(text):
    """/proc/mounts writes space, tab, newline and backslash as octal escapes (\\040 ...)."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), text)


def check_mount(params, ctx):
    """A path is a mount point (or not), with the given filesystem type, device and options.

    From /proc/mounts like testinfra's MountPoint (rootfs lines skipped). The path is resolved under
    the sandbox root. When mounts are stacked on one path the one on top is judged (the one in
    effect); testinfra takes the first listed. ``options`` must all be among the mount's options.
    """
    path = param_text(params, "path")
    if not path.startswith("/"):
        raise CheckBroken("path must be absolute, got %r" % path)
    want_exists = param_bool(params, "exists", True)
    try:  # a path through a symlink names the mount point it leads to, as mountpoint(1) and findmnt -T see it
        resolved = sandbox_path(ctx["root"], "/" + os.path.normpath(path).lstrip("/"), True)
    except OSError:
        resolved = under_root(ctx["root"], path)
    target = os.path.normpath(os.path.realpath(resolved) if ctx["root"] in ("", "/") else resolved)
    mounts = []
    for line in read_text(proc_path("mounts"), "/proc/mounts").splitlines():
        fields = line.split()
        if len(fields) >= 4 and fields[0] != "rootfs" and unescape_mount_field(fields[1]) == target:
            mounts.append({"device": unescape_mount_field(fields[0]), "fstype": fields[2],
                           "options": fields[3].split(",")})
    evidence = {"path": path, "exists": bool(mounts), "source": "/proc/mounts"}
    if not mounts:
        if want_exists:
            raise Failure("%s is not a mount point" % path, evidence)
        return "%s is not a mount point" % path, evidence
    mount = mounts[-1]
    evidence.update(mount)
    if len(mounts) > 1:
        evidence["stacked"] = len(mounts)
    if not want_exists:
        raise Failure("%s is a mount point (%s on %s) but must not be" % (path, mount["fstype"], mount["device"]),
                      evidence)
    problems = []
    for key in ("fstype", "device"):
        want = param_text(params, key, required=False)
        if want is not None and mount[key] != want:
            problems.append("%s is %s, expected %s" % (key, mount[key], want))
    missing = [o for o in param_names(params, "options") or [] if o not in mount["options"]]
    if missing:
        problems.append("options lack %s (options: %s)" % (", ".join(missing), ",".join(mount["options"])))
    if problems:
        raise Failure("mount %s: %s" % (path, "; ".join(problems)), evidence)
    return "%s is mounted (%s on %s, %s)" % (path, mount["fstype"], mount["device"], ",".join(mount["options"])), \
        evidence


# --- sysctl -----------------------------------------------------------------------------------

def sysctl_parts(key):
    """The path components of a sysctl key under /proc/sys, as sysctl(8) and sysctl.d(5) read it:
    when the first separator is a slash, slashes separate and dots belong to names
    (``net/ipv4/conf/eth0.1/forwarding``); when it is a dot, dots separate and each slash stands for
    a dot in a name (``net.ipv4.conf.eth0/1.forwarding``)."""
    first = re.search(r"[./]", key)
    if first is None or first.group(0) == "/":
        return key.split("/")
    return [part.replace("/", ".") for part in key.split(".")]


def check_sysctl(params, ctx):
    """A kernel parameter (``net.ipv4.ip_forward``; for names with dots ``net/ipv4/conf/eth0.1/forwarding``
    or ``net.ipv4.conf.eth0/1.forwarding``, see sysctl_parts) has a value, read from /proc/sys like
    ``sysctl -n``.

    An integer ``value`` is compared as an integer (as testinfra's Sysctl returns one); a string is
    compared as text with runs of whitespace made single spaces (``32768 60999`` matches the tab that
    /proc writes). A key the kernel does not have is a failure.
    """
    key = param_text(params, "key")
    parts = sysctl_parts(key)
    if any(p in ("", ".", "..") for p in parts):
        raise CheckBroken("key %r is not a valid sysctl name" % key)
    if "value" not in params:
        raise CheckBroken("missing parameter 'value'")
    want = params["value"]
    if isinstance(want, bool) or not isinstance(want, (int, str)):
        raise CheckBroken("value must be an integer or a string, got %r" % (want,))
    if not os.path.isdir(proc_path("sys")):
        raise CheckBroken("/proc/sys is not available on this system: cannot read %s" % key)
    path = proc_path("sys", *parts)
    shown_path = "/proc/sys/" + "/".join(parts)
    evidence = {"key": key, "path": shown_path, "expected": want}
    if not os.path.exists(path):
        evidence["exists"] = False
        raise Failure("sysctl %s does not exist (no %s)" % (key, shown_path), evidence)
    if os.path.isdir(path):
        raise CheckBroken("sysctl %s is a directory of keys (%s), not a key" % (key, shown_path))
    raw = read_text(path, shown_path).rstrip("\n")
    evidence["value"] = raw
    if isinstance(want, int):
        try:
            matches = int(raw.strip()) == want
        except ValueError:
            raise Failure("sysctl %s is %r, not an integer (expected %d)" % (key, raw, want), evidence) from None
    else:
        matches = " ".join(raw.split()) == " ".join(want.split())
    if not matches:
        raise Failure("sysctl %s is %r, expected %r" % (key, raw, want), evidence)
    return "sysctl %s is %r" % (key, raw), evidence


# --- kernel module ----------------------------------------------------------------------------

def module_builtin(name):
    """Whether the running kernel has ``name`` built in (modules.builtin of its release), or None
    when that cannot be told."""
    try:
        release = read_text(proc_path("sys", "kernel", "osrelease"), "osrelease").strip()
        with open(os.path.join(MODULES_DIR, release, "modules.builtin")) as handle:
            lines = handle.read().splitlines()
    except (OSError, CheckBroken):
        return None
    return any(os.path.basename(line.strip()).rsplit(".ko", 1)[0].replace("-", "_") == name for line in lines)


def check_kernel_module(params, ctx):
    """A kernel module is loaded (or not), from /proc/modules (``-`` and ``_`` are the same, as for
    modprobe). A module built into the kernel counts as loaded. Where /proc/modules does not exist
    (a kernel without loadable modules, or a restricted container) the check is an error: the lab
    cannot tell, and that is never a pass. testinfra has no such module."""
    name = param_text(params, "name", MODULE_NAME, "module name")
    want_loaded = param_bool(params, "loaded", True)
    canonical = name.replace("-", "_")
    path = proc_path("modules")
    if not os.path.exists(path):
        raise CheckBroken("/proc/modules is not available (a kernel without loadable-module support, or a "
                          "container that hides it): cannot tell whether module %s is loaded" % name)
    state = None
    for line in read_text(path, "/proc/modules").splitlines():
        fields = line.split()
        if fields and fields[0] == canonical:
            state = fields[4] if len(fields) > 4 else "Live"
            break
    builtin = module_builtin(canonical) if state is None else False
    loaded = state == "Live" or bool(builtin)
    evidence = {"name": name, "loaded": loaded, "state": state, "builtin": builtin, "source": "/proc/modules"}
    if builtin:
        how = "built into the kernel"
    elif state is None:
        how = "not loaded"
    else:
        how = "loaded" if state == "Live" else "in state %s" % state
    message = "kernel module %s is %s" % (name, how)
    if loaded != want_loaded:
        raise Failure(message + ("; expected it loaded" if want_loaded else "; expected it not loaded"), evidence)
    return message, evidence


CHECKS = {
    "file": check_file,
    "command": check_command,
    "process": check_process,
    "port": check_port,
    "http": check_http,
    "version": check_version,
    "package": check_package,
    "service": check_service,
    "user": check_user,
    "group": check_group,
    "listening": check_listening,
    "mount": check_mount,
    "sysctl": check_sysctl,
    "kernel_module": check_kernel_module,
}


# --- engine -----------------------------------------------------------------------------------

class Worker:
    """A thread that runs check attempts, one at a time, for the thread that owns it: starting a
    thread per check cost more than most checks. A worker whose check overran its timeout is
    abandoned (left to finish, or hang, as a daemon) and its owner gets a new one."""

    def __init__(self):
        self.jobs = queue.SimpleQueue()
        threading.Thread(target=self.loop, daemon=True).start()

    def loop(self):
        while True:
            job, done = self.jobs.get()
            job()
            done.release()

    def run(self, job, timeout):
        """Run ``job`` on this worker; False if it has not finished after ``timeout`` seconds."""
        done = threading.Lock()
        done.acquire()
        self.jobs.put((job, done))
        return done.acquire(timeout=timeout)


OWN = threading.local()


def judge(check, ctx):
    """Run one check once in this thread. Returns (status, message, evidence)."""
    func = CHECKS.get(check.get("type"))
    if func is None:
        return "error", "unknown check type %r" % check.get("type"), {}
    try:
        message, evidence = func(check.get("params") or {}, ctx)
        return "pass", message, evidence
    except Failure as exc:
        return "fail", str(exc), exc.evidence
    except CheckFailed as exc:
        return "fail", str(exc), {}
    except CheckBroken as exc:
        return "error", str(exc), {}
    except KeyError as exc:
        return "error", "missing parameter %s" % exc, {}
    except Exception as exc:  # one broken check is an error, never a crash of the suite
        return "error", "%s: %s" % (type(exc).__name__, exc), {}


def attempt(check, ctx):
    """Run one check once on this thread's Worker, bounded by its timeout. Returns (status,
    message, evidence)."""
    outcome = {}

    def target():
        outcome["value"] = judge(check, ctx)

    worker = getattr(OWN, "worker", None)
    if worker is None:
        worker = OWN.worker = Worker()
    if not worker.run(target, ctx["timeout"] + 1.0):
        OWN.worker = None  # still busy with the check that overran: never reused
        for proc in ctx["children"]:
            kill_group(proc)
        return "error", "timed out after %ss" % ctx["timeout"], {}
    return outcome["value"]


def run_check(check, root, sources=None, here=False):
    """Run a check with its retries; fail-then-pass is reported as flaky, never as pass.
    ``sources``: the manifest's shared Sources (default: a fresh one). ``here``: in the calling
    thread, whose caller bounds the time (see run_ahead); otherwise each attempt on a Worker."""
    started = time.monotonic()
    retries = int(check.get("retries", 0))
    history = []
    sources = sources or Sources()
    while True:
        ctx = {"root": root, "timeout": float(check.get("timeout", 30)), "children": [], "sources": sources}
        status, message, evidence = judge(check, ctx) if here else attempt(check, ctx)
        history.append({"status": status, "message": message})
        if status == "pass" or len(history) > retries:
            break
    if status == "pass" and len(history) > 1:
        status = "flaky"
        evidence = dict(evidence, earlier_attempts=history[:-1])
    return {
        "id": check.get("id"),
        "status": status,
        "message": message,
        "evidence": evidence,
        "duration_ms": int((time.monotonic() - started) * 1000),
        "attempts": len(history),
    }


# How a run of consecutive checks of one kind is judged (see batches):
# - AHEAD: reads of the sandbox's files and /proc, which change nothing and cannot wait on anything
#   but the disk (a helper process they start has its own timeout): one thread judges them in
#   order, running ahead while this thread writes the lines, and a check that overruns its time
#   stops that thread's run (run_ahead). A thread per check cost more than the checks.
# - CONCURRENT: checks that spend their time waiting on the network and change nothing: up to
#   WIDTH at once. The file, account and package checks are CPU-bound, so threads would only queue
#   on the interpreter's lock for them.
# - anything else (command, version, service): one at a time, each attempt bounded on a Worker,
#   because a command may change what a later check sees.
AHEAD = ("file", "user", "group", "package", "process", "listening", "mount", "sysctl", "kernel_module")
CONCURRENT = ("http", "port")
WIDTH = 8


def one_line(check, root, sources, here=False):
    """The result line of one manifest entry."""
    if check.get("broken"):
        return {"id": check.get("id"), "status": "error", "message": str(check["broken"]),
                "evidence": {}, "duration_ms": 0, "attempts": 0}
    if check.get("skip"):
        return {"id": check.get("id"), "status": "skip", "message": str(check["skip"]),
                "evidence": {}, "duration_ms": 0, "attempts": 0}
    return run_check(check, root, sources, here)


def kind_of(check):
    """AHEAD, CONCURRENT or None (one at a time) for a manifest entry."""
    if check.get("broken") or check.get("skip") or check.get("type") in AHEAD:
        return AHEAD
    return CONCURRENT if check.get("type") in CONCURRENT else None


def batches(checks):
    """The manifest's checks in order, as (kind, run): consecutive checks of kind AHEAD or
    CONCURRENT together, any other check alone (kind None)."""
    kind, run = None, []
    for check in checks:
        this = kind_of(check)
        if run and (this is None or this is not kind):
            yield kind, run
            run = []
        kind = this
        run.append(check)
    if run:
        yield kind, run


def allowed_time(check):
    """The longest a check with its retries may take: every attempt its timeout, plus a second."""
    return (int(check.get("retries", 0)) + 1) * (float(check.get("timeout", 30)) + 1.0)


def run_ahead(run, root, sources, write):
    """Judge ``run`` in order on a thread of its own, passing each line to ``write`` as it comes.
    A check not judged within allowed_time() after the previous one is an error ("timed out"); its
    thread is abandoned (its later lines are dropped) and a new one goes on with the next check."""
    position = 0
    while position < len(run):
        lines, stop = queue.SimpleQueue(), threading.Event()

        def work(start, lines=lines, stop=stop):
            for index in range(start, len(run)):
                if stop.is_set():
                    return
                lines.put(one_line(run[index], root, sources, here=True))
        threading.Thread(target=work, args=(position,), daemon=True).start()
        while position < len(run):
            check = run[position]
            try:
                line = lines.get(timeout=allowed_time(check))
            except queue.Empty:
                stop.set()
                write({"id": check.get("id"), "status": "error", "evidence": {},
                       "message": "timed out after %ss" % float(check.get("timeout", 30)),
                       "duration_ms": int(allowed_time(check) * 1000), "attempts": 1})
                position += 1
                break
            write(line)
            position += 1


def judge_together(run, root, sources):
    """The result lines of ``run`` (in its order), judged by up to WIDTH threads at once."""
    lines = [None] * len(run)
    cursor = iter(range(len(run)))
    lock = threading.Lock()

    def drain():
        while True:
            with lock:
                index = next(cursor, None)
            if index is None:
                return
            lines[index] = one_line(run[index], root, sources)
    threads = [threading.Thread(target=drain, daemon=True) for _ in range(min(WIDTH, len(run)))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return lines


def run_manifest(manifest, out):
    """Run every check of a manifest, writing one JSON line per result to ``out``, in the
    manifest's order."""
    if manifest.get("format") != FORMAT:
        raise SystemExit("lab runner: manifest format %r not supported" % manifest.get("format"))
    root = manifest.get("root", "/")
    checks = manifest.get("checks", [])
    sources = Sources()

    flushed = [time.monotonic()]

    def write(line):
        out.write(json.dumps(line, sort_keys=True) + "\n")
        if time.monotonic() - flushed[0] > 0.2:  # lines reach the controller as they come, in batches
            out.flush()
            flushed[0] = time.monotonic()

    for kind, run in batches(checks):
        if kind is AHEAD:
            run_ahead(run, root, sources, write)
        elif kind is CONCURRENT and len(run) > 1:
            for line in judge_together(run, root, sources):
                write(line)
        else:
            write(one_line(run[0], root, sources))
        out.flush()
    out.write(json.dumps({"end": True, "checks": len(checks)}) + "\n")
    out.flush()
    return 0


def main(data=None):
    """Entry point: read the manifest (JSON) from ``data`` or stdin and run it."""
    if data is None:
        data = sys.stdin.buffer.read()
    manifest = json.loads(data.decode("utf-8"))
    guard(manifest)
    return run_manifest(manifest, sys.stdout)


if __name__ == "__main__":
    sys.exit(main())
