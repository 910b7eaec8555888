# SPDX-License-Identifier: Apache-2.0
# The Debian package kvm-exit-exporter, built by CPack:
#   cmake --build build --target package      (or: cd build && cpack -G DEB)
# writes build/kvm-exit-exporter_<version>-<release>_<arch>.deb.
#
# Its files are what the install() rules of CMakeLists.txt install, with the
# prefix /usr; this file adds the package's own documents (copyright, the
# upstream changelog.gz, changelog.Debian.gz) and control data: computed dependencies (dpkg-shlibdeps), the
# conffile and the maintainer scripts of deploy/debian/. tests/package/
# check_deb.sh builds, inspects, installs and lints the result.

set(KVMEXIT_PACKAGE_NAME kvm-exit-exporter)  # Debian names allow no "_"
set(KVMEXIT_PACKAGE_DOC_DIR ${CMAKE_INSTALL_DATADIR}/doc/${KVMEXIT_PACKAGE_NAME})
set(KVMEXIT_PACKAGE_RELEASE 1)

# The maintainer field is required. The repository names no maintainer, so the
# default is the author of the commit being packaged; set it when publishing.
execute_process(COMMAND git -C ${CMAKE_SOURCE_DIR} log -1 "--format=%an <%ae>"
                OUTPUT_VARIABLE kvmexit_git_author OUTPUT_STRIP_TRAILING_WHITESPACE
                ERROR_QUIET)
if(NOT kvmexit_git_author)
  set(kvmexit_git_author "kvm_exit_exporter maintainers <root@localhost>")
endif()
set(KVMEXIT_PACKAGE_MAINTAINER "${kvmexit_git_author}"
    CACHE STRING "Maintainer field of the Debian package (\"Name <email>\")")

# --- /usr/share/doc/kvm-exit-exporter ----------------------------------------
# copyright names the licences (Apache-2.0; bpf/ GPL-2.0 OR BSD-3-Clause) in
# DEP-5 form; Debian ships no separate LICENSE file (lintian: extra-license-file).
install(FILES ${CMAKE_SOURCE_DIR}/deploy/debian/copyright DESTINATION ${KVMEXIT_PACKAGE_DOC_DIR})

# The upstream changelog, CHANGELOG.md, as Debian names it: changelog.gz,
# compressed without a timestamp (gzip -n) so rebuilds give the same file.
set(kvmexit_upstream_changelog ${CMAKE_BINARY_DIR}/packaging/changelog)
configure_file(${CMAKE_SOURCE_DIR}/CHANGELOG.md ${kvmexit_upstream_changelog} COPYONLY)
execute_process(COMMAND gzip -9nf ${kvmexit_upstream_changelog} RESULT_VARIABLE kvmexit_gzip_result)
if(NOT kvmexit_gzip_result EQUAL 0)
  message(FATAL_ERROR "gzip ${kvmexit_upstream_changelog} failed: ${kvmexit_gzip_result}")
endif()
install(FILES ${kvmexit_upstream_changelog}.gz DESTINATION ${KVMEXIT_PACKAGE_DOC_DIR})

# changelog.Debian.gz, one entry for this build. Dated with the packaged
# commit (not the build time) and compressed without a timestamp (gzip -n),
# so that rebuilding the same commit gives the same file.
execute_process(COMMAND git -C ${CMAKE_SOURCE_DIR} log -1 --format=%aD
                OUTPUT_VARIABLE kvmexit_changelog_date OUTPUT_STRIP_TRAILING_WHITESPACE
                ERROR_QUIET)
if(NOT kvmexit_changelog_date)
  string(TIMESTAMP kvmexit_changelog_date "%a, %d %b %Y %H:%M:%S +0000" UTC)
