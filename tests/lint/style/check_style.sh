#!/usr/bin/env bash
# House style gate (CONTRIBUTING.md): every C file is clang-format clean, and the
# product sources are clang-tidy clean (bugprone-*, cert-*, clang-analyzer-*
# as configured in .clang-tidy) with every finding an error, and no product
# function is longer than 120 lines.
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

# No function over 120 lines (CONTRIBUTING.md). clang-format (checked above)
# puts a function's opening and closing braces alone at column 0, so a body
# runs from a line '{' at column 0 to the next '}' at column 0; the signature
# is the last line before it that starts at column 0 with a name and a '('.
fn_max=120
if ! awk -v max="$fn_max" '
    FNR == 1 { open = 0; sig = "" }
    !open && /^[A-Za-z_].*\(/ { sig = $0 }
    /^\{/ { if (!open) open = FNR; next }
    /^\}/ && open {
      len = FNR - open - 1; open = 0
      name = sig; sub(/\(.*/, "", name); sub(/.*[^A-Za-z0-9_]/, "", name)
      if (len > max) {
        printf "style: %s: function \"%s\" is %d lines (at most %d); split it by concern\n", FILENAME, sig, len, max
        bad = 1
      }
    }
    END { exit bad }' "${product[@]}" >&2; then
  status=1
fi

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
[ "$status" -eq 0 ] && echo "style: ${#all[@]} files clang-format clean, ${#product[@]} product sources clang-tidy clean, no function over $fn_max lines"
exit "$status"
