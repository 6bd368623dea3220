"""Fixtures shared by every tier: a copy of the default lab and the in-process CLI (tests/support/labfiles.py)."""

from tests.support.labfiles import lab_dir, run_cli

__all__ = ["lab_dir", "run_cli"]
