# SPDX-License-Identifier: Apache-2.0
# Runs at install time (install(SCRIPT) in CMakeLists.txt, for `cmake --install`
# and for cpack alike): installs deploy/systemd/kvm_exit_exporter.service with
# ExecStart pointing at the binary where this installation puts it:
# /usr/bin in the Debian package, <prefix>/bin for `cmake --install`.
#
# The repository's unit stays the only hand-maintained copy. Its /usr/local/bin
# path and its "Install:" comment are for the manual install it describes;
# both are rewritten here, and a unit that no longer has that ExecStart stops
# the install instead of shipping a unit that runs the wrong binary.
#
# Set by install(CODE) before this script: KVMEXIT_UNIT_SOURCE (the unit),
# KVMEXIT_UNIT_BINDIR (the binary's install dir, relative to the prefix or
# absolute), KVMEXIT_UNIT_DIR (where the unit goes), KVMEXIT_UNIT_STAGING_DIR
# (a build directory for the rewritten unit).

set(manual_exec_start "\nExecStart=/usr/local/bin/kvm_exit_exporter ")
file(READ "${KVMEXIT_UNIT_SOURCE}" unit)
string(FIND "${unit}" "${manual_exec_start}" at)
if(at EQUAL -1)
  message(FATAL_ERROR "${KVMEXIT_UNIT_SOURCE} has no line starting with "
                      "'ExecStart=/usr/local/bin/kvm_exit_exporter ': update "
                      "cmake/install_systemd_unit.cmake along with the unit")
endif()

if(IS_ABSOLUTE "${KVMEXIT_UNIT_BINDIR}")
  set(bindir "${KVMEXIT_UNIT_BINDIR}")
else()
  set(bindir "${CMAKE_INSTALL_PREFIX}/${KVMEXIT_UNIT_BINDIR}")
endif()
string(REPLACE "${manual_exec_start}" "\nExecStart=${bindir}/kvm_exit_exporter " unit "${unit}")

# The manual install steps do not apply to an installed copy: say where it came from.
string(REGEX REPLACE
  "\n# Install:\n(#   [^\n]*\n)+"
  "\n# Installed from deploy/systemd/kvm_exit_exporter.service of kvm_exit_exporter,\n# with ExecStart pointing at the installed binary. Change settings with a\n# drop-in (systemctl edit kvm_exit_exporter), not by editing this file.\n"
  unit "${unit}")

set(staged "${KVMEXIT_UNIT_STAGING_DIR}/kvm_exit_exporter.service")
file(WRITE "${staged}" "${unit}")
file(INSTALL "${staged}" DESTINATION "${KVMEXIT_UNIT_DIR}"
     PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
