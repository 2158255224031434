#!/usr/bin/env bash
# Reset mlx/ to the pinned base and apply patches/series on branch turboquant.
# Refuses, touching nothing, when mlx/ has uncommitted changes or commits that
# patches/ lacks. A patch that does not apply is named, the git am is aborted
# and mlx/ is left clean at the last patch that applied.
#   --if-needed   do nothing when mlx/ already holds exactly the series
set -euo pipefail
. "$(dirname "$0")/lib.sh"

base=$(pinned_base)
[ -e "$MLX/.git" ] && mlx_git cat-file -e "$base^{commit}" 2>/dev/null ||
  "$ROOT/scripts/submodule.sh"

if [ "${1:-}" = --if-needed ] && [ ! -e "$(apply_failed_marker)" ] &&
  mlx_git merge-base --is-ancestor "$base" HEAD &&
  [ "$(commit_patch_ids "$base..HEAD")" = "$(file_patch_ids)" ]; then
  exit 0
fi

# A gitlink moved onto a commit of the series (say, by 'git add -A') would pin
# a commit that exists only here.
if old_base=$(mlx_git rev-parse -q --verify "$BASE_REF") && [ "$old_base" != "$base" ] &&
  mlx_git merge-base --is-ancestor "$old_base" "$base" 2>/dev/null &&
  mlx_git merge-base --is-ancestor "$base" "$APPLIED_REF" 2>/dev/null; then
  die "the project's gitlink for mlx/ points at a commit of the series, not at the base. Restore it:
    git update-index --cacheinfo 160000,$old_base,mlx"
fi

# Guards: nothing below may lose a user's work.
gitdir=$(mlx_gitdir)
if [ -d "$gitdir/rebase-apply" ] || [ -d "$gitdir/rebase-merge" ]; then
  die "a git am or rebase is in progress in mlx/: finish it or abort it first"
fi
dirty=$(mlx_git status --porcelain)
[ -z "$dirty" ] || die "mlx/ has uncommitted changes; commit them and run 'make export', or stash them:
$dirty"
# Commits that the last apply made came from patches/; any other commit must
# be in patches/ now, or it is the user's unexported work.
known=$(file_patch_ids)
applied=()
mlx_git rev-parse -q --verify "$APPLIED_REF" >/dev/null && applied=(--not "$APPLIED_REF")
for rev in HEAD "refs/heads/$BRANCH"; do
  mlx_git rev-parse -q --verify "$rev^{commit}" >/dev/null || continue
  mlx_git merge-base --is-ancestor "$base" "$rev" || continue
  extra=$(comm -23 <(commit_patch_ids "$base..$rev" "${applied[@]}") <(echo "$known"))
  [ -z "$extra" ] || die "mlx/ $rev has commits that are not in patches/; run 'make export' first (or drop them)"
done

# Files the series changes keep their modification time when their content
# does not change, so ninja rebuilds only what the new series touches.
declare -A old_blob old_mtime
if mlx_git merge-base --is-ancestor "$base" HEAD; then
  while IFS= read -r f; do
    [ -f "$MLX/$f" ] || continue
    old_blob[$f]=$(mlx_git rev-parse "HEAD:$f")
    old_mtime[$f]=$(stat -c %y "$MLX/$f")
  done < <(mlx_git diff --name-only "$base" HEAD)
fi

note "applying patches/series to mlx/ (branch $BRANCH at ${base:0:12})"
mlx_git checkout -q -B "$BRANCH" "$base"
mlx_git update-ref "$BASE_REF" "$base"
mlx_git update-ref "$APPLIED_REF" "$base"
rm -f "$(apply_failed_marker)"
n=0
while IFS= read -r name; do
  [ -f "$PATCHES/$name" ] || die "patches/series names $name, which is not in patches/"
  if ! mlx_git am -q --3way --keep-cr --committer-date-is-author-date "$PATCHES/$name"; then
    mlx_git am --abort || true
    touch "$(apply_failed_marker)"
    die "patch $name does not apply. mlx/ is left clean after the $n patches before it.
Fix patches/$name (or rebuild it in mlx/ and run 'make export'), then run 'make apply' again."
  fi
  mlx_git update-ref "$APPLIED_REF" HEAD
  n=$((n + 1))
done < <(series_entries)
count=$(mlx_git rev-list --count "$base..HEAD")
[ "$count" -eq "$n" ] || die "applied $n patches but $BRANCH has $count commits over the base"

for f in "${!old_blob[@]}"; do
  [ -f "$MLX/$f" ] && [ "$(mlx_git rev-parse "HEAD:$f" 2>/dev/null)" = "${old_blob[$f]}" ] &&
    touch -d "${old_mtime[$f]}" "$MLX/$f"
done
note "applied $n patches: $(mlx_git rev-parse --short HEAD)"
