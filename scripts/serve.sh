#!/usr/bin/env bash
# Runs the server (`estuary serve`, embedded defaults unless --config FILE is given). Installs
# what the build needs on Debian/Ubuntu when it is missing: FFmpeg's development libraries,
# clang and pkg-config for the transcoder. Usage: scripts/serve.sh [--config FILE]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build-deps.sh
exec cargo run --release -- serve "$@"
