#!/usr/bin/env bash
# Mutation testing of the security core (tests/mutation/README.md): copy the
# source tree to a scratch directory once, configure one Debug (ASan+UBSan)
# build there, then for each mutant of tests/mutation/mutants/: apply it by
# exact string match, rebuild incrementally only what its tests run, run the
# ctest regexes it names (cheapest first, stopping at the first failure),
# and revert. A mutant that builds and passes its tests SURVIVED and fails
# the run; one that does not compile, or whose snippet is not found exactly
# once, is an error and fails the run too. At the end, every test that
# killed a mutant is run once more on the unmutated tree: a test that fails
# anyway (no root, a missing tool) kills nothing. Needs root for the
# integration tests it runs.
#
#   scripts/mutate.sh                  every mutant
#   scripts/mutate.sh ID [ID...]       these only (--list names them)
#   scripts/mutate.sh --list           the catalogue
#   scripts/mutate.sh --check          every snippet still found exactly once
#                                      (no build; for whoever moves the code)
# Options: --work DIR (scratch dir, kept and reused), --baseline (run every
# named test on the unmutated build before the mutants, not only the
# killers after them), -j N (build jobs; default nproc).
set -uo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
CAT=$SRC/tests/mutation/mutants
PY=$SRC/tests/mutation/mutants.py
TABLE=$SRC/tests/mutation/targets
LOCK=/tmp/agentsafe-docker.lock

work='' baseline=0 jobs=$(nproc) mode=run ids=()
while [ $# -gt 0 ]; do
	case $1 in
	--list) mode=list ;;
	--check) mode=check ;;
	--work) work=${2:?--work needs a directory}; shift ;;
	--baseline) baseline=1 ;;
	-j) jobs=${2:?-j needs a number}; shift ;;
	-h | --help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	-*) echo "mutate: unknown option $1 (see --help)" >&2; exit 2 ;;
	*) ids+=("$1") ;;
	esac
	shift
done

case $mode in
list) exec python3 "$PY" list "$CAT" ;;
check)
	if ! python3 "$PY" check "$CAT" "$SRC" "${ids[@]}"; then
		echo "mutate: FAILED: the snippets above no longer match the code;" \
			"update them in $CAT" >&2
		exit 1
	fi
	echo "mutate: every snippet found exactly once"
	exit 0 ;;
esac

# The selection, validated before anything is copied or built: a snippet
# that moved fails the whole run here, loudly, with every bad one listed.
sel=$(python3 "$PY" ids "$CAT" "${ids[@]}") || exit 2
# shellcheck disable=SC2086 # ids: one word each, split on purpose
if ! python3 "$PY" check "$CAT" "$SRC" $sel; then
	echo "mutate: FAILED: the snippets above no longer match the code; update" \
		"them in $CAT" >&2
	exit 2
fi
field() { python3 "$PY" get "$CAT" "$1" "$2"; }

if [ -z "$work" ]; then
	work=$(mktemp -d /tmp/agentsafe-mutate.XXXXXX)
	trap 'rm -rf "$work"' EXIT
fi
S=$work/src B=$work/build SAVE=$work/save LOGS=$work/logs
mkdir -p "$S" "$LOGS"
t0=$(date +%s)
elapsed() { echo "$(($(date +%s) - t0))s"; }

# Copy: the working tree as it is, without builds or git metadata. A
# file whose content changed is written with a fresh time, so a reused
# build rebuilds it even when an object from an earlier run is newer than
# the file's own time (edited while that run was building); unchanged
# files keep theirs, so only what changed is rebuilt.
STAGE=$work/stage
rm -rf "$STAGE"
mkdir -p "$STAGE"
if ! tar -C "$SRC" --exclude=./build --exclude=./.git -cf - . | tar -C "$STAGE" -xf -; then
	echo "mutate: cannot copy the source tree to $STAGE" >&2
	exit 2
fi
(cd "$STAGE" && find . -type f) | while IFS= read -r f; do
	cmp -s "$STAGE/$f" "$S/$f" && continue
	if ! { mkdir -p "$(dirname "$S/$f")" && cp "$STAGE/$f" "$S/$f"; }; then
		echo "mutate: cannot copy $f to $S" >&2
		exit 2
	fi
