#!/usr/bin/env bash
# Builds sluice with Bun.
#   ./compile.sh          dist/sluice (host target)
#   ./compile.sh --all    also dist/sluice-<os>-<arch>[-musl] for every target the registry
#                         can provide, and dist/SHA256SUMS
#   ./compile.sh image    also dist/rootfs/, what the Dockerfile copies into a FROM scratch
#                         image: /sluice, the example app compiled as /app, the shared
#                         libraries both load (from ldd), a non-root user, and empty /tmp,
#                         /proc and /dev mount points
set -euo pipefail
cd "$(dirname "$0")"
bun=node_modules/.bin/bun
[ -x "$bun" ] || npm install --no-audit --no-fund >&2
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
# --splitting: each dynamic import's modules in a chunk parsed only when imported, so the
# start before the allocator's start-over (src/main.ts) skips most of sluice: handlers ~30 ms sooner.
build() { # entry target outfile
  "$bun" build "$1" --compile --splitting --minify --sourcemap=none \
    --no-compile-autoload-dotenv --no-compile-autoload-bunfig \
    --define "SLUICE_COMMIT=\"$commit\"" ${2:+--target="$2"} --outfile "$3"
}

all_targets() {
  for target in linux-x64 linux-arm64 linux-x64-musl linux-arm64-musl darwin-x64 darwin-arm64; do
    if ! build src/main.ts "bun-$target" "dist/sluice-$target" >/dev/null 2>"dist/.build-$target.log"; then
      echo "skipped $target: $(tail -n 1 "dist/.build-$target.log")" >&2
    fi
    rm -f "dist/.build-$target.log"
  done
  (cd dist && sha256sum sluice-* > SHA256SUMS && cat SHA256SUMS)
}

image_rootfs() {
  local root=dist/rootfs
  rm -rf "$root"
  mkdir -p "$root/etc" "$root/tmp" "$root/proc" "$root/dev"
  chmod 1777 "$root/tmp"
  cp dist/sluice "$root/sluice"
  build examples/app.ts "" "$root/app" >/dev/null
  # Exactly what the dynamic loader maps for the two binaries (bun:ffi's dlopen("libc.so.6")
  # for sd_notify and reaping finds the same libc).
  for lib in $(ldd "$root/sluice" "$root/app" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' | sort -u); do
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
  done
  printf 'root:x:0:0:root:/:/sluice\nsluice:x:65532:65532:sluice:/nonexistent:/sluice\n' > "$root/etc/passwd"
  printf 'root:x:0:\nsluice:x:65532:\n' > "$root/etc/group"
  echo "dist/rootfs: $(find "$root" -type f | wc -l) files, $(du -sh "$root" | cut -f1)" >&2
}

mkdir -p dist
build src/main.ts "" dist/sluice
case "${1:-}" in
  "") ;;
  --all) all_targets ;;
  image) image_rootfs ;;
  *) echo "compile.sh: unknown argument '$1' (expected --all or image)" >&2; exit 64 ;;
esac
