#!/usr/bin/env bash
# Builds dist/sluice for this machine with Bun.
#   ./compile.sh          dist/sluice (host target)
#   ./compile.sh --all    also dist/sluice-<os>-<arch>[-musl] for every target the registry
#                         can provide, and dist/SHA256SUMS
set -euo pipefail
cd "$(dirname "$0")"
bun=node_modules/.bin/bun
[ -x "$bun" ] || npm install --no-audit --no-fund >&2
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
build() { # target outfile
  "$bun" build src/main.ts --compile --minify --sourcemap=none \
    --no-compile-autoload-dotenv --no-compile-autoload-bunfig \
    --define "SLUICE_COMMIT=\"$commit\"" ${1:+--target="$1"} --outfile "$2"
}
mkdir -p dist
build "" dist/sluice
if [ "${1:-}" = "--all" ]; then
  for target in linux-x64 linux-arm64 linux-x64-musl linux-arm64-musl darwin-x64 darwin-arm64; do
    if ! build "bun-$target" "dist/sluice-$target" >/dev/null 2>"dist/.build-$target.log"; then
      echo "skipped $target: $(tail -n 1 "dist/.build-$target.log")" >&2
    fi
    rm -f "dist/.build-$target.log"
  done
  (cd dist && sha256sum sluice-* > SHA256SUMS && cat SHA256SUMS)
fi
