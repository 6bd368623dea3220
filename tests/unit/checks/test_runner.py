"""The check runner (lab/checks/runner.py), run in-process on manifests against a temporary root."""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lab.checks import runner


def run(root: Path, *checks: dict[str, Any]) -> list[dict[str, Any]]:
    """Run checks through the runner's own entry point; return its JSON lines (the end line last)."""
    manifest = {"format": 1, "suite": "t", "root": str(root), "checks": [
        {"timeout": 5, "retries": 0, **c} for c in checks]}
    out = io.StringIO()
    runner.run_manifest(manifest, out)
    return [json.loads(line) for line in out.getvalue().splitlines()]


def one(root: Path, check: dict[str, Any]) -> dict[str, Any]:
    lines = run(root, {"id": "c", **check})
    assert lines[-1] == {"end": True, "checks": 1}
    return lines[0]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "app.conf").write_text("mode = strict\nport = 8080\n")
    os.chmod(tmp_path / "etc" / "app.conf", 0o640)
    (tmp_path / "usr" / "local" / "bin").mkdir(parents=True)
    return tmp_path


def test_file_checks_pass_and_fail_with_evidence(root: Path) -> None:
    digest = "5d1b1e3c0eb3c3c0c4a54c8d0c4bb3b4c8c2a26d05e9e2b0b76b0bbf2f8e1c2a"
    assert one(root, {"type": "file", "params": {"path": "/etc/app.conf", "mode": "0640"}})["status"] == "pass"
    assert one(root, {"type": "file", "params": {"path": "/etc/app.conf", "contains": "strict"}})["status"] == "pass"
    matches = one(root, {"type": "file", "params": {"path": "/etc/app.conf", "matches": r"^port = \d+$"}})
    assert matches["status"] == "pass"
    wrong_mode = one(root, {"type": "file", "params": {"path": "/etc/app.conf", "mode": "0644"}})
    assert wrong_mode["status"] == "fail"
    assert wrong_mode["evidence"]["mode"] == "0640"
    missing = one(root, {"type": "file", "params": {"path": "/etc/nope"}})
    assert (missing["status"], missing["evidence"]["exists"]) == ("fail", False)
    absent = one(root, {"type": "file", "params": {"path": "/etc/nope", "exists": False}})
    assert absent["status"] == "pass"
    bad_digest = one(root, {"type": "file", "params": {"path": "/etc/app.conf", "sha256": digest}})
    assert bad_digest["status"] == "fail"
    import hashlib

    real = hashlib.sha256((root / "etc" / "app.conf").read_bytes()).hexdigest()
    assert bad_digest["evidence"]["sha256"] == real
    assert one(root, {"type": "file", "params": {"path": "/etc/app.conf", "sha256": real}})["status"] == "pass"
    directory = one(root, {"type": "file", "params": {"path": "/etc", "kind": "file"}})
    assert (directory["status"], directory["evidence"]["kind"]) == ("fail", "directory")


def test_command_exit_code_and_streams(root: Path) -> None:
    tool = root / "usr" / "local" / "bin" / "greet"
    tool.write_text("#!/bin/sh\necho \"hello $1\"\necho warn >&2\nexit ${2:-0}\n")
    tool.chmod(0o755)
    ok = one(root, {"type": "command", "params": {"command": ["greet", "lab"], "stdout": "^hello lab$"}})
    assert (ok["status"], ok["evidence"]["exit_code"], ok["evidence"]["stdout"]) == ("pass", 0, "hello lab\n")
    code = one(root, {"type": "command", "params": {"command": "greet lab 3"}})
    assert (code["status"], code["evidence"]["exit_code"]) == ("fail", 3)
    assert code["message"] == "exit code 3, expected 0"
    assert one(root, {"type": "command", "params": {"command": "greet x 3", "exit_code": 3}})["status"] == "pass"
    stderr = one(root, {"type": "command", "params": {"command": "greet x", "stderr_not": "warn"}})
    assert stderr["status"] == "fail"
    missing = one(root, {"type": "command", "params": {"command": ["no-such-tool-xyz"]}})
    assert missing["status"] == "error"
    assert "cannot start no-such-tool-xyz" in missing["message"]


