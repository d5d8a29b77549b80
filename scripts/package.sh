#!/usr/bin/env bash
# Builds lsp2p_VERSION_ARCH.deb: lsp2p-relay, lsp2p-play and lsp2p-sim with the Swift runtime linked in, so a
# Debian 12 machine without Swift installs it with `apt install ./lsp2p_*.deb` (FFmpeg's libraries come from Debian,
# as `Depends:` says). Checks that no binary needs a library from the toolchain. Prints the package's path.
#   scripts/package.sh [OUTDIR]        (default: ./dist)
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
out="${1:-dist}"
mkdir -p "$out"
# Its own build folder: the static runtime is a different build from the one the tests use.
build=(-c release --static-swift-stdlib --build-path .build-static)
binaries=(lsp2p-relay lsp2p-play lsp2p-sim)
# The products only: the test helpers link XCTest, which has no static build.
for b in "${binaries[@]}"; do swift build "${build[@]}" --product "$b" >&2; done
bin="$(swift build "${build[@]}" --show-bin-path)"
toolchain="$(dirname "$(dirname "$(readlink -f "$(command -v swift)")")")"

stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/DEBIAN" "$stage/usr/bin" "$stage/usr/share/doc/lsp2p"
for b in "${binaries[@]}"; do
  install -m 0755 "$bin/$b" "$stage/usr/bin/$b"
  strip --strip-unneeded "$stage/usr/bin/$b"
  if ldd "$stage/usr/bin/$b" | grep -F "$toolchain" >&2; then
    echo "package: $b needs the libraries above from the toolchain ($toolchain)" >&2
    exit 1
  fi
  if ldd "$stage/usr/bin/$b" | grep -q "not found"; then
    ldd "$stage/usr/bin/$b" >&2
    echo "package: $b needs a library that is not installed" >&2
    exit 1
  fi
done
cp README.md "$stage/usr/share/doc/lsp2p/"

# Depends: the Debian package of each shared library a binary names itself (FFmpeg's, libc, libstdc++), not what
# those pull in (their own packages depend on that).
depends="$(for b in "${binaries[@]}"; do
    ldd "$stage/usr/bin/$b" | awk -v needed="$(objdump -p "$stage/usr/bin/$b" | awk '/NEEDED/ { print $2 }' | paste -sd' ' -)" \
      'BEGIN { split(needed, n, " "); for (i in n) want[n[i]] = 1 } $2 == "=>" && ($1 in want) { print $3 }'
  done | sort -u \
  | xargs -r -n1 sh -c 'dpkg -S "$(readlink -f "$0")" 2>/dev/null || dpkg -S "$0" 2>/dev/null' | cut -d: -f1 | sort -u \
  | while read -r p; do echo "$p (>= $(dpkg-query -W -f='${Version}' "$p" | sed 's/-[^-]*$//'))"; done | paste -sd, - | sed 's/,/, /g')"
[ -n "$depends" ] || { echo "package: found no dependencies (ldd failed?)" >&2; exit 1; }
arch="$(dpkg --print-architecture)"
version="0.$(git rev-list --count HEAD 2>/dev/null || echo 0)+g$(git rev-parse --short HEAD 2>/dev/null || echo local)"
cat > "$stage/DEBIAN/control" <<CONTROL
Package: lsp2p
Version: $version
Architecture: $arch
Maintainer: lsp2p developers <lsp2p@localhost>
Depends: $depends
Recommends: ffmpeg
Section: video
Priority: optional
Description: live video to many peers without a fat server
 A live source (file, webcam, URL, OBS over RTMP/SRT) cut into MPEG-TS chunks and pushed through a
 Fast-Mesh of peers, each link encrypted on its own. lsp2p-play joins and plays; any node with --http
 serves the stream as HLS to browsers, phones and TVs on the LAN.
CONTROL
deb="$out/lsp2p_${version}_${arch}.deb"
dpkg-deb --root-owner-group --build "$stage" "$deb" >&2
echo "$deb"
