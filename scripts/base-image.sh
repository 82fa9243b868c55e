#!/usr/bin/env bash
# A Debian 12 base image for the agent image (container/Dockerfile's
# BASE_IMAGE) built without Docker Hub: debootstrap from the apt mirror this
# host already uses, then `docker import`. For machines that reach a Debian
# mirror and the npm registry but not Docker Hub (air-gapped, corporate).
# The image is labelled with a tag of its recipe; a current one is reused.
#
#   scripts/base-image.sh [IMAGE]        (default agentsafe-base:bookworm)
#
# Sourced, it defines agentsafe_base_image IMAGE and agentsafe_debian_mirror.

AGENTSAFE_BASE_IMAGE_DEFAULT=agentsafe-base:bookworm
AGENTSAFE_BASE_PACKAGES="nodejs npm ca-certificates"

# The Debian mirror the host's apt uses (deb822 .sources or one-line
# sources.list): the one mirror known to be reachable from here.
agentsafe_debian_mirror() {
	local m
	m=$(grep -hs -E '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null |
		awk '{print $2}' | grep -v -e security -e nodesource -e google | head -n1)
	if [ -z "$m" ]; then
		m=$(grep -hs -E '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
			awk '$3 ~ /^bookworm$/ {print $2}' | head -n1)
	fi
	echo "${m:-http://deb.debian.org/debian}"
}

agentsafe_base_tag() {
	printf 'v1 %s %s\n' "$(agentsafe_debian_mirror)" "$AGENTSAFE_BASE_PACKAGES" | sha256sum | cut -c1-16
}

# Builds IMAGE unless an image of the same recipe is there. Needs root
# (debootstrap, chroot) and a running dockerd.
agentsafe_base_image() {
	local image=${1:-$AGENTSAFE_BASE_IMAGE_DEFAULT} tag have dir mirror rc=0
	tag=$(agentsafe_base_tag)
	have=$(docker image inspect -f '{{index .Config.Labels "agentsafe.base"}}' "$image" 2>/dev/null || true)
	if [ "$have" = "$tag" ]; then
		echo "base image $image is current ($tag)"
		return 0
	fi
	command -v debootstrap >/dev/null || { echo "base image: debootstrap is not installed" >&2; return 1; }
	mirror=$(agentsafe_debian_mirror)
	dir=$(mktemp -d /var/tmp/agentsafe-rootfs.XXXXXX)
	echo "building $image with debootstrap from $mirror (a few minutes)"
	# minbase only: debootstrap's --include resolver misses npm's deep
	# dependency tree; apt inside the chroot resolves it properly.
	if ! debootstrap --variant=minbase bookworm "$dir" "$mirror" >"$dir.log" 2>&1; then
		echo "base image: debootstrap failed; tail of $dir.log:" >&2
		tail -20 "$dir.log" >&2
		rm -rf "$dir"
		return 1
	fi
	mount -t proc proc "$dir/proc"
	chroot "$dir" sh -c "export DEBIAN_FRONTEND=noninteractive; apt-get update -qq &&
		apt-get install -y -qq --no-install-recommends $AGENTSAFE_BASE_PACKAGES &&
		apt-get clean && rm -rf /var/lib/apt/lists/*" >>"$dir.log" 2>&1 || rc=$?
	umount "$dir/proc"
	if [ "$rc" -ne 0 ]; then
		echo "base image: apt-get in the chroot failed; tail of $dir.log:" >&2
		tail -20 "$dir.log" >&2
		rm -rf "$dir"
		return 1
	fi
	# Docker supplies resolv.conf and hostname at run time.
	: >"$dir/etc/resolv.conf"
	tar -C "$dir" -c . | docker import \
		--change "LABEL agentsafe.base=$tag" \
		--change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
		--change 'CMD ["bash"]' - "$image" >/dev/null || rc=$?
	rm -rf "$dir" "$dir.log"
	[ "$rc" -eq 0 ] && echo "base image $image built ($tag)"
	return "$rc"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
	set -euo pipefail
	[ "$(id -u)" -eq 0 ] || { echo "base-image.sh: needs root (debootstrap, chroot)" >&2; exit 1; }
	agentsafe_base_image "${1:-}"
fi
