"""The lab's check runner: executes a manifest on a sandbox and prints one JSON line per result.

Stdlib only, Python 3.8+. The transport sends this file and a manifest (JSON) in one go;
parameters stay data, nothing from a suite is ever turned into code here.

Input (stdin or ``run_manifest``): {"format": 1, "suite": str, "root": str, "checks": [
  {"id": str, "type": str, "params": {...}, "timeout": float, "retries": int}, ...]}
Output: one line per check: {"id", "status", "message", "evidence", "duration_ms", "attempts"},
then a last line {"end": true, "checks": n}.
"""

import glob
import hashlib
import json
import os
import re
import shlex
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

MAX_TEXT = 64 * 1024
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



def clip(text):
    """Keep evidence bounded: the first MAX_TEXT characters and the total size."""
    if len(text) <= MAX_TEXT:
        return text
    return text[:MAX_TEXT] + "\n... [truncated: %d characters in all]" % len(text)


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

def check_file(params, ctx):
    path = under_root(ctx["root"], params.get("path"))
    want_exists = params.get("exists", True)
    evidence = {"path": params["path"]}
    exists = os.path.lexists(path)
    evidence["exists"] = exists
    if not want_exists:
        if exists:
            raise Failure("%s exists but must not" % params["path"], evidence)
        return "%s is absent" % params["path"], evidence
    if not exists:
        raise Failure("%s does not exist" % params["path"], evidence)
    st = os.stat(path)
    kind = "directory" if os.path.isdir(path) else "file"
    evidence["kind"] = kind
    evidence["mode"] = "%04o" % (st.st_mode & 0o7777)
    want_kind = params.get("kind")
    if want_kind and want_kind != kind:
        raise Failure("%s is a %s, expected a %s" % (params["path"], kind, want_kind), evidence)
    if "mode" in params and int(str(params["mode"]), 8) != (st.st_mode & 0o7777):
        raise Failure("%s has mode %s, expected %s" % (params["path"], evidence["mode"], params["mode"]), evidence)
    if "sha256" in params or "contains" in params or "matches" in params:
        if kind != "file":
            raise CheckBroken("%s is a directory: sha256/contains/matches need a file" % params["path"])
        with open(path, "rb") as handle:
            data = handle.read()
        if "sha256" in params:
            digest = hashlib.sha256(data).hexdigest()
            evidence["sha256"] = digest
            if digest != str(params["sha256"]).lower():
                raise Failure("%s has sha256 %s, expected %s" % (params["path"], digest, params["sha256"]), evidence)
        text = decode(data)
        if "contains" in params or "matches" in params:
            evidence["content"] = clip(text)
        if "contains" in params and params["contains"] not in text:
            raise Failure("%s does not contain %r" % (params["path"], params["contains"]), evidence)
        if "matches" in params and not re.search(params["matches"], text, re.MULTILINE):
            raise Failure("%s does not match /%s/" % (params["path"], params["matches"]), evidence)
    return "%s is as expected" % params["path"], evidence


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


