#!/usr/bin/env bash
# The demo campaign on the embedded default lab: build A passes and is promoted to pilot,
# build B breaks the baseline journal service and is blocked. Exits 0 when the lab judged
# both builds as the story says, non-zero otherwise.
set -uo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n=== %s\n' "$*"; }
expect() {  # expect CODE COMMAND...: run, and fail the demo unless it exits with CODE
    local want=$1; shift
    "$@"; local got=$?
    if [ "$got" -ne "$want" ]; then
        echo "demo: '$*' exited $got, expected $want" >&2
        exit 1
    fi
}

step "Validate the default lab"
expect 0 lab validate
step "Build A and build B from source and register their sha256 digests"
expect 0 lab build care-planner@2.0.0
expect 0 lab build care-planner@2.1.0
step "Campaign of build A (care-planner 2.0.0): expected to pass (exit 0)"
expect 0 lab run care-planner@2.0.0
step "Campaign of build B (care-planner 2.1.0): expected to be blocked (exit 1)"
expect 1 lab run care-planner@2.1.0
step "Promote A to pilot: allowed"
expect 0 lab promote care-planner@2.0.0 --to pilot
step "Promote B to pilot: refused with the verdict's reasons (exit 1)"
expect 1 lab promote care-planner@2.1.0 --to pilot
step "Campaigns in the store"
expect 0 lab list
echo
echo "Demo done: A is promotable (promoted to pilot), B is blocked. Reports for the change board are in reports/:"
ls -1 reports/*.html