def test_command_arguments_are_data_not_shell(root: Path) -> None:
    marker = root / "pwned"
    result = one(root, {"type": "command", "params": {"command": ["echo", f"$(touch {marker})", ";", "rm", "-rf"]}})
    assert result["status"] == "pass"
    assert result["evidence"]["stdout"] == f"$(touch {marker}) ; rm -rf\n"
    assert not marker.exists()


def test_process_by_pid_file_and_by_name(root: Path) -> None:
    (root / "run").mkdir()
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", str(root)])
    try:
        (root / "run" / "svc.pid").write_text(str(proc.pid))
        assert one(root, {"type": "process", "params": {"pid_file": "/run/svc.pid"}})["status"] == "pass"
        by_name = one(root, {"type": "process", "params": {"name": Path(sys.executable).name}})
        assert by_name["status"] == "pass"
        assert proc.pid in by_name["evidence"]["running_pids"]
    finally:
        proc.kill()
        proc.wait()
    dead = one(root, {"type": "process", "params": {"pid_file": "/run/svc.pid"}})
    assert (dead["status"], dead["evidence"]["pid"]) == ("fail", proc.pid)
    assert one(root, {"type": "process", "params": {"pid_file": "/run/svc.pid", "running": False}})["status"] == "pass"


def test_process_by_name_ignores_other_sandboxes(root: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    other = tmp_path_factory.mktemp("other-sandbox")
    theirs = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", str(other)])
    ours = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", str(root)])
    try:
        result = one(root, {"type": "process", "params": {"name": Path(sys.executable).name}})
        # the same program under this sandbox's root is found; the other sandbox's is not
        assert (result["status"], result["evidence"]["running_pids"]) == ("pass", [ours.pid])
    finally:
        for proc in (theirs, ours):
            proc.kill()
            proc.wait()


@pytest.fixture
def http_server() -> Iterator[int]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status = 200 if self.path == "/ok" else 503
            body = b'{"status": "ok"}' if status == 200 else b"down"
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_http_status_and_body(root: Path, http_server: int) -> None:
    base = f"http://127.0.0.1:{http_server}"
    ok = one(root, {"type": "http", "params": {"url": f"{base}/ok", "body": '"status": "ok"'}})
    assert (ok["status"], ok["evidence"]["status"]) == ("pass", 200)
    down = one(root, {"type": "http", "params": {"url": f"{base}/down"}})
    assert (down["status"], down["evidence"]["status"], down["evidence"]["body"]) == ("fail", 503, "down")
    assert one(root, {"type": "http", "params": {"url": f"{base}/down", "status": [200, 503]}})["status"] == "pass"
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    unreachable = one(root, {"type": "http", "params": {"url": f"http://127.0.0.1:{closed}/"}})
    assert unreachable["status"] == "fail"
    assert "unreachable" in unreachable["message"]


def test_port_listening(root: Path, http_server: int) -> None:
    assert one(root, {"type": "port", "params": {"port": http_server}})["status"] == "pass"
    assert one(root, {"type": "port", "params": {"port": str(http_server)}})["status"] == "pass"
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        free = sock.getsockname()[1]
    result = one(root, {"type": "port", "params": {"port": free}})
    assert (result["status"], result["evidence"]["listening"]) == ("fail", False)


@pytest.mark.parametrize(("version", "constraint", "expected"), [
    ("2.0.0", ">=2.0, <3", True),
    ("2.10.1", ">2.9", True),
    ("2.9", ">=2.10", False),
    ("3.0", "<3", False),
    ("1.4.2", "~=1.4.0", True),
    ("1.5.0", "~=1.4.0", False),
    ("1.0", "==1.0.0", True),
    ("1.0.1", "!=1.0.1", False),
])
def test_version_constraints(version: str, constraint: str, expected: bool) -> None:
    assert runner.satisfies(version, constraint) is expected


def test_version_check_from_registry_file_and_command(root: Path) -> None:
    registry = root / "var" / "lib" / "lab" / "installed"
    registry.mkdir(parents=True)
    (registry / "app.json").write_text(json.dumps({"version": "2.1.0"}))
    assert one(root, {"type": "version", "params": {"product": "app", "constraint": ">=2"}})["status"] == "pass"
    too_new = one(root, {"type": "version", "params": {"product": "app", "constraint": "<2.1"}})
    assert (too_new["status"], too_new["evidence"]["installed"]) == ("fail", "2.1.0")
    absent = one(root, {"type": "version", "params": {"product": "other", "constraint": ">=1"}})
    assert absent["status"] == "fail"
    assert absent["message"] == "other is not installed (no version found)"
    by_command = one(root, {"type": "version", "params": {
        "product": "python", "constraint": ">=3.8", "command": [sys.executable, "--version"]}})
    assert by_command["status"] == "pass"
    bad = one(root, {"type": "version", "params": {"product": "app", "constraint": "about 2"}})
    assert bad["status"] == "error"


def test_timeout_is_an_error_and_the_suite_goes_on(root: Path) -> None:
    lines = run(
        root,
        {"id": "slow", "type": "command", "params": {"command": ["sleep", "30"]}, "timeout": 0.5},
        {"id": "next", "type": "file", "params": {"path": "/etc/app.conf"}},
    )
    assert [(line["id"], line["status"]) for line in lines[:2]] == [("slow", "error"), ("next", "pass")]
    assert "timed out after 0.5s" in lines[0]["message"]


def test_broken_checks_are_errors_never_crashes(root: Path) -> None:
    lines = run(
        root,
        {"id": "unknown", "type": "teleport", "params": {}},
        {"id": "missing-param", "type": "http", "params": {}},
        {"id": "bad-regex", "type": "file", "params": {"path": "/etc/app.conf", "matches": "("}},
        {"id": "broken", "type": "file", "params": {}, "broken": "variable 'x' is not set"},
        {"id": "skipped", "type": "file", "params": {"path": "/x"}, "skip": "not on this platform"},
        {"id": "fine", "type": "file", "params": {"path": "/etc/app.conf"}},
    )
    statuses = {line["id"]: line["status"] for line in lines[:-1]}
    assert statuses == {"unknown": "error", "missing-param": "error", "bad-regex": "error", "broken": "error",
                        "skipped": "skip", "fine": "pass"}
    assert lines[-1] == {"end": True, "checks": 6}


def test_retry_records_fail_then_pass_as_flaky(root: Path) -> None:
    counter = root / "count"
    script = root / "usr" / "local" / "bin" / "second-time-lucky"
    script.write_text(f"#!/bin/sh\nn=$(cat {counter} 2>/dev/null || echo 0)\necho $((n+1)) > {counter}\n"
                      "[ \"$n\" -ge 1 ]\n")
    script.chmod(0o755)
    flaky = one(root, {"type": "command", "params": {"command": ["second-time-lucky"]}, "retries": 1})
    assert (flaky["status"], flaky["attempts"]) == ("flaky", 2)
    assert flaky["evidence"]["earlier_attempts"] == [{"status": "fail", "message": "exit code 1, expected 0"}]
    counter.unlink()
    no_retry = one(root, {"type": "command", "params": {"command": ["second-time-lucky"]}, "retries": 0})
    assert (no_retry["status"], no_retry["attempts"]) == ("fail", 1)
    always = one(root, {"type": "command", "params": {"command": ["false"]}, "retries": 1})
    assert (always["status"], always["attempts"]) == ("fail", 2)


def test_huge_and_hostile_output_is_clipped(root: Path) -> None:
    result = one(root, {"type": "command", "params": {
        "command": [sys.executable, "-c", "import sys; sys.stdout.write('<script>\\x00\\x1b[31m' + 'A' * 10_000_000)"],
        "stdout": "^B"}})
    assert result["status"] == "fail"
    stdout = result["evidence"]["stdout"]
    assert stdout.startswith("<script>\x00\x1b[31mAAAA")
    whole = ("<script>\x00\x1b[31m" + "A" * 10_000_000).encode()
    marker = (f"\n[... clipped by the runner: 10000014 bytes in all, sha256 {hashlib.sha256(whole).hexdigest()}; "
              "the first 49152 and the last 16384 bytes are shown ...]\n")
    head, tail = stdout.split(marker)  # the true size and digest of all of it, between head and tail
    assert (head.encode(), tail) == (whole[:49152], "A" * 16384)


def test_manifest_of_an_unknown_format_is_refused(root: Path) -> None:
    with pytest.raises(SystemExit, match="format 2 not supported"):
        runner.run_manifest({"format": 2, "checks": []}, io.StringIO())
