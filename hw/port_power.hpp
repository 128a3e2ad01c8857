#pragma once
/// Per-slot port power: how a dock charges cameras and revives one that hangs. Backends:
///  - sysfs: /sys/bus/usb/devices/<hub>/<hub>:1.0/<hub>-port<N>/disable (Linux >= 6.0), which
///    switches the port off for the kernel and, on hubs that can, VBUS too;
///  - hub: USB hub class SET/CLEAR_FEATURE(PORT_POWER) on the hub's control endpoint, as uhubctl
///    does (hubs with per-port power switching);
///  - virtual: for the demo and tests, with a hook the emulated bus uses to pull and replug.
/// Errors are error codes: a hub that cannot switch a port is reported, not guessed around.

#include <boost/system/error_code.hpp>

#include <filesystem>
#include <functional>
#include <map>
#include <string>

namespace bodydock::hw {

class PortPower {
 public:
  virtual ~PortPower() = default;
  /// Switches the port with USB path `port` ("1-1.3") on or off.
  virtual boost::system::error_code set(const std::string& port, bool on) = 0;
  [[nodiscard]] virtual std::string describe() const = 0;
};

/// sysfs `disable` attribute of the port (kernel >= 6.0). `sys_root` is normally "/sys".
class SysfsPortPower final : public PortPower {
 public:
  explicit SysfsPortPower(std::filesystem::path sys_root = "/sys") : root_(std::move(sys_root)) {}
  boost::system::error_code set(const std::string& port, bool on) override;
  [[nodiscard]] std::string describe() const override { return "sysfs port disable"; }
  /// The attribute that switches `port`: "1-1.3" -> <root>/bus/usb/devices/1-1/1-1:1.0/1-1-port3/disable.
  [[nodiscard]] std::filesystem::path attribute(const std::string& port) const;

 private:
  std::filesystem::path root_;
};

/// Virtual ports: records the state and calls `on_change` (the emulated bus plugs and unplugs).
class VirtualPortPower final : public PortPower {
 public:
  boost::system::error_code set(const std::string& port, bool on) override;
  [[nodiscard]] std::string describe() const override { return "virtual"; }
  [[nodiscard]] bool is_on(const std::string& port) const;
  [[nodiscard]] unsigned cycles(const std::string& port) const;
  std::function<void(const std::string& port, bool on)> on_change;

 private:
  std::map<std::string, bool> on_;
  std::map<std::string, unsigned> off_count_;
};

}  // namespace bodydock::hw
