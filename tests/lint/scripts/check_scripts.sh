#!/usr/bin/env bash
# The script gate: every shell script of the repository passes shellcheck
# (all severities, sourced files followed) and every Python file pyflakes.
# Scripts are found by extension (.sh, .py) or by their #! line.
set -euo pipefail
src=${AGENTSAFE_SOURCE_DIR:-$(cd "$(dirname "$0")/../../.." && pwd)}
cd "$src"
for t in shellcheck pyflakes3; do
  command -v "$t" >/dev/null || { echo "lint: $t missing (scripts/deps.sh installs it)" >&2; exit 1; }
done
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  mapfile -t files < <(git ls-files --cached --others --exclude-standard)
else
  mapfile -t files < <(find . -path ./build -prune -o -type f -print | sed 's|^\./||')
fi
sh=() py=()
for f in "${files[@]}"; do
  [ -f "$f" ] || continue
  case "$f" in
  */corpus*/*) continue ;;
  *.sh | *.bash) sh+=("$f"); continue ;;
  *.py) py+=("$f"); continue ;;
  esac
  first=$(head -n1 "$f" 2>/dev/null | tr -d '\0') || true
  case "$first" in
  '#!'*python*) py+=("$f") ;;
  '#!'*/sh | '#!'*/bash | '#!'*'env bash' | '#!'*'env sh' | '#!'*/dash) sh+=("$f") ;;
  esac
done
if [ "${#sh[@]}" -eq 0 ] || [ "${#py[@]}" -eq 0 ]; then
  echo "lint: no scripts found under $src" >&2; exit 1
fi
rc=0
shellcheck -x -P SCRIPTDIR -f gcc "${sh[@]}" || rc=1
pyflakes3 "${py[@]}" || rc=1
[ $rc = 0 ] && echo "lint: ${#sh[@]} shell scripts and ${#py[@]} Python files clean"
exit $rc
