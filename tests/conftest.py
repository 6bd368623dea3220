"""Fixtures shared by every tier: a copy of the default lab and the in-process CLI (tests/support/labfiles.py);
the Hypothesis profiles."""

import os

from hypothesis import settings

from tests.support.labfiles import lab_dir, run_cli

__all__ = ["lab_dir", "run_cli"]

# Property tests take their example count from the profile. `ci` (the default: `make test`, CI) runs
# 10,000 examples per property; `fast` (`make test-fast`) a few hundred, for a quick look while working.
# Pick one with `--hypothesis-profile NAME` or $HYPOTHESIS_PROFILE.
settings.register_profile("ci", max_examples=10_000, deadline=None)
settings.register_profile("fast", max_examples=250, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or "ci")
