"""A real campaign on a PostgreSQL store (``LAB_STORE``), end to end through the ``lab`` CLI, judged
as on SQLite: the starter lab's build 1.0.0 passes, a build with a wrong configuration is blocked.
The DSN carries a canary password that must reach no output, file, report or store row."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.labfiles import files_holding, lab_command
from tests.support.postgres import Cluster, postgres_cluster, table_dumps

__all__ = ["postgres_cluster"]
pytestmark = pytest.mark.integration
CANARY = "pw-CANARY-7f3a9"


def campaign(root: Path, env: dict[str, str]) -> list[tuple[int, str]]:
    """``lab init``, build 1.0.0 and a broken 1.2.0, run both: (exit code, output without ids and times)."""
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*lab_command(), *args], capture_output=True, text=True, timeout=900, env=env,
                              check=False, cwd=root.parent)

    root.parent.mkdir(parents=True)
    assert run("init", str(root)).returncode == 0
    broken = root.parent / f"{root.name}-broken"
    shutil.copytree(root / "products" / "hello", broken)
    conf = broken / "etc" / "hello" / "hello.conf"
    conf.write_text(conf.read_text().replace("Hello from the lab", "Hi"))
    lab_yml = str(root / "lab.yml")
    assert run("--lab", lab_yml, "build", "hello@1.0.0").returncode == 0
    built = run("--lab", lab_yml, "build", "hello", "--version", "1.2.0", "--source", str(broken))
    assert built.returncode == 0, built.stderr
    outcomes = []
    for ref in ("hello@1.0.0", "hello@1.2.0"):
        done = run("--lab", lab_yml, "run", ref)
        assert CANARY not in done.stdout + done.stderr
        text = re.sub(r"\d{4}-\d\d-\d\dT[\d:.]+[+-]\d\d:\d\d", "TIME", done.stdout)
        text = re.sub(r"\d{8}-\d{6}-[0-9a-f]{4}", "ID", text)
        text = re.sub(r"\b\d+(\.\d+)?\s*(ms|s)\b|\d\d:\d\d:\d\d", "T", text)
        outcomes.append((done.returncode, "\n".join(line for line in text.splitlines()
                                                      if line.startswith(("hello@", "  [")))))
    return outcomes


def test_a_campaign_on_postgresql_is_judged_as_on_sqlite(tmp_path: Path, postgres_cluster: Cluster) -> None:
    env = {k: v for k, v in os.environ.items() if k != "LAB_STORE"} | {"CI": "1"}
    on_sqlite = campaign(tmp_path / "sqlite" / "lab", env)
    dsn = postgres_cluster.create_database().replace(f"{postgres_cluster.user}@", f"{postgres_cluster.user}:{CANARY}@")
    on_postgres = campaign(tmp_path / "pg" / "lab", env | {"LAB_STORE": dsn})
    assert [code for code, _ in on_sqlite] == [0, 1]
    assert "PROMOTABLE to pilot" in on_sqlite[0][1] and "BLOCKED from pilot" in on_sqlite[1][1]
    assert on_postgres == on_sqlite
    assert not (tmp_path / "pg" / "lab" / ".lab" / "lab.sqlite3").exists()  # the store is PostgreSQL's
    assert files_holding(tmp_path / "pg", CANARY.encode()) == []
    import psycopg

    with psycopg.connect(dsn.replace(f":{CANARY}@", "@")) as db:
        rows = db.execute("SELECT version, state FROM campaigns ORDER BY created_at").fetchall()
        assert rows == [("1.0.0", "finished"), ("1.2.0", "finished")]
        assert db.execute("SELECT count(*) FROM audit").fetchone()[0] >= 4
    dumps = table_dumps(dsn.replace(f":{CANARY}@", "@"))
    assert "campaigns" in dumps and [table for table, dump in dumps.items() if CANARY in dump] == []
