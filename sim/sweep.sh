#!/usr/bin/env bash
# CI sweep of the county simulation: many seeds of a small county under
# harsh faults must pass every checker, and every injected bug must be
# caught by its checker. Release build (or PROFILE=ci); a few minutes on two cores.
#
# Usage: sim/sweep.sh [SEEDS] (default 24). Env JOBS=parallel runs (default 2).
set -euo pipefail

cd "$(dirname "$0")/.."
seeds="${1:-24}"
jobs="${JOBS:-2}"
started=$(date +%s)

# PROFILE=ci builds with assertions on (what CI runs); release by default.
profile="${PROFILE:-release}"
cargo build --profile "$profile" --quiet -p civsync-sim
sim="${CARGO_TARGET_DIR:-target}/$profile/civsync-sim"
small=(--townships 3 --villages-per-township 5 --days 14 --faults harsh
       --offline-fraction 0.3 --max-offline-days 3 --misbehaving 1 --misbehaving-townships 1)

run_seed() {
    local seed="$1"
    if out=$("$sim" --seed "$seed" "${small[@]}" --json 2>&1); then
        echo "seed $seed ok"
    else
        echo "seed $seed FAILED"
        echo "$out" | tail -n 3
        return 1
    fi
}
export -f run_seed
export sim
export small_flags="${small[*]}"

failed=0
# Seeds in parallel; each prints one line (and how to reproduce on failure).
if ! seq 1 "$seeds" | xargs -P "$jobs" -I{} bash -c 'small=($small_flags); run_seed {}'; then
    failed=1
fi

caught_by() {
    case "$1" in
        drop-acknowledged-write) echo durability ;;
        skip-document-sync) echo convergence ;;
        apply-unauthorized) echo authority ;;
        miscount-aggregate) echo aggregates ;;
        admit-invented-stations) echo authority ;;
        resurrect-deleted) echo deletions ;;
        stale-statistics) echo statistics ;;
        trust-unsigned-relays) echo authority ;;
        lose-order-step) echo orders ;;
        skip-allotment-check) echo balances ;;
        keep-replaced-contribution) echo index ;;
        approve-another-month) echo approved-figures ;;
        miss-edit-after-approval) echo approved-figures ;;
        file-order-twice) echo orders ;;
        hide-withdrawn-menu-items) echo catalog ;;
        *) echo "" ;;
    esac
}

for bug in $("$sim" --inject-bug list); do
    checker=$(caught_by "$bug")
    if [ -z "$checker" ]; then
        echo "bug $bug: no checker known to this script"
        failed=1
        continue
    fi
    # Statistics travel only to an office above the county.
    extra=()
    if [ "$bug" = stale-statistics ]; then
        extra=(--prefecture-counties 2)
    fi
    if out=$("$sim" --seed 1 "${small[@]}" "${extra[@]}" --inject-bug "$bug" --json 2>/dev/null); then
        echo "bug $bug: run passed, but $checker should have failed"
        failed=1
    elif echo "$out" | grep -Eq "\"$checker\":\{\"detail\":\"([^\"\\\\]|\\\\.)*\",\"passed\":false"; then
        echo "bug $bug: caught by $checker"
    else
        echo "bug $bug: run failed, but not in $checker"
        failed=1
    fi
done

echo "sweep took $(( $(date +%s) - started )) s"
exit "$failed"
