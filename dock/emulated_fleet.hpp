#pragma once
/// The world around a dock that the demo and the tests emulate, kept outside the dock's state:
/// the organisation's fleet CA, its recording key pair (whose private half only the centre
/// holds), and the emulated cameras' keys and flash. It does what an installer and a camera
/// factory would: provisions the dock's trust directory and enrols each camera.
///
/// Layout of the world directory (0700):
///   fleet/                the fleet PKI (pki::Fleet)
///   org/recording.key     the organisation's recording private key (0600): decrypts footage
///   org/recording.pub     its public half, installed in every camera
///   camera-keys/<serial>.key, .pub   each camera's device key (its secure element)
///   cameras/              the emulated cameras' flash (hw::CameraDevice::open_persistent)

#include "dock/pki.hpp"
#include "hw/camera_device.hpp"

#include <filesystem>
#include <memory>
#include <string>

namespace bodydock::dock {

class EmulatedFleet {
 public:
  /// Opens the world in `dir`, creating the fleet CA and the recording key on first use.
  explicit EmulatedFleet(std::filesystem::path dir);

  /// The keys of camera `serial`; made and enrolled (for `officer`) on first use.
  std::shared_ptr<const hw::CameraTrust> camera(const std::string& serial, const std::string& officer);
  /// Writes the trust directory of dock `id` (issuing its certificate on first use; the CA
  /// certificate and CRL are refreshed every time) and loads it.
  std::shared_ptr<const pki::DockIdentity> dock(const std::string& id, const std::filesystem::path& trust_dir);

  [[nodiscard]] pki::Fleet& fleet() { return fleet_; }
  [[nodiscard]] std::filesystem::path recording_key_file() const { return dir_ / "org" / "recording.key"; }
  [[nodiscard]] std::filesystem::path cameras_dir() const { return dir_ / "cameras"; }
  [[nodiscard]] const std::filesystem::path& dir() const { return dir_; }

 private:
  std::filesystem::path dir_;
  pki::Fleet fleet_;
};

}  // namespace bodydock::dock
