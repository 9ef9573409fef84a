#!/usr/bin/env bash
# seaweedfs.sh: the SeaweedFS `weed` binary that the real-S3 tests
# (internal/s3lab) and CI run, built from SeaweedFS's Go module and cached
# outside the repository.
#
#   scripts/seaweedfs.sh          build the binary unless it is cached; print its path
#   scripts/seaweedfs.sh --path   print the path only (the file may not exist yet)
#
# The binary lives at ${XDG_CACHE_HOME:-$HOME/.cache}/mbtool/seaweedfs/weed-VERSION,
# with the build's log in build.log beside it. `go install` refuses SeaweedFS
# (its go.mod has replace directives), so the script downloads the module with
# `go mod download`, copies it out of the read-only module cache and runs
# `go build ./weed` inside the copy, its own main module. That takes about 8
# minutes on 2 cores. A lock (flock) keeps two callers from building at once:
# the second waits and then finds the binary. Only the Go module proxy is used.
set -euo pipefail

version=v0.0.0-20261109003541-7506e5f91cd6
module=github.com/seaweedfs/seaweedfs
cache="${XDG_CACHE_HOME:-$HOME/.cache}/mbtool/seaweedfs"
bin="$cache/weed-$version"

case "${1:-}" in
--path)
  echo "$bin"
  exit 0
  ;;
"") ;;
*)
  echo "usage: $0 [--path]" >&2
  exit 2
  ;;
esac

if [ -x "$bin" ]; then
  echo "$bin"
  exit 0
fi

export PATH="$PATH:/usr/local/go/bin"
mkdir -p "$cache"
exec 9>"$cache/build.lock"
flock 9
if [ -x "$bin" ]; then # built by whoever held the lock
  echo "$bin"
  exit 0
fi

echo "seaweedfs.sh: building $module@$version into $bin (about 8 minutes; log: $cache/build.log)" >&2
work=$(mktemp -d "$cache/build.XXXXXX")
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
if ! (
  set -x
  # Outside any module, so that no go.mod or go.sum is touched.
  cd "$work"
  dir=$(GOFLAGS=-mod=mod go mod download -json "$module@$version" |
    sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')
  [ -n "$dir" ] && [ -d "$dir" ]
  cp -r "$dir" src
  chmod -R u+w src
  cd src
  GOFLAGS=-mod=mod go build -o "$work/weed" ./weed
  "$work/weed" version
) >"$cache/build.log" 2>&1; then
  echo "seaweedfs.sh: build failed; the end of $cache/build.log:" >&2
  tail -20 "$cache/build.log" >&2
  exit 1
fi
mv "$work/weed" "$bin"
echo "$bin"
