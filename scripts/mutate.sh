#!/usr/bin/env bash
# Mutation testing of the security core (tests/mutation/README.md): copy the
# source tree to a scratch directory once, configure one Debug (ASan+UBSan)
# build there, then for each mutant of tests/mutation/mutants/: apply it by
# exact string match, rebuild incrementally, run only the ctest regexes it
# names (cheapest first, stopping at the first failure), and revert. A
# mutant that builds and passes its tests SURVIVED and fails the run; one
# that does not compile, or whose snippet is not found exactly once, is an
# error and fails the run too. Needs root for the integration tests it runs.
#
#   scripts/mutate.sh                  every mutant
#   scripts/mutate.sh ID [ID...]       these only (--list names them)
#   scripts/mutate.sh --list           the catalogue
#   scripts/mutate.sh --check          every snippet still found exactly once
#                                      (no build; for whoever moves the code)
# Options: --work DIR (scratch dir, kept; reused when it holds a build),
# --no-baseline (skip running the named tests on the unmutated build
# first), -j N (build jobs; default nproc).
set -uo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
CAT=$SRC/tests/mutation/mutants
PY=$SRC/tests/mutation/mutants.py
LOCK=/tmp/agentsafe-docker.lock

work= baseline=1 jobs=$(nproc) mode=run ids=()
while [ $# -gt 0 ]; do
	case $1 in
	--list) mode=list ;;
	--check) mode=check ;;
	--work) work=${2:?--work needs a directory}; shift ;;
	--no-baseline) baseline=0 ;;
	-j) jobs=${2:?-j needs a number}; shift ;;
	-h | --help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	-*) echo "mutate: unknown option $1 (see --help)" >&2; exit 2 ;;
	*) ids+=("$1") ;;
	esac
	shift
done

case $mode in
list) exec python3 "$PY" list "$CAT" ;;
check)
	python3 "$PY" check "$CAT" "$SRC" "${ids[@]}" || exit 1
	echo "mutate: every snippet found exactly once"
	exit 0 ;;
esac

# The selection, validated before anything is copied or built: a snippet
# that moved fails the whole run here, loudly, with every bad one listed.
sel=$(python3 "$PY" ids "$CAT" "${ids[@]}") || exit 2
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

# Copy (once per scratch dir): the working tree as it is, without builds
# or git metadata. Unchanged files keep their times, so a reused build dir
# rebuilds only what changed.
tar -C "$SRC" --exclude=./build --exclude=./.git -cf - . | tar -C "$S" -xf - ||
	{ echo "mutate: cannot copy the source tree to $S" >&2; exit 2; }
# A reused scratch dir whose last run was interrupted mid-mutant: the copy
# put the original back with its old time, so make it look new to rebuild.
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

# run_tests REGEX LOCK LOG: 0 when every test the regex selects passes.
run_tests() {
	local wrap=()
	[ "$2" = docker ] && wrap=(flock "$LOCK")
	(cd "$B" && "${wrap[@]}" ctest --no-tests=error --output-on-failure -R "$1") >"$3" 2>&1
}

# Baseline: every regex the selection names must pass on the unmutated
# build, or a "kill" would only be a test that fails anyway (no root, a
# missing tool, a flaky test).
if [ $baseline = 1 ]; then
	declare -A done_re=()
	for id in $sel; do
		lock=$(field "$id" lock)
		for re in $(field "$id" tests); do
			[ -n "${done_re[$re]:-}" ] && continue
			done_re[$re]=1
			log=$LOGS/baseline.$(echo "$re" | tr -c 'A-Za-z0-9_' _).log
			if ! run_tests "$re" "$lock" "$log"; then
				tail -30 "$log" >&2
				echo "mutate: baseline: '$re' fails without any mutant ($log);" \
					"fix that first" >&2
				exit 2
			fi
		done
	done
	echo "mutate: baseline passed ($(elapsed))"
fi

killed=0 survived=0 errors=0
surv_list=() err_list=()
for id in $sel; do
	m0=$(date +%s)
	file=$(field "$id" file)
	today=$(field "$id" today)
	if ! python3 "$PY" apply "$CAT" "$id" "$S" "$SAVE/$id"; then
		errors=$((errors + 1)); err_list+=("$id (snippet)")
		echo "ERROR    $id: snippet not applied"
		continue
	fi
	log=$LOGS/$id.log
	targets=$(field "$id" build)
	tflags=()
	[ -n "$targets" ] && tflags=(--target $targets)
	if ! cmake --build "$B" -j"$jobs" "${tflags[@]}" >"$log.build" 2>&1; then
		python3 "$PY" revert "$CAT" "$id" "$S" "$SAVE/$id"
		errors=$((errors + 1)); err_list+=("$id (does not compile)")
		echo "ERROR    $id: the mutant does not compile (mutants must): $log.build"
		grep -m3 'error:' "$log.build" | sed 's/^/         /'
		continue
	fi
	lock=$(field "$id" lock)
	verdict=survived by=
	for re in $(field "$id" tests); do
		if ! run_tests "$re" "$lock" "$log"; then
			verdict=killed by=$re
			break
		fi
	done
	python3 "$PY" revert "$CAT" "$id" "$S" "$SAVE/$id"
	secs=$(($(date +%s) - m0))
	if [ $verdict = killed ]; then
		killed=$((killed + 1))
		note=
		[ "$today" = survives ] && note=" (catalogue says it survives today: update 'today')"
		printf 'killed   %-36s by %s, %ss%s\n' "$id" "$by" "$secs" "$note"
	else
		survived=$((survived + 1)); surv_list+=("$id")
		printf 'SURVIVED %-36s %s, %ss: %s\n' "$id" "$file" "$secs" "$(field "$id" promise)"
		printf '         should be killed by: %s\n' "$(field "$id" killer)"
	fi
done

echo
if [ $survived -gt 0 ]; then
	echo "mutate: survivors (a security promise no test holds): ${surv_list[*]}"
fi
if [ $errors -gt 0 ]; then
	echo "mutate: errors: ${err_list[*]}"
fi
if [ -n "$(trap -p EXIT)" ]; then
	echo "mutate: logs are removed at exit; keep them with --work DIR"
else
	echo "mutate: logs in $LOGS"
fi
echo "mutation: killed $killed, survived $survived, errors $errors ($(elapsed))"
[ $survived -eq 0 ] && [ $errors -eq 0 ]
