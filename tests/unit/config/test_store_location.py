"""Where the store is: SQLite by default, PostgreSQL from lab.yml or $LAB_STORE, the DSN never shown whole."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab.config.store_location import StoreLocation, redact, store_location
from lab.errors import ConfigError


def test_without_a_setting_the_store_is_sqlite_in_the_state_dir(tmp_path: Path) -> None:
    where = store_location(None, None, tmp_path / ".lab", tmp_path / "lab.yml")
    assert (where.backend, where.path) == ("sqlite", tmp_path / ".lab" / "lab.sqlite3")


def test_lab_store_wins_over_lab_yml(tmp_path: Path) -> None:
    where = store_location("postgresql://a@h/one", "postgresql://b@h/two", tmp_path, tmp_path / "lab.yml")
    assert (where.backend, where.dsn) == ("postgresql", "postgresql://b@h/two")


@pytest.mark.parametrize(("dsn", "shown"), [
    ("postgresql://lab:s3cr%40t@db:5432/lab", "postgresql://lab:***@db:5432/lab"),
    ("postgres://lab@db/lab?password=s3cr%40t&sslmode=require", "postgres://lab@db/lab?password=***&sslmode=require"),
    ("postgresql://lab@db/lab", "postgresql://lab@db/lab"),
])
def test_the_dsn_is_shown_only_redacted(dsn: str, shown: str) -> None:
    where = StoreLocation(dsn=dsn)
    assert where.shown == shown and "s3cr" not in repr(where)
    said = where.scrub(f"failed for {dsn}: password s3cr@t rejected")
    assert said == f"failed for {shown}: password {'***' if 's3cr' in dsn else 's3cr@t'} rejected"


def test_a_keyword_password_is_redacted() -> None:
    assert redact("host=db password='p w' user=lab") == "host=db password=*** user=lab"


@pytest.mark.parametrize("value", ["mysql://lab:hunter2@db/lab", "lab:hunter2@db", "postgresql://lab:hunter2@db:port/x"])
def test_anything_but_a_postgresql_url_is_refused_redacted(tmp_path: Path, value: str) -> None:
    with pytest.raises(ConfigError) as refused:
        store_location(None, value, tmp_path, tmp_path / "lab.yml")
    assert refused.value.exit_code == 2 and "hunter2" not in str(refused.value)
    assert str(refused.value).startswith("$LAB_STORE: ")
