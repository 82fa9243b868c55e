#!/bin/bash
# The throwaway agent image of the launcher tests, imported from a tarball
# of host binaries (sh, curl, getent, git and their libraries): nothing is
# pulled. Sourced; aslaunch_image IMG TMPDIR.
aslaunch_image() {
	local IMG=$1 T=$2
	local R=$T/root b f l a
	mkdir -p "$R"/etc "$R"/tmp "$R"/work "$R"/home/agent "$R"/usr/local/bin
	for b in /bin/sh /usr/bin/curl /usr/bin/getent /usr/bin/timeout /bin/cat \
		/bin/sleep /usr/bin/id /usr/bin/git /bin/ls /usr/bin/head /bin/kill /bin/rm; do
		f=$(readlink -f "$b")
		mkdir -p "$R$(dirname "$b")"
		cp "$f" "$R$b"
		for l in $(ldd "$f" | grep -o '/[^ ]*'); do
			mkdir -p "$R$(dirname "$l")"
			cp -L "$l" "$R$l" 2>/dev/null
		done
	done
	cp /lib/x86_64-linux-gnu/libnss_* "$R"/lib/x86_64-linux-gnu/ 2>/dev/null
	printf 'root:x:0:0::/root:/bin/sh\nagent:x:1000:1000::/home/agent:/bin/sh\n' >"$R"/etc/passwd
	printf 'root:x:0:\nagent:x:1000:\n' >"$R"/etc/group
	printf 'hosts: files dns\n' >"$R"/etc/nsswitch.conf
	printf '#!/bin/sh\nexec "$@"\n' >"$R"/usr/local/bin/agentsafe-entrypoint
	chmod 755 "$R"/usr/local/bin/agentsafe-entrypoint
	# Stand-ins for the agents: show which credentials reached the container.
	for a in claude codex; do
		printf '#!/bin/sh\nls /run/agentsafe/seed 2>/dev/null; ls -d /home/agent/.codex 2>/dev/null; exit 0\n' \
			>"$R"/usr/local/bin/$a
		chmod 755 "$R"/usr/local/bin/$a
	done
	chmod 1777 "$R"/tmp
	tar -C "$R" -cf "$T"/rootfs.tar . || return 1
	docker import -c 'ENTRYPOINT ["/usr/local/bin/agentsafe-entrypoint"]' \
		-c 'WORKDIR /work' "$T"/rootfs.tar "$IMG" >/dev/null || {
		echo "FAIL: docker import"; return 1; }
}
