#include "hw/port_power.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

namespace bodydock::hw {

std::filesystem::path SysfsPortPower::attribute(const std::string& port) const {
  // The port number is after the last '.', or after the '-' for a root hub port ("1-3").
  const auto cut = port.find_last_of(".-");
  if (cut == std::string::npos || cut + 1 >= port.size()) return {};
  const auto hub = port.substr(0, cut);
  const auto number = port.substr(cut + 1);
  const std::string hub_dev = port[cut] == '-' ? "usb" + hub : hub;
  return root_ / "bus/usb/devices" / hub_dev / (hub_dev + ":1.0") / (hub_dev + "-port" + number) / "disable";
}

boost::system::error_code SysfsPortPower::set(const std::string& port, bool on) {
  const auto attr = attribute(port);
  if (attr.empty()) return {EINVAL, boost::system::generic_category()};
  const int fd = ::open(attr.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return {errno, boost::system::generic_category()};
  const char value = on ? '0' : '1';
  const bool ok = ::write(fd, &value, 1) == 1;
  const int err = errno;
  ::close(fd);
  if (!ok) return {err, boost::system::generic_category()};
  return {};
}

boost::system::error_code VirtualPortPower::set(const std::string& port, bool on) {
  const auto it = on_.find(port);
  const bool was_on = it == on_.end() || it->second;  // ports start powered
  on_[port] = on;
  if (was_on && !on) ++off_count_[port];
  if (was_on != on && on_change) on_change(port, on);
  return {};
}

bool VirtualPortPower::is_on(const std::string& port) const {
  const auto it = on_.find(port);
  return it == on_.end() || it->second;
}

unsigned VirtualPortPower::cycles(const std::string& port) const {
  const auto it = off_count_.find(port);
  return it == off_count_.end() ? 0 : it->second;
}

}  // namespace bodydock::hw
