#!/usr/bin/env bash
# The demo campaign on the embedded default lab: build A passes and is promoted to pilot,
# build B breaks the baseline journal service and is blocked. Then production: A is promoted
# and rolled out in waves; build C passes the lab but fails the production health suite, so
# its rollout halts in the first wave, which is rolled back. Exits 0 when the lab judged every
# build as the story says, non-zero otherwise.
# $LAB_DEMO_ROOT: tell the story in that copy of the default lab instead (make demo-distributed).
set -uo pipefail
cd "${LAB_DEMO_ROOT:-$(dirname "$0")/..}" || exit 2

step() { printf '\n=== %s\n' "$*"; }
expect() {  # expect CODE COMMAND...: run, and fail the demo unless it exits with CODE
    local want=$1; shift
    "$@"; local got=$?
    if [ "$got" -ne "$want" ]; then
        echo "demo: '$*' exited $got, expected $want" >&2
        exit 1
    fi
}

stop_hosts() {  # on any exit: stop what the sandboxes and production hosts run, keep their files
    local code=$?
    step "Stop the services the sandboxes and production hosts run (their files stay under .lab/)"
    lab sandbox stop >/dev/null || echo "demo: 'lab sandbox stop' failed; 'make clean' stops and removes everything" >&2
    lab production stop || echo "demo: 'lab production stop' failed; 'make clean' stops and removes everything" >&2
    exit "$code"
}
trap stop_hosts EXIT

# The agreement's keys/allowed_signers lists no real keys, so the demo makes throwaway keys under
# .lab/demo-approvers/: two change-board approvers, and the lab's own key that seals the audit log
# (a signed checkpoint at every promotion and rollout end). $LAB_ALLOWED_SIGNERS points lab at
# their allowed_signers (every decision records that override); $LAB_CHECKPOINT_KEY names the seal.
APPROVERS=(kari.nordmann lars.haugen)  # members of the change-board role in agreement.yml
KEYS=.lab/demo-approvers
demo_keys() {  # one ed25519 key per signer (no passphrase: demo only) and their allowed_signers
    mkdir -p "$KEYS" && chmod 700 "$KEYS"
    local name signers=""
    for name in "${APPROVERS[@]}" lab-audit; do
        [ -f "$KEYS/$name" ] || ssh-keygen -q -t ed25519 -N '' -C "demo key $name" -f "$KEYS/$name" || return 1
    done
    for name in "${APPROVERS[@]}"; do
        signers+="$name@example.no namespaces=\"lab-approval\" $(cut -d' ' -f1,2 "$KEYS/$name.pub")"$'\n'
    done
    signers+="lab-audit@example.no namespaces=\"lab-audit-checkpoint\" $(cut -d' ' -f1,2 "$KEYS/lab-audit.pub")"$'\n'
    printf '%s' "$signers" >"$KEYS/allowed_signers.tmp" && mv "$KEYS/allowed_signers.tmp" "$KEYS/allowed_signers"
}

step "Demo keys: two change-board approvers and the lab's audit seal, throwaway, under $KEYS/"
expect 0 demo_keys
export LAB_ALLOWED_SIGNERS="$KEYS/allowed_signers" LAB_CHECKPOINT_KEY="$KEYS/lab-audit"
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

# --- Production: staged rollout (the rollout section of agreement.yml) ------------------------
# The production gate asks for 48h in pilot, two change-board approvals signed with the
# approvers' SSH keys (made at the start) and an open maintenance window. It decides "as of"
# PROD_NOW: three days from now at 20:00 UTC (evening in
# Trondheim), after the year-end freeze if it falls in it.
prod_now() {
    local day=3
    while case $(date -u -d "+$day days" +%m-%d) in 12-2[0-9] | 12-3[01] | 01-0[1-6]) true ;; *) false ;; esac; do
        day=$((day + 1))
    done
    date -u -d "+$day days" +%Y-%m-%dT20:00:00Z
}
PROD_NOW=$(prod_now)
to_production() {  # to_production BUILD: two signed approvals, then the promotion, as of PROD_NOW
    local name
    for name in "${APPROVERS[@]}"; do
        expect 0 lab approve "$1" --to production --key "$KEYS/$name" --now "$PROD_NOW"
    done
    expect 0 lab promote "$1" --to production --now "$PROD_NOW"
}

step "Production: 24 local hosts (prod-ts-01..24, site profile 'production'), provisioned once"
expect 0 lab production up
step "Promote A to production: two change-board approvals, soaked in pilot, in the window ($PROD_NOW)"
to_production care-planner@2.0.0
step "Roll A out to production in waves of 1%, 10%, 50%, 100%: expected to complete (exit 0)"
expect 0 lab rollout start care-planner@2.0.0 --now "$PROD_NOW"
step "Build C (care-planner 2.2.0): passes every lab suite (exit 0), promoted to pilot and production"
expect 0 lab build care-planner@2.2.0
expect 0 lab run care-planner@2.2.0
expect 0 lab promote care-planner@2.2.0 --to pilot
to_production care-planner@2.2.0
step "Roll C out: it crashes under the production site profile; halted in wave 1, rolled back (exit 1)"
expect 1 lab rollout start care-planner@2.2.0 --now "$PROD_NOW"
step "Campaigns in the store"
expect 0 lab list
step "The audit log: hash chain intact, sealed by the lab's signed checkpoints, state tables agree with it"
expect 0 lab audit verify
echo
echo "Demo done: A went through pilot to production in waves; B is blocked in the lab; C halted in its first"
echo "production wave, which was rolled back (the other production hosts kept A). Reports for the change board:"
ls -1 reports/*.html
