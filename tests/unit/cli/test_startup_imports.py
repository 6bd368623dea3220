"""`lab --help` (and any command that prints no live table or runs no playbook) loads no heavy library."""

from __future__ import annotations

import subprocess
import sys

# Each is imported where it is used: rich when a live table is drawn, Ansible (and its runner) when a
# playbook or the inventory resolution runs in a child process.
LOADED_ONLY_WHEN_USED = ("rich", "ansible", "ansible_runner", "mitogen")


def test_lab_help_imports_no_heavy_library() -> None:
    probe = ("import sys\nfrom lab.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
             f"print(sorted(m for m in {LOADED_ONLY_WHEN_USED!r} if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.splitlines()[-1] == "[]"
    assert "Usage: lab [OPTIONS] COMMAND [ARGS]..." in done.stdout
