# `cpack -G DEB` (scripts/package.sh): the agentsafe .deb for Debian 12.
# Depends lists the runtime packages of the shared libraries the three
# binaries link (readelf -d NEEDED, then dpkg -S on each .so; libcap2-bin
# for the postinst setcap), nftables and git; docker.io is a
# Recommends, so that a machine with Docker's own docker-ce keeps it (the
# two conflict) while a plain `apt install` still brings an engine.
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME agentsafe)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "AgentSafe maintainers <agentsafe@example.invalid>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
  "sandbox for coding agents: fenced Docker session, egress proxy, audit log")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION utils)
set(CPACK_DEBIAN_PACKAGE_DEPENDS
  "libc6 (>= 2.36), libevent-2.1-7, libevent-pthreads-2.1-7, libevent-openssl-2.1-7, libssl3, libcurl4, libnftnl11, libmnl0, libcap2, libcap2-bin, libyaml-0-2, libgit2-1.5, libjansson4, nftables, git")
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "docker.io, man-db")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA ${PROJECT_SOURCE_DIR}/packaging/deb/postinst)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
include(CPack)
