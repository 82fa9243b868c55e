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
	# Not with the caller's descriptors: under `flock LOCK cmd` the lock's
	# descriptor (3 and up) would live on in dockerd, and a test killed
	# before its trap ran would leave the lock held for good.
	dockerd >"$log" 2>&1 3>&- 4>&- 5>&- 6>&- 7>&- 8>&- 9>&- &
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
