"""Read playbooks the way Ansible does, in a process of its own (Ansible's loaders change global state).

``python playbook_tasks.py RENDER_FILE VARS_JSON FILE...`` prints JSON with two keys: ``tasks``, one
entry per task of the FILEs (playbooks or task files; blocks, rescue, always and handlers included) with
the module Ansible resolves and the arguments it would pass; ``rendered``, the first play's vars of RENDER_FILE rendered
by Ansible's templar with VARS_JSON as extra variables. (One process: importing Ansible is slow.)
"""

from __future__ import annotations

import json
import sys
from typing import Any


def task_entries(tasks: list[Any], file: str, play: str) -> list[dict[str, Any]]:
    from ansible.parsing.mod_args import ModuleArgsParser

    entries = []
    for task in tasks or []:
        if "block" in task:
            for section in ("block", "rescue", "always"):
                entries += task_entries(task.get(section) or [], file, play)
            continue
        action, args, _ = ModuleArgsParser(task_ds=dict(task)).parse()
        entries.append({"file": file, "play": play, "task": task.get("name", "(unnamed)"), "module": action,
                        "args": {k: v for k, v in args.items()}})
    return entries


def tasks(files: list[str]) -> list[dict[str, Any]]:
    from ansible.parsing.dataloader import DataLoader

    loader = DataLoader()
    entries = []
    for file in files:
        loaded = loader.load_from_file(file) or []
        if loaded and not any("hosts" in item or "import_playbook" in item for item in loaded):
            entries += task_entries(loaded, file, "")  # a task file (include_tasks), not a playbook
            continue
        for play in loaded:
            for section in ("pre_tasks", "tasks", "post_tasks", "handlers"):
                entries += task_entries(play.get(section) or [], file, play.get("name", ""))
    return entries


def render(file: str, variables: dict[str, Any]) -> dict[str, Any]:
    from ansible.parsing.dataloader import DataLoader
    from ansible.template import Templar

    loader = DataLoader()
    play = loader.load_from_file(file, trusted_as_template=True)[0]
    merged = {**play.get("vars", {}), **variables}
    templar = Templar(loader=loader, variables=merged)
    return {name: templar.template(merged[name]) for name in play.get("vars", {})}


def main(argv: list[str]) -> int:
    from ansible.plugins.loader import init_plugin_loader

    init_plugin_loader()
    result = {"tasks": tasks(argv[2:]), "rendered": render(argv[0], json.loads(argv[1]))}
    print(json.dumps(result, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
