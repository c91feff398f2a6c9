#!/usr/bin/env bash
# Glass-to-glass latency in the HTTP players: every frame the publisher sends carries its send
# time, drawn into the picture (tests/player/clock_source.py, encoded by ffmpeg's libx264
# veryfast/zerolatency and published over RTMP); each player page reads it back when the
# browser presents the frame (requestVideoFrameCallback, tests/player/page.js). This runs the
# player matrix (tests/player_matrix.rs: hls.js with catch-up and with its defaults, dash.js 4
# and 5, Shaka on LL-HLS and LL-DASH, all six at once in one headless Chromium, for a minute
# per case) and prints, per case and player, the median and 95th percentile of the last 600
# frames (20 s), the player's own latency estimate and the stalls it had once playing.
#
#   benches/glass.sh [--release] [TEST_NAME_FILTER]
#
# Needs what scripts/test.sh installs (ffmpeg, chromium, node and tests/player/node_modules).
# The numbers include the encoder and the six players sharing the machine.
set -euo pipefail
cd "$(dirname "$0")/.."
profile=()
if [ "${1:-}" = "--release" ]; then profile=(--release); shift; fi
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
ESTUARY_MATRIX_LOG="$logs" cargo test "${profile[@]}" --test player_matrix -- --test-threads 1 ${1:+"$1"} >&2 || true
python3 - "$logs" <<'PY'
import json, os, sys
logs = sys.argv[1]
print(f"{'case':34} {'player':16} {'g2g p50':>8} {'g2g p95':>8} {'latency':>8} {'stalls':>6}")
for f in sorted(os.listdir(logs)):
    lines = [json.loads(l) for l in open(os.path.join(logs, f)) if l.strip()]
    head, done = lines[0], lines[-1]
    for i, name in enumerate(head["players"]):
        stats = [l for l in lines if l.get("page") == i and "currentTime" in l]
        g2g = sorted((done.get("g2g") or [])[i] or []) if i < len(done.get("g2g") or []) else []
        p = lambda q: g2g[min(len(g2g) - 1, int(len(g2g) * q))] if g2g else None
        last = stats[-1] if stats else {}
        waits = (last.get("waits") or 0) - (stats[14].get("waits") or 0) if len(stats) > 14 else None
        lat = last.get("latency")
        print(f"{head['case']:34} {name:16} {p(0.5) or '-':>8} {p(0.95) or '-':>8} "
              f"{(f'{lat:.2f}' if isinstance(lat, (int, float)) else '-'):>8} {waits if waits is not None else '-':>6}")
PY
