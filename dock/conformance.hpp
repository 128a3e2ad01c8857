#pragma once
/// The camera conformance suite (`dockctl conformance`): acts as the host against one camera and
/// runs named cases, each checking the rules of one or more sections of proto/PROTOCOL.md. The
/// camera is reached through a Target: the built-in emulator over the in-process link, the
/// emulator on the umockdev lane (real libusb), or a camera on the bus by USB port path.
///
/// Every case starts from a fresh docking (the target re-docks the camera, so a case that left
/// the device confused cannot spoil the next one), runs under a deadline (a device that hangs
/// fails that case, not the suite), and ends pass, fail (with what was sent, what was expected
/// and what came back) or not applicable (only when the transport cannot do it, e.g. USB
/// descriptors over the in-process link; never counted as a pass).

#include "dock/pki.hpp"
#include "hw/camera_device.hpp"
#include "usb/camera_link.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace bodydock::usb {
class UsbContext;
class DeviceRef;
}  // namespace bodydock::usb
namespace bodydock::hw {
class UmockdevBus;
}

namespace bodydock::dock {
class EmulatedFleet;
}

namespace bodydock::dock::conformance {

/// What the USB descriptors of the device say (the descriptor case judges them).
struct UsbEndpointFacts {
  std::uint8_t address = 0;
  std::uint8_t attributes = 0;   ///< bmAttributes: the transfer type in bits 0..1
  std::uint16_t max_packet = 0;  ///< wMaxPacketSize
};
struct UsbInterfaceFacts {
  int number = 0;
  int alternate = 0;
  std::uint8_t interface_class = 0;
  std::vector<UsbEndpointFacts> endpoints;
};
struct UsbFacts {
  std::uint16_t vid = 0;
  std::uint16_t pid = 0;
  int speed = 0;                ///< libusb_speed: 3 High, 4 Super, 5 Super+; 0 unknown
  std::string port;             ///< USB port path
  std::vector<UsbInterfaceFacts> interfaces;  ///< of the active configuration
};

/// Which camera a case docks: the device under test, or its twin with no free storage (only
/// the emulator can offer one; on a real camera the full-storage case runs when it is full).
enum class Camera { under_test, storage_full };

/// The device under test, as the suite reaches it.
class Target {
 public:
  virtual ~Target() = default;
  /// For the table's header: what is tested and over what.
  [[nodiscard]] virtual std::string describe() const = 0;
  /// A new docking: the camera's session starts over (no handshake, nothing half-received, no
  /// reply of an earlier docking still queued). Throws std::runtime_error when it cannot.
  virtual boost::asio::awaitable<std::unique_ptr<usb::CameraLink>> connect(Camera which) = 0;
  /// Ends a docking; transfers in flight are cancelled and handed back first.
  virtual boost::asio::awaitable<void> disconnect(std::unique_ptr<usb::CameraLink> link) = 0;
  /// The camera's USB descriptors, or nullopt when the transport has none (in-process link).
  virtual std::optional<UsbFacts> usb_facts() = 0;
  /// Whether connect(Camera::storage_full) works.
  [[nodiscard]] virtual bool has_full_twin() const { return false; }
};

/// The built-in emulator over the in-process link (hw::EmulatedLink): re-docking is a new link,
/// which starts a new session on the same CameraDevice.
class EmulatorTarget final : public Target {
 public:
  EmulatorTarget(boost::asio::any_io_executor ex, hw::CameraDevice& camera, hw::CameraDevice* full_twin);
  [[nodiscard]] std::string describe() const override;
  boost::asio::awaitable<std::unique_ptr<usb::CameraLink>> connect(Camera which) override;
  boost::asio::awaitable<void> disconnect(std::unique_ptr<usb::CameraLink> link) override;
  std::optional<UsbFacts> usb_facts() override { return std::nullopt; }
  [[nodiscard]] bool has_full_twin() const override { return full_ != nullptr; }

 private:
  boost::asio::any_io_executor ex_;
  hw::CameraDevice& camera_;
  hw::CameraDevice* full_;
};

/// A camera on USB, found by port path through libusb hotplug. Re-docking resets the port
/// (libusb_reset_device: the camera sees a USB reset, which ends its session, PROTOCOL.md 5.1)
/// and opens the camera again.
class UsbTarget : public Target {
 public:
  /// `ex` must be the executor `usb` runs on.
  UsbTarget(boost::asio::any_io_executor ex, usb::UsbContext& usb, std::string port);
  ~UsbTarget() override;
  [[nodiscard]] std::string describe() const override;
  boost::asio::awaitable<std::unique_ptr<usb::CameraLink>> connect(Camera which) override;
  boost::asio::awaitable<void> disconnect(std::unique_ptr<usb::CameraLink> link) override;
  std::optional<UsbFacts> usb_facts() override;
  /// Waits (at most `limit`) for a device on the camera's port; false if none shows up.
  boost::asio::awaitable<bool> wait_present(std::chrono::milliseconds limit);
  /// Every port path with a device on it now, for an error message.
  [[nodiscard]] std::vector<std::string> ports_seen() const;

 protected:
  /// Makes the camera on `port` start a new session; the base class resets the USB port. Returns
  /// the hotplug generation the camera must arrive after (0: the device there now will do).
  virtual boost::asio::awaitable<unsigned> redock(Camera which, std::string port);
  [[nodiscard]] virtual std::string port_of(Camera) const { return port_; }
  /// The hotplug generation of `port`: it grows by one with every arrival there.
  [[nodiscard]] unsigned generation(const std::string& port) const;
  /// Waits until the device on `port` has arrived after generation `after` (or is there at all,
  /// when `after` is 0), at most `limit`. nullopt on timeout.
  boost::asio::awaitable<std::optional<usb::DeviceRef>> arrived(std::string port, unsigned after, std::chrono::milliseconds limit);

