#!/usr/bin/env bash
# The README's first command: installs what AgentSafe needs (apt-get, Debian
# 12; scripts/deps.sh without the test toolchain), builds a Release tree as
# the user who ran sudo, installs it as root (cmake --install, /usr/local),
# starts dockerd if it is not running, and starts a sandboxed session with
# agentsafe-launch in the git repo of the current directory, for the user who
# ran sudo. The first session builds the agent image (several minutes).
#
#   sudo scripts/quickstart.sh [--no-build] [--offline-base] [--ca-bundle FILE]
#                              [agentsafe-launch options] [-- command...]
#
#   --no-build       skip deps/build/install (already done)
#   --offline-base   build the agent image on a Debian base made with
#                    debootstrap (from the apt mirror this host uses) instead
#                    of node:22-slim (also chosen when node:22-slim cannot
#                    be pulled)
#   --ca-bundle FILE extra CA the image must trust (a TLS-intercepting
#                    gateway); default: the CA file npm is configured with
#                    (npm config get cafile, NODE_EXTRA_CA_CERTS), if any
# Anything else goes to agentsafe-launch, e.g. `--agent shell` or `--agent codex`.
set -euo pipefail
# --help needs no root: answer it before re-running through sudo.
for a in "$@"; do
	case "$a" in
	--) break ;;
	-h | --help) sed -n 2,20p "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	esac
done
if [ "$(id -u)" -ne 0 ]; then exec sudo -E "$0" "$@"; fi

BUILD=1
OFFLINE=0
CA=
ARGS=()
while [ $# -gt 0 ]; do
	case "$1" in
	--no-build) BUILD=0; shift ;;
	--offline-base) OFFLINE=1; shift ;;
	--ca-bundle) CA=${2:?--ca-bundle needs FILE}; shift 2 ;;
	--) ARGS+=("$@"); break ;;
	*) ARGS+=("$1"); shift ;;
	esac
done

SRC=$(cd "$(dirname "$0")/.." && pwd)
say() { echo "quickstart: $*"; }

# The session belongs to whoever ran sudo, not to root.
USER_NAME=${SUDO_USER:-root}
USER_HOME=$(getent passwd "$USER_NAME" | cut -d: -f6)

# The build runs as that user, so the checkout gets no root-owned build/;
# only the install runs as root. A build/release that belongs to someone
# else (an older quickstart ran as root) is left alone: a temp dir is used.
B=$SRC/build/release
as_user=()
[ "$USER_NAME" != root ] && as_user=(runuser -u "$USER_NAME" --)
if [ "$BUILD" -eq 1 ]; then
	say "installing dependencies (apt-get)"
	"$SRC/scripts/deps.sh"
	if [ -e "$B" ] && [ "$(stat -c %U "$B")" != "$USER_NAME" ]; then
		B=$(mktemp -d /var/tmp/agentsafe-build.XXXXXX)
		chown "$USER_NAME" "$B"
		say "$SRC/build/release is not $USER_NAME's; building in $B"
	fi
	say "building (Release) as $USER_NAME"
	"${as_user[@]}" cmake -S "$SRC" -B "$B" -DCMAKE_BUILD_TYPE=Release -DAGENTSAFE_TESTS=OFF >/dev/null
	"${as_user[@]}" cmake --build "$B" -j"$(nproc)" >/dev/null
	say "installing into /usr/local"
	cmake --install "$B" >/dev/null
fi
LAUNCH=/usr/local/bin/agentsafe-launch
[ -x "$LAUNCH" ] || LAUNCH=$B/bin/agentsafe-launch
[ -x "$LAUNCH" ] || { echo "quickstart: agentsafe-launch was not built" >&2; exit 1; }

# Docker: Debian's docker.io normally starts its service on install; on a
# machine without systemd (containers, CI) start dockerd ourselves and leave
# it running for later sessions.
if ! docker info >/dev/null 2>&1; then
	if command -v systemctl >/dev/null 2>&1 && systemctl start docker 2>/dev/null; then
		say "started the docker service"
	else
		say "starting dockerd (log: /var/log/agentsafe-dockerd.log)"
		nohup dockerd >/var/log/agentsafe-dockerd.log 2>&1 &
	fi
	for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
	docker info >/dev/null 2>&1 || { echo "quickstart: dockerd did not start; see /var/log/agentsafe-dockerd.log" >&2; exit 1; }
fi

# The image's build context: the installed copy, else this source tree.
if [ -z "${AGENTSAFE_CONTAINER_DIR:-}" ]; then
	if [ -f /usr/local/share/agentsafe/container/Dockerfile ]; then
		export AGENTSAFE_CONTAINER_DIR=/usr/local/share/agentsafe/container
	else
		export AGENTSAFE_CONTAINER_DIR=$SRC/container
	fi
fi

LARGS=()
if [ -z "$CA" ]; then
	CA=$(npm config get cafile 2>/dev/null | grep -v '^null$' || true)
	[ -n "$CA" ] || CA=${NODE_EXTRA_CA_CERTS:-}
	[ -n "$CA" ] && say "the image will trust $CA (npm here uses it; --ca-bundle to change)"
fi
[ -n "$CA" ] && LARGS+=(--ca-bundle "$CA")
# The agent image's base: node:22-slim from Docker Hub, unless it cannot be
# had (no Docker Hub here): then a Debian base built with debootstrap from
# this host's apt mirror. Only matters when the agent image is still to be
# built (first run, or --build).
IMAGE=agentsafe-agent:latest
for ((i = 0; i < ${#ARGS[@]}; i++)); do
	[ "${ARGS[$i]}" = --image ] && IMAGE=${ARGS[$((i + 1))]:-$IMAGE}
	case "${ARGS[$i]}" in --build-arg=BASE_IMAGE=* | BASE_IMAGE=*) OFFLINE=-1 ;; esac
done
if [ "$OFFLINE" -eq 0 ] && ! docker image inspect "$IMAGE" >/dev/null 2>&1 &&
	! docker image inspect node:22-slim >/dev/null 2>&1; then
	say "pulling node:22-slim (the agent image's base)"
	if ! timeout 300 docker pull -q node:22-slim >/dev/null 2>&1; then
		say "cannot pull node:22-slim; building a Debian base with debootstrap instead"
		OFFLINE=1
	fi
fi
if [ "$OFFLINE" -eq 1 ]; then
	# shellcheck source=base-image.sh
	. "$SRC/scripts/base-image.sh"
	agentsafe_base_image "$AGENTSAFE_BASE_IMAGE_DEFAULT"
	LARGS+=(--build-arg "BASE_IMAGE=$AGENTSAFE_BASE_IMAGE_DEFAULT")
fi

say "starting a session for $USER_NAME (first run builds the agent image)"
# HOME is the user's: their ~/.claude seed, config and session state.
exec env HOME="$USER_HOME" "$LAUNCH" "${LARGS[@]}" "${ARGS[@]}"
