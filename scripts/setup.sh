#!/usr/bin/env bash
# Installs, only when missing, the Debian packages lsp2p needs to build and run; with --tests, also what the tests
# drive (headless Chromium for the status and watch pages, with python3-websocket for its DevTools protocol;
# iproute2 for the emulated LAN). Needs root or sudo.
set -euo pipefail
packages=(pkg-config binutils ffmpeg libavformat-dev libavcodec-dev libavutil-dev libavdevice-dev libswscale-dev libswresample-dev)
if [ "${1:-}" = "--tests" ]; then packages+=(chromium iproute2 python3 python3-websocket); fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  sudo=""
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || { echo "setup: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
    sudo="sudo"
  fi
  echo "setup: installing ${missing[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
command -v swift >/dev/null || { echo "setup: Swift 6 is required (https://www.swift.org/install/linux/); 'swift' is not on PATH" >&2; exit 1; }
