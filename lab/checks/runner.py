"""The lab's check runner: executes a manifest on a sandbox and prints one JSON line per result.

Stdlib only, Python 3.8+. The transport sends this file and a manifest (JSON) in one go;
parameters stay data, nothing from a suite is ever turned into code here.

Input (stdin or ``run_manifest``): {"format": 1, "suite": str, "root": str, "checks": [
  {"id": str, "type": str, "params": {...}, "timeout": float, "retries": int}, ...]}
Output: one line per check: {"id", "status", "message", "evidence", "duration_ms", "attempts"},
then a last line {"end": true, "checks": n}.
"""

import hashlib
import json
import os
import re
import shlex
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

MAX_TEXT = 64 * 1024
FORMAT = 1


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
        env["PATH"] = os.pathsep.join(bins + [env.get("PATH", "")])
        env["SANDBOX_ROOT"] = root
    env.update(extra or {})
    return env


def resolve_argv(argv, ctx):
    root = ctx["root"]
    if root in ("", "/") or "/" in argv[0]:
        if argv[0].startswith("/"):
            candidate = under_root(root, argv[0])
            if os.path.exists(candidate):
                return [candidate] + argv[1:]
        return argv
    for sub in ("usr/local/bin", "usr/bin", "bin"):
        candidate = os.path.join(root, sub, argv[0])
        if os.path.exists(candidate):
            return [candidate] + argv[1:]
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
        raise CheckBroken("cannot start %s: %s" % (argv[0], exc.strerror or exc))
    ctx["children"].append(proc)
    try:
        out, err = proc.communicate(stdin_data, timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(proc)
        out, err = proc.communicate()
        raise CheckBroken("%s timed out after %ss" % (argv[0], timeout))
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


def processes_named(name, root):
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or not pid_alive(entry):
            continue
        raw = read_proc(entry, "cmdline") or b""
        argv = [decode(a) for a in raw.split(b"\0") if a]
        comm = decode(read_proc(entry, "comm") or b"").strip()
        names = {comm} | {os.path.basename(a) for a in argv[:2]}
        if name not in names:
            continue
        if root not in ("", "/") and not any(a.startswith(root) for a in argv):
            continue  # a process of another sandbox on the same machine
        found.append(int(entry))
    return found


def check_process(params, ctx):
    want_running = params.get("running", True)
    if "pid_file" in params:
        path = under_root(ctx["root"], params["pid_file"])
        evidence = {"pid_file": params["pid_file"]}
        try:
            with open(path) as handle:
                pid = int(handle.read().strip() or "0")
        except (OSError, ValueError):
            pid = 0
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
        raise Failure("%s unreachable: %s" % (url, reason), {"url": url, "error": str(reason)})
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


def satisfies(version, constraint):
    """True when version meets every comma-separated clause (==, !=, >=, <=, >, <, ~=)."""
    ops = {
        "==": lambda a, b: a == b, "!=": lambda a, b: a != b, ">=": lambda a, b: a >= b,
        "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, "<": lambda a, b: a < b,
    }
    have = version_key(version)
    for clause in [c.strip() for c in constraint.split(",") if c.strip()]:
        match = re.match(r"^(~=|==|!=|>=|<=|>|<)\s*([0-9A-Za-z.\-+]+)$", clause)
        if not match:
            raise CheckBroken("bad version constraint clause %r" % clause)
        op, ref = match.groups()
        if op == "~=":
            ref_parts = ref.split(".")
            upper = ref_parts[:-1]
            if not upper:
                raise CheckBroken("~= needs at least two version parts: %r" % clause)
            prefix = version_key(".".join(upper))
            if not (have >= version_key(ref) and have[: len(prefix)] == prefix):
                return False
        elif not ops[op](have, version_key(ref)):
            return False
    return True


def installed_version(params, ctx):
    if "command" in params:
        command = params["command"]
        argv = shlex.split(command) if isinstance(command, str) else [str(a) for a in command]
        code, out, err = run_process(resolve_argv(argv, ctx), ctx, ctx["timeout"])
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


CHECKS = {
    "file": check_file,
    "command": check_command,
    "process": check_process,
    "port": check_port,
    "http": check_http,
    "version": check_version,
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
