#!/usr/bin/env bash
# Runs the whole test suite. Installs what the tests drive (ffmpeg/ffprobe) on Debian/Ubuntu
# when it is missing. Usage: scripts/test.sh [extra cargo test args]
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v ffmpeg >/dev/null 2>&1 || missing+=(ffmpeg)
command -v ffprobe >/dev/null 2>&1 || missing+=(ffmpeg)
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
command -v node >/dev/null 2>&1 || missing+=(nodejs npm)
command -v srt-live-transmit >/dev/null 2>&1 || missing+=(srt-tools)
[ -x /usr/bin/chromium ] || [ -n "${CHROMIUM:-}" ] || missing+=(chromium)
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}" >&2
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# hls.js and playwright-core for the real-player test, at the versions in package-lock.json.
if [ ! -d tests/player/node_modules ] || [ tests/player/package-lock.json -nt tests/player/node_modules ]; then
  (cd tests/player && npm ci --no-audit --no-fund --loglevel=error)
fi

cargo test --workspace --locked "$@"
