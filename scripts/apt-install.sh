#!/usr/bin/env bash
# Installs the given Debian/Ubuntu packages (with sudo when not root). Usage: scripts/apt-install.sh PKG...
set -euo pipefail
(($#)) || exit 0
echo "installing: $*" >&2
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$@" >/dev/null