endif()
set(kvmexit_changelog ${CMAKE_BINARY_DIR}/packaging/changelog.Debian)
file(WRITE ${kvmexit_changelog}
"${KVMEXIT_PACKAGE_NAME} (${PROJECT_VERSION}-${KVMEXIT_PACKAGE_RELEASE}) unstable; urgency=medium

  * Package of kvm_exit_exporter ${PROJECT_VERSION}, revision ${KVMEXIT_GIT_REVISION},
    built with CPack (cmake/packaging.cmake).

 -- ${KVMEXIT_PACKAGE_MAINTAINER}  ${kvmexit_changelog_date}
")
execute_process(COMMAND gzip -9nf ${kvmexit_changelog} RESULT_VARIABLE kvmexit_gzip_result)
if(NOT kvmexit_gzip_result EQUAL 0)
  message(FATAL_ERROR "gzip ${kvmexit_changelog} failed: ${kvmexit_gzip_result}")
endif()
install(FILES ${kvmexit_changelog}.gz DESTINATION ${KVMEXIT_PACKAGE_DOC_DIR})

# --- CPack --------------------------------------------------------------------
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME ${KVMEXIT_PACKAGE_NAME})
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
# Packages are linted: no debug sections or symbol tables in the binary.
set(CPACK_STRIP_FILES ON)
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "Prometheus exporter of KVM VM exits (eBPF)")

set(CPACK_DEBIAN_PACKAGE_NAME ${KVMEXIT_PACKAGE_NAME})
set(CPACK_DEBIAN_PACKAGE_RELEASE ${KVMEXIT_PACKAGE_RELEASE})
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)  # <name>_<version>-<release>_<arch>.deb
set(CPACK_DEBIAN_PACKAGE_MAINTAINER "${KVMEXIT_PACKAGE_MAINTAINER}")
set(CPACK_DEBIAN_PACKAGE_SECTION net)  # as prometheus-node-exporter
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
# Depends: computed by dpkg-shlibdeps (dpkg-dev) from the libraries the binary
# links, with the versions this build needs. No hand-kept list to drift.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
# A cross build (cmake/aarch64-linux-gnu.cmake) packages for the target's
# architecture (CMakeLists.txt KVMEXIT_DEB_ARCH), not this machine's (CPack's
# default, dpkg --print-architecture). dpkg-shlibdeps runs inside cpack and is
# told the same through DEB_HOST_ARCH, set by the project config file cpack
# reads: it then looks the libraries up in /usr/lib/<the target's tuple>, among
# the packages of that architecture, with the target's objdump.
if(CMAKE_CROSSCOMPILING)
  set(CPACK_DEBIAN_PACKAGE_ARCHITECTURE ${KVMEXIT_DEB_ARCH})
  set(CPACK_PROJECT_CONFIG_FILE ${CMAKE_BINARY_DIR}/packaging/cpack_host_arch.cmake)
  file(CONFIGURE OUTPUT ${CPACK_PROJECT_CONFIG_FILE}
       CONTENT "set(ENV{DEB_HOST_ARCH} ${KVMEXIT_DEB_ARCH})  # cmake/packaging.cmake\n")
endif()
# deb-systemd-helper and deb-systemd-invoke of the maintainer scripts come from
# init-system-helpers, which is Essential: no dependency needed for them.
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${CMAKE_SOURCE_DIR}/deploy/debian/conffiles
    ${CMAKE_SOURCE_DIR}/deploy/debian/postinst
    ${CMAKE_SOURCE_DIR}/deploy/debian/prerm
    ${CMAKE_SOURCE_DIR}/deploy/debian/postrm)
# 0644 for conffiles, 0755 for the scripts, whatever the checkout's modes.
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
set(CPACK_DEBIAN_PACKAGE_DESCRIPTION
"A small eBPF program on the kvm:kvm_exit tracepoint counts every VM exit by
reason, VM and (optionally) vCPU; the daemon serves counters, exit rates,
boot-storm figures and its own health to Prometheus.

Installs /usr/bin/kvm_exit_exporter, the systemd unit
kvm_exit_exporter.service, the commented configuration
/etc/kvm_exit_exporter/config.yml, and Grafana dashboards and Prometheus
rules under /usr/share/kvm_exit_exporter/.

Like prometheus-node-exporter, the service is enabled and started on
installation where systemd runs, and listens on 0.0.0.0:9756 so that a remote
Prometheus can scrape it: restrict web.listen_address in config.yml or
firewall the port if the VM names must not be visible on the network. It runs
as a dynamic non-root user with CAP_BPF, CAP_PERFMON and CAP_DAC_READ_SEARCH
only.")

include(CPack)
