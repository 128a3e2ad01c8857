#pragma once
// Test support: one emulated fleet per test binary (CA, organisation recording key, a dock
// identity, cameras enrolled on first use), so every test's cameras and docks authenticate the
// way they do in the product. Tests about revocation or foreign CAs make their own.

#include "dock/emulated_fleet.hpp"
#include "support/sandbox.hpp"

namespace bodydock::test {

inline dock::EmulatedFleet& fleet() {
  static TempDir dir;
  static dock::EmulatedFleet f(dir / "world");
  return f;
}

/// The keys of an enrolled camera `serial` of the shared fleet.
inline std::shared_ptr<const hw::CameraTrust> camera_keys(const std::string& serial) { return fleet().camera(serial, "officer-" + serial); }

/// The shared fleet's dock identity.
inline std::shared_ptr<const pki::DockIdentity> dock_identity() {
  static auto id = fleet().dock("dock-test", fleet().dir() / "dock-trust");
  return id;
}

}  // namespace bodydock::test
