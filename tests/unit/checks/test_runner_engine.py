"""The runner's engine: shared sources read once per manifest and again when they change, checks
judged ahead on one thread with their timeouts kept, network checks judged concurrently, and
every line in the manifest's order."""

from __future__ import annotations

import http.server
import io
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lab.checks import runner

PASSWD = "root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000::/home/alice:/bin/sh\n"
GROUP = "root:x:0:\nalice:x:1000:\nstaff:x:50:alice\n"
STATUS = ("Package: base-files\nStatus: install ok installed\nArchitecture: amd64\nVersion: 12.4\n\n"
          "Package: curl\nStatus: install ok installed\nArchitecture: amd64\nVersion: 7.88.1-10\n")


def run(root: Path, *checks: dict[str, Any]) -> list[dict[str, Any]]:
    manifest = {"format": 1, "suite": "t", "root": str(root),
                "checks": [{"timeout": 5, "retries": 0, **c} for c in checks]}
    out = io.StringIO()
    runner.run_manifest(manifest, out)
    return [json.loads(line) for line in out.getvalue().splitlines()]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "passwd").write_text(PASSWD)
    (tmp_path / "etc" / "group").write_text(GROUP)
    (tmp_path / "var" / "lib" / "dpkg").mkdir(parents=True)
    (tmp_path / "var" / "lib" / "dpkg" / "status").write_text(STATUS)
    return tmp_path


def test_account_and_dpkg_files_are_read_once_per_manifest(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reads: list[str] = []
    real = runner.read_text
    monkeypatch.setattr(runner, "read_text", lambda path, what: reads.append(what) or real(path, what))
    checks = [{"id": f"u{n}", "type": "user", "params": {"name": "alice", "groups": ["staff"]}} for n in range(30)]
    checks += [{"id": f"f{n}", "type": "file", "params": {"path": "/etc/passwd", "owner": "root"}} for n in range(30)]
    checks += [{"id": f"p{n}", "type": "package", "params": {"name": "curl"}} for n in range(30)]
    lines = run(root, *checks)
    assert [line["status"] for line in lines[:-1]] == ["pass"] * 90
    assert sorted(reads) == ["/etc/group", "/etc/passwd", "/var/lib/dpkg/status"]
    assert lines[60]["evidence"]["version"] == "7.88.1-10"


def test_a_source_changed_during_the_manifest_is_read_again(root: Path) -> None:
    add_user = ["sh", "-c", "echo 'bob:x:1001:1001::/home/bob:/bin/sh' >> etc/passwd; "
                "printf '\\nPackage: vim\\nStatus: install ok installed\\nArchitecture: amd64\\nVersion: 9.0\\n' "
                ">> var/lib/dpkg/status"]
    lines = run(root,
                {"id": "before", "type": "user", "params": {"name": "bob"}},
                {"id": "vim-before", "type": "package", "params": {"name": "vim"}},
                {"id": "change", "type": "command", "params": {"command": add_user}},
                {"id": "after", "type": "user", "params": {"name": "bob"}},
                {"id": "vim-after", "type": "package", "params": {"name": "vim"}},
                {"id": "file-owner", "type": "file", "params": {"path": "/etc/passwd", "owner": "root"}})
    assert [(line["id"], line["status"]) for line in lines[:-1]] == [
        ("before", "fail"), ("vim-before", "fail"), ("change", "pass"), ("after", "pass"),
        ("vim-after", "pass"), ("file-owner", "pass")]
    assert lines[3]["evidence"]["uid"] == 1001
    assert lines[4]["evidence"]["version"] == "9.0"


def test_a_check_that_overruns_is_an_error_and_the_next_ones_are_still_judged(
        root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    release = threading.Event()
    real = runner.CHECKS["file"]

    def hangs_on_fifo(params: dict[str, Any], ctx: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        if params["path"] == "/hangs":
            release.wait(30)  # what a read of a dead network mount does
        return real(params, ctx)  # type: ignore[no-any-return]

    monkeypatch.setitem(runner.CHECKS, "file", hangs_on_fifo)
    try:
        lines = run(root,
                    {"id": "a", "type": "user", "params": {"name": "alice"}},
                    {"id": "hung", "type": "file", "params": {"path": "/hangs"}, "timeout": 0.2},
                    {"id": "b", "type": "file", "params": {"path": "/etc/group"}},
                    {"id": "c", "type": "group", "params": {"name": "staff", "members": ["alice"]}})
    finally:
        release.set()
    assert [(line["id"], line["status"]) for line in lines[:-1]] == [
        ("a", "pass"), ("hung", "error"), ("b", "pass"), ("c", "pass")]
    assert lines[1]["message"] == "timed out after 0.2s"
    assert lines[-1] == {"end": True, "checks": 4}


@pytest.fixture
def rendezvous_server() -> Iterator[tuple[int, list[int]]]:
    """An HTTP server whose answers wait (up to 3 s) until 3 requests are in flight at once; it
    records the most it saw in flight."""
    state = {"now": 0, "most": [0]}
    lock, three = threading.Lock(), threading.Event()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            with lock:
                state["now"] += 1  # type: ignore[operator]
                state["most"][0] = max(state["most"][0], state["now"])  # type: ignore[index]
                if state["now"] >= 3:
                    three.set()
            three.wait(3)
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"ok")
            with lock:
                state["now"] -= 1  # type: ignore[operator]

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], state["most"]  # type: ignore[misc]
    server.shutdown()
    server.server_close()


def test_network_checks_in_a_row_are_judged_together_and_reported_in_order(
        root: Path, rendezvous_server: tuple[int, list[int]]) -> None:
    port, most = rendezvous_server
    url = f"http://127.0.0.1:{port}/"
    started = time.monotonic()
    lines = run(root, *[{"id": f"h{n}", "type": "http", "params": {"url": url}} for n in range(4)],
                {"id": "u", "type": "user", "params": {"name": "alice"}})
    assert [(line["id"], line["status"]) for line in lines[:-1]] == [
        ("h0", "pass"), ("h1", "pass"), ("h2", "pass"), ("h3", "pass"), ("u", "pass")]
    assert most[0] >= 3, f"at most {most[0]} requests were in flight at once after {time.monotonic() - started:.1f}s"


def test_batches_keep_commands_apart_and_in_order() -> None:
    kinds = ["file", "user", "http", "port", "command", "http", "package", "service"]
    checks = [{"id": str(n), "type": kind} for n, kind in enumerate(kinds)]
    grouped = [(kind, [c["id"] for c in run_]) for kind, run_ in runner.batches(checks)]
    assert grouped == [(runner.AHEAD, ["0", "1"]), (runner.CONCURRENT, ["2", "3"]), (None, ["4"]),
                       (runner.CONCURRENT, ["5"]), (runner.AHEAD, ["6"]), (None, ["7"])]
