#!/usr/bin/env bash
# Builds the .deb (scripts/package.sh) and checks it as a viewer's machine would use it: its control file names
# its dependencies, it installs with apt, and each binary runs from /usr/bin with no library from the Swift
# toolchain (ldd) and the toolchain off PATH. Removes the package after. Needs root or sudo (CI runs as root).
set -euo pipefail
cd "$(dirname "$0")/.."
sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
deb="$(./scripts/package.sh "$out" | tail -1)"
dpkg-deb --info "$deb"
dpkg-deb --field "$deb" Depends | grep -q libavformat || { echo "check-package: Depends lacks libavformat" >&2; exit 1; }
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$(readlink -f "$deb")" >/dev/null
trap '$sudo apt-get remove -y -qq lsp2p >/dev/null || true; rm -rf "$out"' EXIT
toolchain="$(dirname "$(dirname "$(readlink -f "$(command -v swift)")")")"
for b in lsp2p-relay lsp2p-play lsp2p-sim; do
  if ldd "/usr/bin/$b" | grep -e "$toolchain" -e "not found"; then
    echo "check-package: /usr/bin/$b needs the libraries above" >&2
    exit 1
  fi
  env -i PATH=/usr/bin:/bin "/usr/bin/$b" --help >/dev/null
done
env -i PATH=/usr/bin:/bin /usr/bin/lsp2p-relay keygen | grep -q "origin-secret=" || { echo "check-package: keygen failed" >&2; exit 1; }
echo "check-package: $(basename "$deb") installs and runs without the toolchain"
