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

pki::Fleet open_or_create(const fs::path& dir) {
  fs::create_directories(dir);
  fs::permissions(dir, fs::perms::owner_all, fs::perm_options::replace);
  const auto fleet = dir / "fleet";
  if (fs::exists(fleet / "ca.crt")) return pki::Fleet::open(fleet);
  return pki::Fleet::create(fleet, "bodydock emulated fleet");
}

}  // namespace

EmulatedFleet::EmulatedFleet(fs::path dir) : dir_(std::move(dir)), fleet_(open_or_create(dir_)) {
  fs::create_directories(dir_ / "org");
  fs::create_directories(dir_ / "camera-keys");
  if (!fs::exists(recording_key_file())) pki::make_device_key(recording_key_file(), dir_ / "org" / "recording.pub");
}

std::shared_ptr<const hw::CameraTrust> EmulatedFleet::camera(const std::string& serial, const std::string& officer) {
  const auto key = dir_ / "camera-keys" / (serial + ".key");
  const auto pub = dir_ / "camera-keys" / (serial + ".pub");
  const auto crt = fleet_.dir() / "cameras" / (serial + ".crt");
  if (!fs::exists(key)) pki::make_device_key(key, pub);
  if (!fs::exists(crt)) fleet_.enrol_camera(serial, officer, pub);
  return std::make_shared<const hw::CameraTrust>(hw::CameraTrust{
      proto::crypto::PrivateKey::from_pem(read_text(key)),
      proto::crypto::cert_der(read_text(crt)),
      proto::crypto::TrustAnchor::from_pem(read_text(fleet_.dir() / "ca.crt"), read_text(fleet_.dir() / "crl.pem")),
      proto::crypto::PublicKey::from_pem(read_text(dir_ / "org" / "recording.pub")),
  });
}

std::shared_ptr<const pki::DockIdentity> EmulatedFleet::dock(const std::string& id, const fs::path& trust_dir) {
  if (!fs::exists(trust_dir / "dock.crt")) pki::provision_dock(fleet_, id, trust_dir);
  return std::make_shared<const pki::DockIdentity>(pki::load_dock_identity(trust_dir));
}

}  // namespace bodydock::dock
