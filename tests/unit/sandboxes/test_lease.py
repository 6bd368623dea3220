"""Leases: one holder at a time; a crashed holder never blocks a sandbox forever."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from lab.errors import InfrastructureError
from lab.sandboxes.lease import current_holder, lease

HOLD = """
import sys, time
from pathlib import Path
from lab.sandboxes.lease import lease
with lease(Path(sys.argv[1]), "sbx", "campaign other", 5):
    print("held", flush=True)
    time.sleep(60)
"""


def test_second_holder_times_out_with_a_clear_message(tmp_path: Path) -> None:
    with lease(tmp_path, "sbx", "campaign A", 1):
        assert current_holder(tmp_path / "leases" / "sbx.lock") == "campaign A"
        with pytest.raises(InfrastructureError) as info, lease(tmp_path, "sbx", "campaign B", 1):
            pass
        assert str(info.value) == ("sandbox sbx is held by campaign A; waited 1s. Wait for it to finish, or wait "
                                   "longer: timeouts: lease: (seconds) in lab.yml; the lab sandbox commands also "
                                   "take --lease-timeout")
    assert current_holder(tmp_path / "leases" / "sbx.lock") is None
    with lease(tmp_path, "sbx", "campaign B", 0.5):
        pass


def test_a_killed_holder_releases_the_lease(tmp_path: Path) -> None:
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline() == "held\n"
    assert current_holder(tmp_path / "leases" / "sbx.lock") == "campaign other"
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    holder.stdout.close()
    with lease(tmp_path, "sbx", "campaign after crash", 2):
        assert current_holder(tmp_path / "leases" / "sbx.lock") == "campaign after crash"
