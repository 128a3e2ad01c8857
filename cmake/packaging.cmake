# The dock as a Debian package (bodydock_VERSION-1_ARCH.deb): dockd and dockctl, the systemd
# unit, the service user, the directories, the udev rules, the config, the manual pages.
#   cmake --preset release && cmake --build --preset release
#   cpack --config build/release/CPackConfig.cmake -B build/release/package
# The layout is Debian 12's: units and udev rules under /lib (where bookworm's systemd and udev
# keep theirs), sysusers.d and tmpfiles.d under /usr/lib, binaries in /usr/bin. tests/package
# builds, inspects, installs and lints the package.

set(_bodydock_os ${CMAKE_CURRENT_LIST_DIR}/../systemd)
cmake_path(NORMAL_PATH _bodydock_os)
set(_bodydock_pkg ${CMAKE_CURRENT_BINARY_DIR}/package-files)
file(MAKE_DIRECTORY ${_bodydock_pkg})

set(BODYDOCK_DEB_RELEASE 1)
set(BODYDOCK_DEB_VERSION ${PROJECT_VERSION}-${BODYDOCK_DEB_RELEASE})
set(BODYDOCK_DEB_MAINTAINER "bodydock maintainers <bodydock@example.org>")
# The changelog's date: SOURCE_DATE_EPOCH when set (reproducible builds), else now.
string(TIMESTAMP BODYDOCK_DEB_DATE "%a, %d %b %Y %H:%M:%S +0000" UTC)

# Directories the package makes get 0755 whatever the builder's umask (lintian checks).
set(CMAKE_INSTALL_DEFAULT_DIRECTORY_PERMISSIONS
    OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ GROUP_EXECUTE WORLD_READ WORLD_EXECUTE)

# Files outside the install prefix (/lib, /etc) go only into a staged install (DESTDIR, as
# cpack does): a plain `cmake --install` must not overwrite a dock's config, nor install a
# unit whose /usr/bin/dockd is not the one just installed.
function(bodydock_install_outside_prefix file dir name)
  install(CODE "
    if(\"\$ENV{DESTDIR}\" STREQUAL \"\")
      message(STATUS \"Skipping ${dir}/${name}: the package installs it (cpack), or use DESTDIR\")
    else()
      file(INSTALL DESTINATION \"${dir}\" TYPE FILE RENAME \"${name}\" FILES \"${file}\")
    endif()")
endfunction()

# --- The service: unit, user, directories, udev rules.
bodydock_install_outside_prefix(${_bodydock_os}/dockd.service /lib/systemd/system dockd.service)
install(FILES ${_bodydock_os}/bodydock.sysusers DESTINATION lib/sysusers.d RENAME bodydock.conf)
install(FILES ${_bodydock_os}/bodydock.tmpfiles DESTINATION lib/tmpfiles.d RENAME bodydock.conf)
bodydock_install_outside_prefix(${_bodydock_os}/70-bodydock.rules /lib/udev/rules.d 70-bodydock.rules)

# --- The config. /etc/bodydock/dockd.toml is a conffile (dpkg keeps the site's edits); its
# mode and group (0640 root:bodydock) come from tmpfiles.d at postinst.
install(FILES ${_bodydock_os}/dockd.toml.example DESTINATION share/doc/bodydock/examples)
bodydock_install_outside_prefix(${_bodydock_os}/dockd.toml.example /etc/bodydock dockd.toml)

# --- Documentation: Debian wants a copyright file, a compressed changelog and manual pages
# for the programs in /usr/bin (compressed with gzip -9n, reproducibly, at build time).
configure_file(${_bodydock_os}/debian/changelog.in ${_bodydock_pkg}/changelog.Debian @ONLY)
set(_bodydock_gz)
foreach(_src IN ITEMS ${_bodydock_pkg}/changelog.Debian ${_bodydock_os}/man/dockd.8 ${_bodydock_os}/man/dockctl.8)
  cmake_path(GET _src FILENAME _name)
  add_custom_command(
    OUTPUT ${_bodydock_pkg}/${_name}.gz
    COMMAND gzip -9nc ${_src} > ${_bodydock_pkg}/${_name}.gz
    DEPENDS ${_src}
    COMMENT "Compressing ${_name} for the package"
    VERBATIM)
  list(APPEND _bodydock_gz ${_bodydock_pkg}/${_name}.gz)
endforeach()
add_custom_target(bodydock_package_docs ALL DEPENDS ${_bodydock_gz})
install(FILES ${_bodydock_pkg}/changelog.Debian.gz ${_bodydock_os}/debian/copyright DESTINATION share/doc/bodydock)
install(FILES ${_bodydock_pkg}/dockd.8.gz ${_bodydock_pkg}/dockctl.8.gz DESTINATION share/man/man8)
# What lintian says about the package that is so on purpose, each with its reason.
install(FILES ${_bodydock_os}/debian/lintian-overrides DESTINATION share/lintian/overrides RENAME bodydock)

# --- Control files: the conffile list and the maintainer scripts (postinst: user,
# directories, udev; prerm: stop; postrm: reload, purge). Nothing enables or starts the dock.
file(WRITE ${_bodydock_pkg}/conffiles "/etc/bodydock/dockd.toml\n")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${_bodydock_pkg}/conffiles ${_bodydock_os}/debian/postinst ${_bodydock_os}/debian/prerm ${_bodydock_os}/debian/postrm)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)

# --- The package.
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME bodydock)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "${BODYDOCK_DEB_MAINTAINER}")
set(CPACK_PACKAGE_VENDOR "The bodydock authors")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_RELEASE ${BODYDOCK_DEB_RELEASE})
set(CPACK_DEBIAN_PACKAGE_MAINTAINER "${BODYDOCK_DEB_MAINTAINER}")
set(CPACK_DEBIAN_PACKAGE_SECTION admin)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
# Library dependencies from the binaries (dpkg-shlibdeps); systemd runs the dock and makes
# its user and directories; procps has /bin/kill for `systemctl reload dockd`.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "systemd, procps")
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "udev")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "docking station for police body-worn cameras")
set(CPACK_DEBIAN_PACKAGE_DESCRIPTION "An officer drops the camera into a slot at the end of a shift; the dock pulls
the camera's encrypted recordings, checks every byte against the camera's
manifests, forwards them to central storage (a directory or S3), and lets the
camera erase a recording only after storage has confirmed it holds exactly
those bytes.
.
This package holds the daemon dockd with its hardened systemd service, the
operator's tool dockctl, and the udev rules that give the dock's service user
its cameras, hub ports and slot LEDs. The service is not started on
installation: configure /etc/bodydock first.")

include(CPack)
