#!/usr/bin/env bash
# House style gate (CONTRIBUTING.md): every C file is clang-format clean, and the
# product sources are clang-tidy clean (bugprone-*, cert-*, clang-analyzer-*
# as configured in .clang-tidy) with every finding an error.
set -euo pipefail
src=${AGENTSAFE_SOURCE_DIR:?}
build=${AGENTSAFE_BUILD_DIR:?}
cd "$src"
components=(util egresslog session policy proxy certs launcher cli)
mapfile -t all < <(find "${components[@]}" bench tests -name '*.[ch]' -not -path '*/corpus*' | sort)
mapfile -t product < <(find "${components[@]}" -name '*.c' | sort)
if [ "${#all[@]}" -eq 0 ] || [ "${#product[@]}" -eq 0 ]; then
  echo "style: no sources found under $src" >&2; exit 1
fi

status=0
if ! clang-format --dry-run --Werror "${all[@]}" 2> /tmp/style-format.$$; then
  echo "style: clang-format differences (fix with: clang-format -i FILE):" >&2
  grep -E '^[^ ].*: (error|warning):' /tmp/style-format.$$ | cut -d: -f1 | sort | uniq -c >&2
  status=1
fi
rm -f /tmp/style-format.$$

[ -f "$build/compile_commands.json" ] || { echo "style: $build/compile_commands.json missing" >&2; exit 1; }
# gcc-only flags in the compile database are not errors for clang-tidy.
if ! clang-tidy -p "$build" --quiet --warnings-as-errors='*' \
      --extra-arg=-Wno-unknown-warning-option --extra-arg=-Wno-unused-command-line-argument \
      "${product[@]}" > /tmp/style-tidy.$$ 2>&1; then
  echo "style: clang-tidy findings:" >&2
  grep -E '(warning|error):' /tmp/style-tidy.$$ | grep -v 'warnings generated' >&2 || cat /tmp/style-tidy.$$ >&2
  status=1
fi
rm -f /tmp/style-tidy.$$
[ "$status" -eq 0 ] && echo "style: ${#all[@]} files clang-format clean, ${#product[@]} product sources clang-tidy clean"
exit "$status"
