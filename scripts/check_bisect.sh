#!/usr/bin/env bash
# Build the series patch by patch, as 'git bisect' would stop anywhere: in a
# scratch worktree of mlx/ at the base, apply each patch with git am and run
# an incremental build of it (in build/bisect/). Stops at the first patch
# that does not build, and names it. Slow: the first build is cold.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

base=$(pinned_base)
tree="$BUILD/bisect/mlx"
rm -rf "$tree"
mlx_git worktree prune
mkdir -p "$BUILD/bisect"
mlx_git worktree add -q --detach "$tree" "$base"
trap 'mlx_git worktree remove --force "$tree"' EXIT
n=0
while IFS= read -r name; do
  n=$((n + 1))
  git -C "$tree" am -q --keep-cr "$PATCHES/$name"
  note "patch $n: $name"
  MLX_TREE="$tree" BUILD_DIR="$BUILD/bisect/cpu" "$ROOT/scripts/build.sh" \
    >"$BUILD/bisect/build-$n.log" 2>&1 ||
    { tail -30 "$BUILD/bisect/build-$n.log"; die "the series does not build after $name"; }
done < <(series_entries)
note "all $n patches build"