done || exit 2
rm -rf "$STAGE"
# A reused scratch dir whose last run was interrupted mid-mutant: the copy
# put the original back with its old time; make it look new to rebuild.
for o in "$SAVE"/*/original; do
	[ -f "$o" ] || continue
	f=$(field "$(basename "$(dirname "$o")")" file 2>/dev/null) && touch "$S/$f"
	rm -f "$o"
done
if [ ! -f "$B/CMakeCache.txt" ]; then
	cmake -S "$S" -B "$B" -DCMAKE_BUILD_TYPE=Debug >"$LOGS/configure.log" 2>&1 ||
		{ cat "$LOGS/configure.log" >&2; echo "mutate: configure failed" >&2; exit 2; }
fi
if ! cmake --build "$B" -j"$jobs" >"$LOGS/build.log" 2>&1; then
	tail -40 "$LOGS/build.log" >&2
	echo "mutate: the unmutated tree does not build" >&2
	exit 2
fi
echo "mutate: scratch build ready in $B ($(elapsed))"

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

# build_for REGEX LOG: build what the tests REGEX selects run (all of the
# tree when a test is not known to need less).
build_for() {
	local t
	t=$( (cd "$B" && ctest --show-only=json-v1 -R "$1") | python3 "$PY" targets "$B" "$TABLE") ||
		return 1
	if [ "$t" = ALL ]; then
		cmake --build "$B" -j"$jobs" >>"$2" 2>&1
	else
		# shellcheck disable=SC2086 # target names: split on purpose
		cmake --build "$B" -j"$jobs" --target $t >>"$2" 2>&1
	fi
}

# run_tests REGEX LOCK LOG: 0 when every test the regex selects passes.
run_tests() {
	local wrap=()
	[ "$2" = docker ] && wrap=(flock "$LOCK")
	(cd "$B" && "${wrap[@]}" ctest --no-tests=error --output-on-failure -R "$1") >"$3" 2>&1
}

logname() { echo "$LOGS/$1.$(echo "$2" | tr -c 'A-Za-z0-9_' _).log"; }

# baseline REGEX LOCK: the regex passes on the unmutated tree. A failure
# prints the test's own FAIL lines first (a CI page that cuts the middle
# keeps them) and is run once more: a test that then passes is flaky, not
# failing anyway. It still confirms its kills (each mutant made it fail on
# its first run), but the run says so loudly, with the lines that failed.
baseline() {
	local log
	log=$(logname baseline "$1")
	: >"$log.build"
	build_for "$1" "$log.build" || {
		tail -30 "$log.build" >&2
		echo "mutate: '$1' does not build ($log.build)" >&2
		return 1
	}
	run_tests "$1" "$2" "$log" && return 0
	grep -m8 -E '(^|[^A-Za-z])(FAIL|FAILED|ERROR)[]: ]' "$log" | sed 's/^/    /' >&2
	tail -30 "$log" >&2
	if run_tests "$1" "$2" "$log.again"; then
		echo "mutate: FLAKY: '$1' failed once without any mutant and passed" \
			"when run again (the lines above; $log)" >&2
		flaky+=("$1")
		return 0
	fi
	grep -m8 -E '(^|[^A-Za-z])(FAIL|FAILED|ERROR)[]: ]' "$log.again" | sed 's/^/    /' >&2
	echo "mutate: '$1' fails without any mutant, twice ($log, $log.again)" >&2
	return 1
}
flaky=()

if [ $baseline = 1 ]; then
	declare -A seen=()
	for id in $sel; do
		lock=$(field "$id" lock)
		for re in $(field "$id" tests); do
			[ -n "${seen[$re]:-}" ] && continue
			seen[$re]=1
			baseline "$re" "$lock" || exit 2
		done
	done
	echo "mutate: baseline passed ($(elapsed))"
fi

killed=0 survived=0 errors=0
surv_list=() err_list=()
declare -A killers=() killer_lock=()
for id in $sel; do
	m0=$(date +%s)
	file=$(field "$id" file)
	today=$(field "$id" today)
	lock=$(field "$id" lock)
	if ! python3 "$PY" apply "$CAT" "$id" "$S" "$SAVE/$id"; then
		errors=$((errors + 1)); err_list+=("$id (snippet)")
		echo "ERROR    $id: snippet not applied"
		continue
	fi
	verdict=survived by=
	: >"$LOGS/$id.build"
	for re in $(field "$id" tests); do
		if ! build_for "$re" "$LOGS/$id.build"; then
			verdict=error
			break
		fi
		if ! run_tests "$re" "$lock" "$(logname "$id" "$re")"; then
			verdict=killed by=$re
			break
		fi
	done
	python3 "$PY" revert "$CAT" "$id" "$S" "$SAVE/$id"
	secs=$(($(date +%s) - m0))
	case $verdict in
	error)
		errors=$((errors + 1)); err_list+=("$id (does not compile)")
		echo "ERROR    $id: the mutant does not compile (mutants must): $LOGS/$id.build"
		grep -m3 'error:' "$LOGS/$id.build" | sed 's/^/         /' ;;
	killed)
		killed=$((killed + 1))
		killers[$by]="${killers[$by]:-} $id"
		killer_lock[$by]=$lock
		note=
		[ "$today" = survives ] && note=" (catalogue says it survives today: update 'today')"
		printf 'killed   %-36s by %s, %ss%s\n' "$id" "$by" "$secs" "$note" ;;
	*)
		survived=$((survived + 1)); surv_list+=("$id")
		printf 'SURVIVED %-36s %s, %ss: %s\n' "$id" "$file" "$secs" "$(field "$id" promise)"
		printf '         should be killed by: %s\n' "$(field "$id" killer)" ;;
	esac
done

# Every kill is confirmed: the killing test passes on the unmutated tree.
if [ $baseline = 0 ] && [ $killed -gt 0 ]; then
	confirmed=yes
	for re in "${!killers[@]}"; do
		if ! baseline "$re" "${killer_lock[$re]}"; then
			read -ra void <<<"${killers[$re]}"
			killed=$((killed - ${#void[@]}))
			errors=$((errors + ${#void[@]}))
			err_list+=("${void[@]/%/ (its killer fails anyway)}")
			confirmed=no
		fi
	done
	[ $confirmed = yes ] &&
		echo "mutate: every killing test passes on the unmutated tree ($(elapsed))"
fi

echo
[ ${#flaky[@]} -gt 0 ] && echo "mutate: FLAKY (failed once unmutated, then passed): ${flaky[*]}"
[ $survived -gt 0 ] && echo "mutate: survivors (a security promise no test holds): ${surv_list[*]}"
[ $errors -gt 0 ] && echo "mutate: errors: ${err_list[*]}"
if [ -n "$(trap -p EXIT)" ]; then
	echo "mutate: logs are removed at exit; keep them with --work DIR"
else
	echo "mutate: logs in $LOGS"
fi
echo "mutation: killed $killed, survived $survived, errors $errors ($(elapsed))"
[ $survived -eq 0 ] && [ $errors -eq 0 ]
