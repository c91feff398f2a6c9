#!/usr/bin/env bash
# Glass-to-glass latency in the HTTP players: every frame the publisher sends carries its send
# time, drawn into the picture (tests/player/clock_source.py, encoded by ffmpeg's libx264
# veryfast/zerolatency and published over RTMP); each player page reads it back when the
# browser presents the frame (requestVideoFrameCallback, tests/player/page.js). This runs the
# player matrix (tests/player_matrix.rs: hls.js with catch-up and with its defaults, dash.js 4
# and 5, Shaka on LL-HLS and LL-DASH, for a minute per case) and prints, per case and player,
# the median and 95th percentile of the last 600 frames (20 s), the player's own latency
# estimate and the stalls it had once playing.
#
#   benches/glass.sh [--release] [--solo] [TEST_NAME_FILTER]
#
# By default the players play as the test suite runs them, three at once in one headless
# Chromium (the HLS players, then the DASH players): the numbers include three players, the
# encoder and the server sharing the machine.
# --solo runs the matrix once per player, that player alone (what one viewer sees; six times
# as long). Needs what scripts/test.sh installs (ffmpeg, chromium, node and
# tests/player/node_modules).
set -euo pipefail
cd "$(dirname "$0")/.."
profile=()
solo=
while [ $# -gt 0 ]; do
  case "$1" in
    --release) profile=(--release); shift ;;
    --solo) solo=1; shift ;;
    *) break ;;
  esac
done
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
filter=${1:-}
run() { # run LOGDIR [PLAYER]
  local only=()
  if [ -n "${2:-}" ]; then only=(ESTUARY_MATRIX_ONLY="$2"); fi
  env ESTUARY_MATRIX_LOG="$1" "${only[@]}" \
    cargo test "${profile[@]}" --test player_matrix -- --test-threads 1 ${filter:+"$filter"} >&2 || true
}
if [ -n "$solo" ]; then
  # The names of tests/player_matrix.rs's PLAYERS.
  i=0
  for player in "hls.js" "hls.js defaults" "dash.js 4" "dash.js 5" "Shaka HLS" "Shaka DASH"; do
    run "$logs/$i" "$player"
    i=$((i + 1))
  done
else
  run "$logs/all"
fi
python3 - "$logs" <<'PY'
import json, os, sys
logs = sys.argv[1]
rows = []
for d in sorted(os.listdir(logs)):
    for f in sorted(os.listdir(os.path.join(logs, d))):
        lines = [json.loads(l) for l in open(os.path.join(logs, d, f)) if l.strip()]
        head, done = lines[0], lines[-1]
        for i, name in enumerate(head["players"]):
            stats = [l for l in lines if l.get("page") == i and "currentTime" in l]
            g2g = sorted((done.get("g2g") or [])[i] or []) if i < len(done.get("g2g") or []) else []
            p = lambda q: g2g[min(len(g2g) - 1, int(len(g2g) * q))] if g2g else None
            last = stats[-1] if stats else {}
            waits = (last.get("waits") or 0) - (stats[14].get("waits") or 0) if len(stats) > 14 else None
            lat = last.get("latency")
            rows.append((head["case"], int(d) if d.isdigit() else 0, name, p(0.5), p(0.95),
                         f"{lat:.2f}" if isinstance(lat, (int, float)) else "-", waits))
print(f"{'case':34} {'player':16} {'g2g p50':>8} {'g2g p95':>8} {'latency':>8} {'stalls':>6}")
for case, _, name, p50, p95, lat, waits in sorted(rows, key=lambda r: (r[0], r[1])):
    print(f"{case:34} {name:16} {p50 or '-':>8} {p95 or '-':>8} {lat:>8} {waits if waits is not None else '-':>6}")
PY