def run_process(argv, ctx, timeout, stdin_data=None, env=None):
    """Run argv (no shell) in its own process group; kill the group on timeout."""
    cwd = ctx["root"] if ctx["root"] not in ("",) else "/"
    try:
        proc = subprocess.Popen(
            argv, cwd=cwd, env=sandbox_env(ctx, env), stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
        )
    except OSError as exc:
        raise CheckBroken("cannot start %s: %s" % (argv[0], exc.strerror or exc)) from None
    ctx["children"].append(proc)
    try:
        out, err = proc.communicate(stdin_data, timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(proc)
        out, err = proc.communicate()
        raise CheckBroken("%s timed out after %ss" % (argv[0], timeout)) from None
    return proc.returncode, decode(out), decode(err)


def kill_group(proc):
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:
        pass


def check_command(params, ctx):
    command = params.get("command")
    argv = shlex.split(command) if isinstance(command, str) else list(command or [])
    if not argv:
        raise CheckBroken("command is empty")
    argv = resolve_argv([str(a) for a in argv], ctx)
    stdin_data = params.get("stdin", "").encode("utf-8") if params.get("stdin") else None
    code, out, err = run_process(argv, ctx, ctx["timeout"], stdin_data, params.get("env"))
    evidence = {"command": params["command"], "exit_code": code, "stdout": clip(out), "stderr": clip(err)}
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
    stat = read_proc(pid, "stat")
    if stat is None:
        return False
    state = stat.rsplit(b")", 1)[-1].split()[0]
    return state not in (b"Z", b"X")


def process_identity(pid, proc=PROC):
    """(the names a process goes by: its comm and the basenames of argv[0] and argv[1]; its argv),
    from one read of each; (empty, empty) for a process that is gone."""
    try:
        with open(os.path.join(proc, str(pid), "cmdline"), "rb") as handle:
            raw = handle.read()
        with open(os.path.join(proc, str(pid), "comm"), "rb") as handle:
            comm = decode(handle.read()).strip()
    except OSError:
        return set(), []
    argv = [decode(a) for a in raw.split(b"\0") if a]
    return {comm} | {os.path.basename(a) for a in argv[:2]}, argv


def process_names(pid, proc=PROC):
    """The names a process goes by: its comm and the basenames of argv[0] and argv[1]."""
    return process_identity(pid, proc)[0]


def pid_from_file(root, path):
    """The pid a pid file (``path`` under ``root``) holds; 0 when it is absent, empty or not a number."""
    try:
        with open(under_root(root, path)) as handle:
            return int(handle.read().strip() or "0")
    except (OSError, ValueError):
        return 0


def processes_named(name, root):
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or not pid_alive(entry):
            continue
        names, argv = process_identity(entry)
        if name not in names:
            continue
        if root not in ("", "/") and not any(a.startswith(root) for a in argv):
            continue  # a process of another sandbox on the same machine
        found.append(int(entry))
    return found


def check_process(params, ctx):
    want_running = params.get("running", True)
    if "pid_file" in params:
        evidence = {"pid_file": params["pid_file"]}
        pid = pid_from_file(ctx["root"], params["pid_file"])
        evidence["pid"] = pid
        pids = [pid] if pid > 0 and pid_alive(pid) else []
    elif "name" in params:
        pids = processes_named(params["name"], ctx["root"])
        evidence = {"name": params["name"]}
    else:
        raise CheckBroken("process check needs name or pid_file")
    evidence["running_pids"] = pids
    label = params.get("name") or params.get("pid_file")
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


def check_port(params, ctx):
    port = int(params["port"])
    host = params.get("host", "127.0.0.1")
    want = params.get("listening", True)
    if os.path.exists("/proc/net/tcp"):
        listening = port in listening_ports()
        how = "/proc/net/tcp"
    else:
        listening = port_open(host, port, min(ctx["timeout"], 5))
        how = "connect"
    evidence = {"port": port, "listening": listening, "method": how}
    if listening != want:
        raise Failure("port %d is %slistening" % (port, "" if listening else "not "), evidence)
    return "port %d is %slistening" % (port, "" if listening else "not "), evidence


# --- http -------------------------------------------------------------------------------------

class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def check_http(params, ctx):
    url = params["url"]
    if not url.startswith(("http://", "https://")):
        raise CheckBroken("url must start with http:// or https://, got %r" % url)
    wanted = params.get("status", 200)
    wanted = wanted if isinstance(wanted, list) else [wanted]
    handlers = [] if params.get("follow_redirects", True) else [NoRedirect()]
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
        status, body = response.status, response.read(MAX_TEXT * 4)
    except urllib.error.HTTPError as exc:
        status, body = exc.code, exc.read(MAX_TEXT * 4)
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise Failure("%s unreachable: %s" % (url, reason), {"url": url, "error": str(reason)}) from None
    text = decode(body)
    evidence = {"url": url, "status": status, "body": clip(text)}
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


def satisfies(version, constraint, compare=compare_dotted):
    """True when version meets every comma-separated clause (==, !=, >=, <=, >, <, ~=).

    ``compare(a, b)`` orders two versions (negative, zero, positive); the default orders dotted
    numbers, package checks pass dpkg's or rpm's own ordering. ``~=X.Y`` means ``>=X.Y, <X+1``.
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
            if compare(version, ref) < 0 or compare(version, compatible_upper_bound(ref)) >= 0:
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


def package_compare(compare_part):
    """A version order for satisfies() that compares only the parts the constraint names.

    ``>=9.0`` compares the upstream version alone (epoch and Debian revision / rpm release are
    ignored); ``>=1:9.0-2`` compares all three, in dpkg's or rpm's own order.
    """
    def compare(version, reference):
        have_epoch, have_version, have_revision = split_evr(version)
        ref_epoch, ref_version, ref_revision = split_evr(reference)
        if ref_epoch is not None and int(have_epoch or 0) != int(ref_epoch):
            return -1 if int(have_epoch or 0) < int(ref_epoch) else 1
        result = compare_part(have_version, ref_version)
        if result or ref_revision is None:
            return result
        return compare_part(have_revision or "", ref_revision)
    return compare


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


def dpkg_package(name, ctx):
    """Look ``name`` (or ``name:arch``) up in the dpkg database under the sandbox root.

    Reads /var/lib/dpkg/status and then the journal in /var/lib/dpkg/updates/ (what a dpkg run
    that stopped half-way left), as dpkg-query does, so it needs no dpkg on a sandbox root.
    """
    texts = dpkg_database(under_root(ctx["root"], "/var/lib/dpkg"))
    records = {}
    package, _, arch = name.partition(":")
    field = re.compile(r"^Package:[ \t]*%s[ \t]*$" % re.escape(package), re.MULTILINE)
    for text in texts:
        for match in field.finditer(text):  # parse only the package's own stanzas: the file is large
            start, end = text.rfind("\n\n", 0, match.start()), text.find("\n\n", match.end())
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
    satisfies() in the manager's own order; a part it omits (epoch, revision/release) is not compared.
    """
    name = param_text(params, "name", PACKAGE_NAME, "package name")
    want_installed = param_bool(params, "installed", True)
    constraint = param_text(params, "version", required=False)
    if constraint is not None and not want_installed:
        raise CheckBroken("version makes no sense with installed: false")
    manager = params.get("manager") or package_manager(ctx)
    if manager == "dpkg":
        found, compare = dpkg_package(name, ctx), package_compare(dpkg_compare_part)
    elif manager == "rpm":
        found, compare = rpm_package(name, ctx), package_compare(rpm_compare_part)
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
    if not all(satisfies(v, constraint, compare) for v in versions):
        raise Failure("package %s does not satisfy %s (%s)" % (shown, constraint, manager), evidence)
    return "package %s is installed and satisfies %s (%s)" % (shown, constraint, manager), evidence


# --- user and group ---------------------------------------------------------------------------

def account_entries(ctx, path):
    """(line number, fields) of each entry of /etc/passwd or /etc/group under the sandbox root.

    Comments, blank lines and NIS compat lines (``+``/``-``) are skipped, as glibc's files backend
    does; an entry with the wrong number of fields is kept so that looking it up is an error.
    """
    entries = []
    for number, line in enumerate(read_text(under_root(ctx["root"], path), path).splitlines(), 1):
        if line.strip() and line[0] not in "#+-":
            entries.append((number, line.split(":")))
    return entries


def account_entry(entries, name, fields, path):
    """The first entry named ``name`` (as getpwnam/getgrnam return it), or None."""
    for number, parts in entries:
        if parts[0] == name:
            if len(parts) != fields:
                raise CheckBroken("%s line %d has %d fields, expected %d: cannot judge %r"
                                  % (path, number, len(parts), fields, name))
            for index in (2, 3) if fields == 7 else (2,):
                if not parts[index].isdigit():
                    raise CheckBroken("%s line %d: id %r is not a number" % (path, number, parts[index]))
            return parts
    return None


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


def covers(bound, wanted):
    """Whether a socket bound to ``bound`` accepts connections to ``wanted``: the same address, the
    wildcard of its family, or ``::``, which Linux makes dual-stack unless IPV6_V6ONLY is set."""
    if bound in (wanted, ANY_IPV6):
        return True
    return bound == ANY_IPV4 and ":" not in wanted


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


def show_socket(sock):
    return ("[%s]:%d" if ":" in sock["address"] else "%s:%d") % (sock["address"], sock["port"])


def check_listening(params, ctx):
    """A TCP or UDP socket listens on a port, on one address or on all of them, optionally held by a
    named process.

    Semantics of testinfra's Socket.is_listening: without ``address`` the port must be listening on
    every address, IPv4 and IPv6 (a ``::`` socket, or ``0.0.0.0`` where the machine has no IPv6);
    use the port check for "on any address". With ``address``: a socket on that address or on a
    wildcard that covers it (``0.0.0.0`` covers every IPv4 address, ``::`` every address).
    testinfra means the same but its code does not count ``0.0.0.0`` for a specific IPv4 address.
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
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        try:
            packed = socket.inet_pton(family, address)
        except OSError:
            raise CheckBroken("address must be an IPv4 or IPv6 address, got %r" % address) from None
        address = proc_address("".join("%08X" % struct.unpack("=I", packed[i:i + 4])
                                       for i in range(0, len(packed), 4)), family)
    sockets, tables, has_ipv6 = listening_sockets(protocol)
    on_port = [s for s in sockets if s["port"] == port]
    if address is not None:
        matched = [s for s in on_port if covers(s["address"], address)]
        where = "on %s" % address
    else:
        wildcards = {s["address"] for s in on_port} & {ANY_IPV6, ANY_IPV4}
        everywhere = ANY_IPV6 in wildcards or (not has_ipv6 and ANY_IPV4 in wildcards)
        matched = [s for s in on_port if s["address"] in wildcards] if everywhere else []
        where = "on all addresses"
    evidence = {"protocol": protocol, "port": port, "address": address, "listening": bool(matched),
                "matched": sorted({show_socket(s) for s in matched}),
                "on_port": sorted({show_socket(s) for s in on_port}), "source": ", ".join(tables)}
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
    target = os.path.normpath(under_root(ctx["root"], "/" + os.path.normpath(path).lstrip("/")))
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

def check_sysctl(params, ctx):
    """A kernel parameter (``net.ipv4.ip_forward``, or with slashes ``net/ipv4/conf/eth0.1/forwarding``)
    has a value, read from /proc/sys like ``sysctl -n``.

    An integer ``value`` is compared as an integer (as testinfra's Sysctl returns one); a string is
    compared as text with runs of whitespace made single spaces (``32768 60999`` matches the tab that
    /proc writes). A key the kernel does not have is a failure.
    """
    key = param_text(params, "key")
    parts = key.split("/") if "/" in key else key.split(".")
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

def attempt(check, ctx):
    """Run one check once, in a thread bounded by its timeout. Returns (status, message, evidence)."""
    func = CHECKS.get(check.get("type"))
    if func is None:
        return "error", "unknown check type %r" % check.get("type"), {}
    outcome = {}

    def target():
        try:
            message, evidence = func(check.get("params") or {}, ctx)
            outcome["value"] = ("pass", message, evidence)
        except Failure as exc:
            outcome["value"] = ("fail", str(exc), exc.evidence)
        except CheckFailed as exc:
            outcome["value"] = ("fail", str(exc), {})
        except CheckBroken as exc:
            outcome["value"] = ("error", str(exc), {})
        except KeyError as exc:
            outcome["value"] = ("error", "missing parameter %s" % exc, {})
        except Exception as exc:  # one broken check is an error, never a crash of the suite
            outcome["value"] = ("error", "%s: %s" % (type(exc).__name__, exc), {})

    worker = threading.Thread(target=target, daemon=True)
    worker.start()
    worker.join(ctx["timeout"] + 1.0)
    if worker.is_alive():
        for proc in ctx["children"]:
            kill_group(proc)
        return "error", "timed out after %ss" % ctx["timeout"], {}
    return outcome["value"]


def run_check(check, root):
    """Run a check with its retries; fail-then-pass is reported as flaky, never as pass."""
    started = time.monotonic()
    retries = int(check.get("retries", 0))
    history = []
    while True:
        ctx = {"root": root, "timeout": float(check.get("timeout", 30)), "children": []}
        status, message, evidence = attempt(check, ctx)
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


def run_manifest(manifest, out):
    """Run every check of a manifest, writing one JSON line per result to ``out``."""
    if manifest.get("format") != FORMAT:
        raise SystemExit("lab runner: manifest format %r not supported" % manifest.get("format"))
    root = manifest.get("root", "/")
    checks = manifest.get("checks", [])
    for check in checks:
        if check.get("broken"):
            line = {"id": check.get("id"), "status": "error", "message": str(check["broken"]),
                    "evidence": {}, "duration_ms": 0, "attempts": 0}
        elif check.get("skip"):
            line = {"id": check.get("id"), "status": "skip", "message": str(check["skip"]),
                    "evidence": {}, "duration_ms": 0, "attempts": 0}
        else:
            line = run_check(check, root)
        out.write(json.dumps(line, sort_keys=True) + "\n")
        out.flush()
    out.write(json.dumps({"end": True, "checks": len(checks)}) + "\n")
    out.flush()
    return 0


def main(data=None):
    """Entry point: read the manifest (JSON) from ``data`` or stdin and run it."""
    if data is None:
        data = sys.stdin.buffer.read()
    return run_manifest(json.loads(data.decode("utf-8")), sys.stdout)


if __name__ == "__main__":
    sys.exit(main())
