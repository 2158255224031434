#!/usr/bin/env bash
# Rewrite patches/ and patches/series from the commits on mlx/ since the base.
# The output is normalized so that exporting an unchanged series changes no byte.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

[ -e "$MLX/.git" ] || die "mlx/ is not checked out"
[ ! -e "$(apply_failed_marker)" ] ||
  die "the last 'make apply' stopped at a patch that did not apply; exporting now would drop it and the patches after it. Fix it and run 'make apply' first."
[ -z "$(mlx_git status --porcelain --untracked-files=no)" ] ||
  die "mlx/ has uncommitted changes: commit them first (they would not be exported)"
base=$(mlx_git rev-parse -q --verify "$BASE_REF") || base=$(pinned_base)
mlx_git merge-base --is-ancestor "$base" HEAD || die "mlx/ HEAD does not descend from the base $base"
[ -z "$(mlx_git rev-list --merges "$base..HEAD")" ] || die "the series must not contain merge commits"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mlx_git format-patch -q --zero-commit --full-index --no-signature --no-stat \
  --keep-subject --no-numbered --no-cover-letter --filename-max-length=100 \
  -o "$tmp" "$base..HEAD"

names=()
for f in "$tmp"/*.patch; do
  [ -e "$f" ] || continue
  name=$(basename "$f" | sed 's/^[0-9]*-//' | tr '[:upper:]' '[:lower:]')
  for seen in "${names[@]}"; do
    [ "$seen" != "$name" ] || die "two patches are named $name: give one of them another subject"
  done
  names+=("$name")
  mv "$f" "$tmp/$name.out"
done

mkdir -p "$PATCHES"
rm -f "$PATCHES"/*.patch
{
  echo "# The TurboQuant series on MLX, in the order 'make apply' applies it."
  echo "# Written by 'make export' from the commits on mlx/; one file name per line."
  for name in "${names[@]}"; do
    mv "$tmp/$name.out" "$PATCHES/$name"
    echo "$name"
  done
} >"$SERIES"
note "exported ${#names[@]} patches to patches/"
