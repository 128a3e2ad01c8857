#pragma once
/// Per-slot port power: how a dock charges cameras and revives one that hangs or does not
/// enumerate. Backends:
///  - sysfs: /sys/bus/usb/devices/<hub>:1.0/<hub>-port<N>/disable (Linux >= 6.0), which switches
///    the port off for the kernel and, on hubs that can, VBUS too;
///  - hub: USB hub class SET/CLEAR_FEATURE(PORT_POWER) on the hub's control endpoint, as uhubctl
///    does (hubs with per-port power switching; ganged hubs are refused, not guessed around);
///  - virtual: for the demo and tests, with a hook the emulated bus uses to pull and replug.
/// All switch asynchronously inside the event loop; errors are error codes.

#include <boost/asio/awaitable.hpp>
#include <boost/system/error_code.hpp>
#include <boost/system/result.hpp>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>

struct libusb_context;

namespace bodydock::hw {

enum class power_errc {
  bad_port_path = 1,   ///< not of the form "1-1.3" / "2-4"
  no_hub = 2,          ///< no hub at the port path's parent
  not_switchable = 3,  ///< the hub has ganged or no port power switching
  no_such_port = 4,    ///< the hub has fewer ports
};
const boost::system::error_category& power_category() noexcept;
inline boost::system::error_code make_error_code(power_errc e) noexcept { return {static_cast<int>(e), power_category()}; }

/// "1-1.3" -> hub "1-1", port 3; "2-4" -> the root hub of bus 2 (hub ""), port 4.
struct PortAddress {
  unsigned bus = 0;
  std::string hub;     ///< port path of the hub; empty for a root hub
  unsigned number = 0; ///< port on that hub, 1-based
};
boost::system::result<PortAddress> parse_port_path(const std::string& port);

class PortPower {
 public:
  virtual ~PortPower() = default;
  /// Switches the port with USB path `port` ("1-1.3") on or off.
  virtual boost::asio::awaitable<boost::system::error_code> switch_port(std::string port, bool on) = 0;
  /// Whether something is electrically attached to the port, enumerated or not; nullopt when
  /// the backend cannot tell. Lets the dock notice a camera that never shows up on the bus.
  virtual boost::asio::awaitable<std::optional<bool>> attached(std::string port) = 0;
  [[nodiscard]] virtual std::string describe() const = 0;
};

/// sysfs `disable` attribute of the port (kernel >= 6.0); attachment from the port's `state`
/// attribute where the kernel has it (>= 6.5). `sys_root` is normally "/sys".
class SysfsPortPower final : public PortPower {
 public:
  explicit SysfsPortPower(std::filesystem::path sys_root = "/sys") : root_(std::move(sys_root)) {}
  boost::asio::awaitable<boost::system::error_code> switch_port(std::string port, bool on) override { co_return set(port, on); }
  boost::asio::awaitable<std::optional<bool>> attached(std::string port) override { co_return is_attached(port); }
  [[nodiscard]] std::string describe() const override { return "sysfs port disable"; }

  boost::system::error_code set(const std::string& port, bool on);
  [[nodiscard]] std::optional<bool> is_attached(const std::string& port) const;
  /// The port's sysfs directory: "1-1.3" -> <root>/bus/usb/devices/1-1:1.0/1-1-port3,
  /// "2-4" -> <root>/bus/usb/devices/2-0:1.0/usb2-port4. Empty for a malformed path.
  [[nodiscard]] std::filesystem::path port_dir(const std::string& port) const;

 private:
  std::filesystem::path root_;
};

/// Hub class requests on the parent hub's endpoint 0 (through the event-loop libusb bridge).
class HubPortPower final : public PortPower {
 public:
  explicit HubPortPower(libusb_context* ctx, std::chrono::milliseconds timeout = std::chrono::milliseconds(1000))
      : ctx_(ctx), timeout_(timeout) {}
  boost::asio::awaitable<boost::system::error_code> switch_port(std::string port, bool on) override;
  boost::asio::awaitable<std::optional<bool>> attached(std::string port) override;
  [[nodiscard]] std::string describe() const override { return "hub port power (SET/CLEAR_FEATURE)"; }

  struct PortStatus {
    bool connected = false;
    bool enabled = false;
    bool powered = false;
  };
  /// GET_STATUS of the port.
  boost::asio::awaitable<boost::system::result<PortStatus>> status(std::string port);

 private:
  libusb_context* ctx_;
  std::chrono::milliseconds timeout_;
};

/// Virtual ports: records the state and calls `on_change` (the emulated bus plugs and unplugs).
class VirtualPortPower final : public PortPower {
 public:
  boost::asio::awaitable<boost::system::error_code> switch_port(std::string port, bool on) override { co_return set(port, on); }
  boost::asio::awaitable<std::optional<bool>> attached(std::string port) override;
  [[nodiscard]] std::string describe() const override { return "virtual"; }

  boost::system::error_code set(const std::string& port, bool on);
  /// Something is attached to the port (whether or not it enumerates); powered-off ports read false.
  void set_attached(const std::string& port, bool attached) { attached_[port] = attached; }
  [[nodiscard]] bool is_on(const std::string& port) const;
  [[nodiscard]] unsigned cycles(const std::string& port) const;
  std::function<void(const std::string& port, bool on)> on_change;

 private:
  std::map<std::string, bool> on_;
  std::map<std::string, bool> attached_;
  std::map<std::string, unsigned> off_count_;
};

}  // namespace bodydock::hw

template <>
struct boost::system::is_error_code_enum<bodydock::hw::power_errc> : std::true_type {};