  boost::asio::any_io_executor ex_;
  usb::UsbContext& usb_;
  std::string port_;

 private:
  struct Presence;
  /// Shared with the hotplug callback, which may outlive this target inside the UsbContext.
  std::shared_ptr<Presence> presence_;
  std::set<std::string> docked_before_;
  std::string reset_note_;  ///< why re-docking cannot reset the port, once seen
};

/// The emulator on the umockdev lane: the camera (and its full-storage twin) on emulated hub
/// ports, every byte through the real libusb path. Re-docking pulls the camera and plugs it
/// back, which starts a new session as a real unplug does.
class UmockdevTarget final : public UsbTarget {
 public:
  /// `bus` must have been made before `usb` (it redirects sysfs and /dev for libusb).
  UmockdevTarget(boost::asio::any_io_executor ex, hw::UmockdevBus& bus, usb::UsbContext& usb, hw::CameraDevice& camera,
                 hw::CameraDevice* full_twin);
  ~UmockdevTarget() override;
  [[nodiscard]] std::string describe() const override;
  [[nodiscard]] bool has_full_twin() const override { return full_ != nullptr; }

 protected:
  boost::asio::awaitable<unsigned> redock(Camera which, std::string port) override;
  [[nodiscard]] std::string port_of(Camera which) const override;

 private:
  hw::UmockdevBus& bus_;
  hw::CameraDevice& camera_;
  hw::CameraDevice* full_;
  std::set<unsigned> plugged_;
};

/// The trust material the cases need. The suite makes a dock of another CA itself.
struct SuiteTrust {
  /// A dock of the camera's fleet: the fleet CA (and CRL) to check the camera against, the
  /// dock's key and certificate (mutual authentication, custody receipts).
  std::shared_ptr<const pki::DockIdentity> fleet_dock;
};

struct SuiteOptions {
  /// Cases to run, by name; empty: all of them.
  std::vector<std::string> only;
  /// Deadline for each reply (PROTOCOL.md 5.4: the reference dock's request timeout).
  std::chrono::milliseconds request_timeout{5000};
  /// Deadline for a whole case (the stress case gets ten times as long).
  std::chrono::milliseconds case_deadline{60000};
  /// Random valid requests of the stress case.
  unsigned stress_requests = 10000;
  /// Bytes of footage the suite reads and verifies as its reference for content checks.
  std::uint64_t reference_budget = 32ull << 20;
  /// Seed of the random requests (printed with a failure, so it can be repeated).
  std::uint64_t seed = 1;
};

enum class Outcome { pass, fail, not_applicable };

struct CaseResult {
  std::string name;
  std::string sections;  ///< PROTOCOL.md sections, e.g. "4.7, 8"
  std::string checks;    ///< what the case checks, in a sentence
  Outcome outcome = Outcome::fail;
  std::string message;   ///< why it failed or is not applicable; empty on a pass
  std::chrono::duration<double> took{};
};

struct Report {
  std::string target;
  /// What the device said of itself in its first HELLO_OK (serial, model, firmware), printable.
  std::string device;
  std::vector<CaseResult> results;
  std::chrono::duration<double> took{};  ///< the whole suite
  std::int64_t started_unix_ms = 0;
  [[nodiscard]] std::size_t count(Outcome o) const;
  [[nodiscard]] bool failed() const { return count(Outcome::fail) > 0; }
};

/// One case of the table, for listings and --case.
struct CaseInfo {
  std::string name;
  std::string sections;
  std::string checks;
};
/// Every case, in the order the suite runs them.
std::vector<CaseInfo> cases();

/// Runs the chosen cases in table order. Unknown names in `options.only` are a caller's
/// mistake: check them first with cases().
boost::asio::awaitable<Report> run_suite(Target& target, SuiteTrust trust, SuiteOptions options);
/// run_suite on `ioc`, returning when it is done (for the command line and tests).
Report run_suite_blocking(boost::asio::io_context& ioc, Target& target, SuiteTrust trust, SuiteOptions options);

/// The human table: case, section, result, time, message; the footer counts results and gives
/// the suite's run time.
std::string render_table(const Report& report);
/// JUnit XML (testsuites/testsuite/testcase with failure and skipped), every case naming its
/// PROTOCOL.md section.
std::string render_junit(const Report& report);

/// The built-in emulator as a device under test: its own world (fleet CA, recording key, one
/// enrolled camera, a dock identity of the fleet) in `dir`, the camera, and a twin camera whose
/// storage is exactly full.
class EmulatorRig {
 public:
  explicit EmulatorRig(const std::filesystem::path& dir);
  ~EmulatorRig();
  EmulatorRig(const EmulatorRig&) = delete;
  EmulatorRig& operator=(const EmulatorRig&) = delete;

  [[nodiscard]] hw::CameraDevice& camera() { return *camera_; }
  [[nodiscard]] hw::CameraDevice& full_camera() { return *full_; }
  [[nodiscard]] SuiteTrust trust() const { return {dock_identity_}; }
  /// Breaks the camera under test on purpose, to see what a failure looks like:
  /// replay-auth | bad-signature=SEQ | hide=SEQ | charger-stuck. Throws std::invalid_argument.
  void apply_fault(const std::string& spec);

 private:
  std::unique_ptr<EmulatedFleet> world_;
  std::shared_ptr<const pki::DockIdentity> dock_identity_;
  std::unique_ptr<hw::CameraDevice> camera_;
  std::unique_ptr<hw::CameraDevice> full_;
};

}  // namespace bodydock::dock::conformance
