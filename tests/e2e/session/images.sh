#!/usr/bin/env bash
# Image work for the e2e suite: start dockerd when needed, build an offline
# Debian base image (debootstrap + docker import, cached by a content tag) and
# the real agent image from container/Dockerfile on top of it.
# Sourced by run.sh; `images.sh` run directly builds both images and exits.

# The offline base image recipe is the product's own (scripts/base-image.sh).
# shellcheck source=../../../scripts/base-image.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)/scripts/base-image.sh"

# shellcheck source=../../lib/dockerd.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")/../../lib" && pwd)/dockerd.sh"
# Starts dockerd when `docker info` fails; the caller's trap stops only what
# it started.
e2e_dockerd_up() { DOCKERD_LOG=/tmp/ase2e-dockerd.log dockerd_up; }
e2e_dockerd_down() { dockerd_down; }

E2E_BASE_IMAGE=agentsafe-base:bookworm
e2e_base_image() { agentsafe_base_image "$E2E_BASE_IMAGE"; }

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

# For a session test: IMG (the agent image), the uid/gid it was built for
# (UIDL/GIDL), and BUILD, the launcher's arguments that build it on the
# offline base when it is missing.
# shellcheck disable=SC2034 # set for the sourcing test
e2e_session_image() {
	IMG=$E2E_AGENT_IMAGE
	e2e_test_ca
	BUILD=()
	if UIDL=$(docker image inspect "$IMG" --format '{{index .Config.Labels "agentsafe.uid"}}' 2>/dev/null) &&
		[ -n "$UIDL" ] && [ "$UIDL" != "<no value>" ]; then
		GIDL=$(docker image inspect "$IMG" --format '{{index .Config.Labels "agentsafe.gid"}}')
	else
		e2e_base_image || return 1
		UIDL=1000 GIDL=1000
		BUILD=(--build --build-arg BASE_IMAGE="$E2E_BASE_IMAGE")
	fi
}

# e2e_upstream_netns NS VETH HOSTIP UPIP: a namespace of the test's own,
# reached over a veth (HOSTIP/30 on the host, UPIP/30 as its eth0).
e2e_upstream_netns() {
	ip netns add "$1" && ip link add "$2" type veth peer name eth0 netns "$1" &&
		ip addr add "$3/30" dev "$2" && ip link set "$2" up &&
		ip -n "$1" addr add "$4/30" dev eth0 && ip -n "$1" link set eth0 up &&
		ip -n "$1" link set lo up
}

# e2e_server_cert DIR NAME SAN: DIR/NAME.pem and .key, signed by the test
# CA for SAN ("DNS:a.test,DNS:b.test").
e2e_server_cert() {
	openssl req -newkey rsa:2048 -nodes -subj "/CN=$2" \
		-keyout "$1/$2.key" -out "$1/$2.csr" 2>/dev/null &&
		printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\n' "$3" >"$1/$2.ext" &&
		openssl x509 -req -in "$1/$2.csr" -CA "$E2E_CACHE/testca.pem" \
			-CAkey "$E2E_CACHE/testca.key" -CAcreateserial -CAserial "$1/$2.srl" \
			-days 2 -extfile "$1/$2.ext" -out "$1/$2.pem" 2>/dev/null
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
	set -euo pipefail
	SRC=${AGENTSAFE_SOURCE_DIR:-$(cd "$(dirname "$0")/../../.." && pwd)}
	trap e2e_dockerd_down EXIT
	e2e_dockerd_up
	e2e_base_image
	e2e_agent_image "$SRC"
fi
