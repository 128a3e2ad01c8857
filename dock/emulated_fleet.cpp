#include "dock/emulated_fleet.hpp"

#include <fstream>
#include <sstream>

namespace bodydock::dock {
namespace fs = std::filesystem;

namespace {

std::string read_text(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) throw pki::PkiError(p.string() + ": cannot read");
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

/// The world survives a kill at any instant (the demo is killed on purpose in tests): each part
/// is made whole in a temporary place and renamed into place, or made again when half there.
pki::Fleet open_or_create(const fs::path& dir) {
  fs::create_directories(dir);
  fs::permissions(dir, fs::perms::owner_all, fs::perm_options::replace);
  const auto fleet = dir / "fleet";
  if (fs::exists(fleet)) return pki::Fleet::open(fleet);
  const auto tmp = dir / "fleet.tmp";
  fs::remove_all(tmp);
  pki::Fleet::create(tmp, "bodydock emulated fleet");
  fs::rename(tmp, fleet);
  return pki::Fleet::open(fleet);
}

/// A key pair whose two halves are both there; made again if a kill left one half (only
/// before anything was enrolled or encrypted with it: callers check).
void ensure_key_pair(const fs::path& key, const fs::path& pub) {
  if (fs::exists(key) && fs::exists(pub)) return;
  pki::make_device_key(key, pub);
}

}  // namespace

EmulatedFleet::EmulatedFleet(fs::path dir) : dir_(std::move(dir)), fleet_(open_or_create(dir_)) {
  fs::create_directories(dir_ / "org");
  fs::create_directories(dir_ / "camera-keys");
  // Cameras load the public half, so with it missing nothing was ever encrypted to this pair.
  ensure_key_pair(recording_key_file(), dir_ / "org" / "recording.pub");
}

std::shared_ptr<const hw::CameraTrust> EmulatedFleet::camera(const std::string& serial, const std::string& officer) {
  const auto key = dir_ / "camera-keys" / (serial + ".key");
  const auto pub = dir_ / "camera-keys" / (serial + ".pub");
  const auto crt = fleet_.dir() / "cameras" / (serial + ".crt");
  if (!fs::exists(crt)) {
    ensure_key_pair(key, pub);  // not enrolled yet: a half-made pair can still be replaced
    fleet_.enrol_camera(serial, officer, pub);
  }
  return std::make_shared<const hw::CameraTrust>(hw::CameraTrust{
      proto::crypto::PrivateKey::from_pem(read_text(key)),
      proto::crypto::cert_der(read_text(crt)),
      proto::crypto::TrustAnchor::from_pem(read_text(fleet_.dir() / "ca.crt"), read_text(fleet_.dir() / "crl.pem")),
      proto::crypto::PublicKey::from_pem(read_text(dir_ / "org" / "recording.pub")),
  });
}

std::shared_ptr<const pki::DockIdentity> EmulatedFleet::dock(const std::string& id, const fs::path& trust_dir) {
  // Provisioned at every start, as a site's configuration management would: the CRL (and a
  // CA that was made anew) reach the dock.
  pki::provision_dock(fleet_, id, trust_dir);
  return std::make_shared<const pki::DockIdentity>(pki::load_dock_identity(trust_dir));
}

}  // namespace bodydock::dock
