#!/usr/bin/env bash
# Contrib/bench/systemd-bus.sh: SystemdBus against one test bed machine's real systemd.
#
# 1. LinkUnitFiles + StartUnit to ActiveState=active (seen through PropertiesChanged), for 1 unit
#    and for 100 units at once: median, p90, min, max over the repetitions.
# 2. CPU time of the tracking process while it watches 500 loaded, running units for 60 s and
#    one state change per second happens (a unit stopped or started from inside the machine
#    with systemctl, so the measured process only tracks).
#
# Usage: Contrib/bench/systemd-bus.sh [--repeats-1 R] [--repeats-100 R] [--track-units N]
#                                     [--track-seconds S] [--append-results]
# With --append-results the figures are appended to Contrib/bench/RESULTS.md under "SystemdBus".
set -euo pipefail

bench_dir="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")" && pwd)"
repo="$(cd "$bench_dir/../.." && pwd)"
testbed="$repo/Contrib/testbed"
readonly bench_dir repo testbed

repeats_one=20
repeats_hundred=5
track_units=500
track_seconds=60
append_results=0
while (($#)); do
    case "$1" in
    --repeats-1) repeats_one="${2:?}"; shift 2 ;;
    --repeats-100) repeats_hundred="${2:?}"; shift 2 ;;
    --track-units) track_units="${2:?}"; shift 2 ;;
    --track-seconds) track_seconds="${2:?}"; shift 2 ;;
    --append-results) append_results=1; shift ;;
    -h | --help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done

export FLOTILLA_TESTBED_PREFIX="sdbus-bench$$"
# No docker: the benchmark units are plain services, and dockerd's CPU would only add noise.
export FLOTILLA_TESTBED_DOCKER=0
trap '"$testbed" down >/dev/null 2>&1 || true' EXIT

(cd "$repo" && swift build -c release --scratch-path .build-sdbus --product flotilla-bench-systemd >&2)
bench="$repo/.build-sdbus/release/flotilla-bench-systemd"

"$testbed" up 1 >&2
pid="$("$testbed" pid 1)"

one="$(timeout 600 "$bench" start-latency "$pid" 1 "$repeats_one")"
echo "$one"
hundred="$(timeout 600 "$bench" start-latency "$pid" 100 "$repeats_hundred")"
echo "$hundred"

# Tracking: the bench process prints track-ready once its units run and are watched; then this
# script makes one change per second from inside the machine, alternately stopping and starting
# track-K for K = 0, 1, 2, ...
output="$(mktemp)"
timeout $((track_seconds + 300)) "$bench" track "$pid" "$track_units" "$track_seconds" >"$output" &
bench_pid=$!
for _ in $(seq 1 600); do
    grep -q '^track-ready' "$output" && break
    sleep 0.5
done
grep -q '^track-ready' "$output" || { echo "tracker did not get ready" >&2; exit 1; }
for ((i = 0; i < track_seconds; i++)); do
    unit="track-$((i / 2)).service"
    if ((i % 2 == 0)); then verb=stop; else verb=start; fi
    "$testbed" exec 1 systemctl "$verb" --no-block "$unit" >/dev/null
    sleep 1
done
wait "$bench_pid"
track="$(grep '^track ' "$output")"
rm -f "$output"
echo "$track"

if ((append_results)); then
    results="$bench_dir/RESULTS.md"
    {
        echo
        echo "## SystemdBus"
        echo
        echo "Machine: $(nproc) cores, $(free -g | awk '/^Mem:/ {print $2}') GiB RAM, kernel $(uname -r); $(date -u +%Y-%m-%d)."
        echo "One test bed machine (Contrib/testbed, no docker), reached from the host over its system bus"
        echo "socket; release build; \`Contrib/bench/systemd-bus.sh\`. Units: \`ExecStart=/bin/sleep 1000000\`."
        echo
        echo "| what | result | target |"
        echo "|---|---|---|"
        echo "| LinkUnitFiles + StartUnit until ActiveState=active is seen in PropertiesChanged, 1 new unit, file already written ($repeats_one runs) | $(sed -E 's/.*median_ms=([0-9.]+) p90_ms=([0-9.]+) min_ms=([0-9.]+) max_ms=([0-9.]+).*/median \1 ms, p90 \2 ms (\3-\4)/' <<<"$one") | < 50 ms |"
        echo "| same, 100 new units at once: one LinkUnitFiles, 100 concurrent StartUnit ($repeats_hundred runs) | $(sed -E 's/.*median_ms=([0-9.]+) p90_ms=([0-9.]+) min_ms=([0-9.]+) max_ms=([0-9.]+).*/median \1 ms, p90 \2 ms (\3-\4)/' <<<"$hundred") | < 2 s |"
        echo "| tracking $track_units running units for ${track_seconds} s, one change per second: CPU of the tracking process | $(sed -E 's/.*changes_seen=([0-9]+) cpu_seconds=([0-9.]+) cpu_percent_of_core=([0-9.]+).*/\3 % of a core (\2 s CPU; \1 state changes seen)/' <<<"$track") | < 1 % |"
    } >>"$results"
    echo "appended to $results" >&2
fi
