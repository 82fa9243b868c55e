#!/bin/bash
# Sourced by every test that needs the Docker engine. CI starts on a machine
# where dockerd is installed but not running: a test starts it when `docker
# info` fails and stops it again on exit, so the machine is left as found.
# Usage: . tests/lib/dockerd.sh; dockerd_up || exit 1; ... dockerd_down
# (call dockerd_down from the test's EXIT trap).

DOCKERD_STARTED_PID=
dockerd_up() {
	docker info >/dev/null 2>&1 && return 0
	local log=${DOCKERD_LOG:-/tmp/agentsafe-test-dockerd.log}
	echo "starting dockerd (log: $log)"
	# dockerd outlives nothing it should, but it must not inherit the
	# caller's descriptors either: a test run under `flock` would hand the
	# lock to dockerd and hold it for as long as dockerd runs.
	(
		for fd in /proc/self/fd/*; do
			n=${fd##*/}
			[ "$n" -gt 2 ] && eval "exec $n>&-"
		done
		exec dockerd
	) >"$log" 2>&1 &
	DOCKERD_STARTED_PID=$!
	for _ in $(seq 1 60); do
		docker info >/dev/null 2>&1 && return 0
		kill -0 "$DOCKERD_STARTED_PID" 2>/dev/null || break
		sleep 1
	done
	echo "FAIL: dockerd did not come up; see $log" >&2
	return 1
}

# Stops the dockerd that dockerd_up started (none otherwise) and waits for it,
# so the next test starts from the same state.
dockerd_down() {
	[ -n "$DOCKERD_STARTED_PID" ] || return 0
	kill -TERM "$DOCKERD_STARTED_PID" 2>/dev/null
	for _ in $(seq 1 30); do
		kill -0 "$DOCKERD_STARTED_PID" 2>/dev/null || break
		sleep 1
	done
	if kill -0 "$DOCKERD_STARTED_PID" 2>/dev/null; then
		echo "FAIL: the dockerd this test started did not stop" >&2
		return 1
	fi
	DOCKERD_STARTED_PID=
}

# What the sessions recorded under a HOME left when a test stopped early:
# their containers, networks and fence tables (only those: never another
# session of the machine).
session_leftovers() {
	local j id
	for j in "$1"/.local/state/agentsafe/sessions/*/session.json; do
		[ -f "$j" ] || continue
		id=$(basename "$(dirname "$j")")
		docker rm -f "agentsafe-$id" "agentsafe-$id-probe" >/dev/null 2>&1
		docker network rm "agentsafe-$id" >/dev/null 2>&1
		nft delete table inet "agentsafe_$id" 2>/dev/null
	done
}

# Images a test leaves untagged behind it (the layers of an image it built
# again under the same tag): images_mark after dockerd_up, images_sweep in
# the cleanup. Docker tests hold the shared lock, so what is new and
# untagged is this test's.
images_mark() { IMAGES_BEFORE=$(docker images -aq --no-trunc 2>/dev/null | sort); }
images_sweep() {
	local round new
	for round in 1 2 3 4; do
		new=$(comm -13 <(printf '%s\n' "${IMAGES_BEFORE:-}") \
			<(docker images -aq --no-trunc --filter dangling=true 2>/dev/null | sort))
		[ -n "$new" ] || return 0
		# shellcheck disable=SC2086 # image ids: split on purpose
		docker rmi -f $new >/dev/null 2>&1 || true
		: "$round"
	done
}
