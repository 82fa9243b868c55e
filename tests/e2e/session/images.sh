#!/usr/bin/env bash
# Image work for the e2e suite: start dockerd when needed, build an offline
# Debian base image (debootstrap + docker import, cached by a content tag) and
# the real agent image from container/Dockerfile on top of it.
# Sourced by run.sh; `images.sh` run directly builds both images and exits.

# Debian mirror the host's apt uses (deb822 .sources or one-line sources.list);
# debootstrap must use the same one, since nothing else is reachable here.
e2e_debian_mirror() {
	local m
	m=$(grep -hs -E '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null |
		awk '{print $2}' | grep -v -e security -e nodesource -e google | head -n1)
	if [ -z "$m" ]; then
		m=$(grep -hs -E '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
			awk '$3 ~ /^bookworm$/ {print $2}' | head -n1)
	fi
	echo "${m:-http://deb.debian.org/debian}"
}

E2E_STARTED_DOCKERD=
# Starts dockerd when `docker info` fails; records that we did, so the
# caller's trap stops only what it started.
e2e_dockerd_up() {
	if docker info >/dev/null 2>&1; then return 0; fi
	echo "e2e: starting dockerd"
	dockerd >/tmp/ase2e-dockerd.log 2>&1 &
	E2E_STARTED_DOCKERD=$!
	local i
	for i in $(seq 1 60); do
		docker info >/dev/null 2>&1 && return 0
		sleep 1
	done
	echo "e2e: dockerd did not come up; see /tmp/ase2e-dockerd.log" >&2
	return 1
}
e2e_dockerd_down() {
	if [ -n "$E2E_STARTED_DOCKERD" ]; then
		kill "$E2E_STARTED_DOCKERD" 2>/dev/null || true
		wait "$E2E_STARTED_DOCKERD" 2>/dev/null || true
	fi
}

E2E_BASE_IMAGE=agentsafe-base:bookworm
E2E_BASE_PACKAGES="nodejs npm ca-certificates"
# The content tag: what goes into the base image. Change the recipe and the
# cached image is rebuilt.
e2e_base_tag() {
	printf 'v1 %s %s\n' "$(e2e_debian_mirror)" "$E2E_BASE_PACKAGES" | sha256sum | cut -c1-16
}

e2e_base_image() {
	local tag have dir mirror
	tag=$(e2e_base_tag)
	have=$(docker image inspect -f '{{index .Config.Labels "agentsafe.base"}}' "$E2E_BASE_IMAGE" 2>/dev/null || true)
	if [ "$have" = "$tag" ]; then
		echo "e2e: base image $E2E_BASE_IMAGE is current ($tag)"
		return 0
	fi
	mirror=$(e2e_debian_mirror)
	dir=$(mktemp -d /var/tmp/ase2e-rootfs.XXXXXX)
	echo "e2e: building $E2E_BASE_IMAGE with debootstrap from $mirror (a few minutes)"
	# Only minbase here: debootstrap's --include resolver misses npm's deep
	# dependency tree; apt inside the chroot resolves it properly.
	if ! debootstrap --variant=minbase bookworm "$dir" "$mirror" >"$dir.log" 2>&1; then
		echo "e2e: debootstrap failed; tail of $dir.log:" >&2
		tail -20 "$dir.log" >&2
		return 1
	fi
	mount -t proc proc "$dir/proc"
	local rc=0
	chroot "$dir" sh -c "export DEBIAN_FRONTEND=noninteractive; apt-get update -qq &&
		apt-get install -y -qq --no-install-recommends $E2E_BASE_PACKAGES &&
		apt-get clean && rm -rf /var/lib/apt/lists/*" >>"$dir.log" 2>&1 || rc=$?
	umount "$dir/proc"
	if [ "$rc" -ne 0 ]; then
		echo "e2e: apt-get in the chroot failed; tail of $dir.log:" >&2
		tail -20 "$dir.log" >&2
		return 1
	fi
	# Docker supplies resolv.conf and hostname at run time.
	: >"$dir/etc/resolv.conf"
	tar -C "$dir" -c . | docker import \
		--change "LABEL agentsafe.base=$tag" \
		--change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
		--change 'CMD ["bash"]' - "$E2E_BASE_IMAGE" >/dev/null || rc=$?
	rm -rf "$dir" "$dir.log"
	[ "$rc" -eq 0 ] && echo "e2e: base image $E2E_BASE_IMAGE built ($tag)"
	return "$rc"
}

E2E_CACHE=/var/cache/agentsafe/e2e
# A test CA kept between runs (so the image layers that bake the CA in stay
# cached) and the extra CA bundle the image trusts: the host's bundle (the
# package gateway intercepts TLS, npm needs it while building) + the test CA.
e2e_test_ca() {
	mkdir -p "$E2E_CACHE"
	if [ ! -s "$E2E_CACHE/testca.pem" ] || [ ! -s "$E2E_CACHE/testca.key" ]; then
		openssl req -x509 -newkey rsa:2048 -nodes -days 3650 \
			-subj "/CN=AgentSafe e2e test CA" \
			-addext basicConstraints=critical,CA:TRUE \
			-addext keyUsage=critical,keyCertSign,cRLSign \
			-keyout "$E2E_CACHE/testca.key" -out "$E2E_CACHE/testca.pem" 2>/dev/null
	fi
	cat /etc/ssl/certs/ca-certificates.crt "$E2E_CACHE/testca.pem" >"$E2E_CACHE/extra-ca.pem.tmp"
	if ! cmp -s "$E2E_CACHE/extra-ca.pem.tmp" "$E2E_CACHE/extra-ca.pem"; then
		mv "$E2E_CACHE/extra-ca.pem.tmp" "$E2E_CACHE/extra-ca.pem"
	else
		rm -f "$E2E_CACHE/extra-ca.pem.tmp"
	fi
}

E2E_AGENT_IMAGE=agentsafe-e2e:latest
# Builds container/Dockerfile on the offline base with the host CA bundle as
# the extra CA (the machine's package gateway intercepts TLS). Docker's layer
# cache makes a second run fast.
e2e_agent_image() {
	local src=$1 ctx
	ctx=$(mktemp -d /var/tmp/ase2e-ctx.XXXXXX)
	cp -a "$src/container/." "$ctx/"
	e2e_test_ca
	cp "$E2E_CACHE/extra-ca.pem" "$ctx/extra-ca.pem"
	local reg
	reg=$(npm config get registry 2>/dev/null || true)
	echo "e2e: building $E2E_AGENT_IMAGE from container/Dockerfile"
	local rc=0
	docker build -t "$E2E_AGENT_IMAGE" \
		--build-arg BASE_IMAGE="$E2E_BASE_IMAGE" \
		--build-arg EXTRA_CA=extra-ca.pem \
		--build-arg NPM_REGISTRY="${reg:-}" \
		--build-arg USER_UID="${E2E_UID:-1000}" --build-arg USER_GID="${E2E_GID:-1000}" \
		"$ctx" || rc=$?
	rm -rf "$ctx"
	return "$rc"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
	set -euo pipefail
	SRC=${AGENTSAFE_SOURCE_DIR:-$(cd "$(dirname "$0")/../../.." && pwd)}
	trap e2e_dockerd_down EXIT
	e2e_dockerd_up
	e2e_base_image
	e2e_agent_image "$SRC"
fi
