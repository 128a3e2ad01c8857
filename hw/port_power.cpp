#include "hw/port_power.hpp"

#include "usb/usb_context.hpp"
#include "usb/usb_control.hpp"
#include "usb/usb_error.hpp"

#include <libusb.h>

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <fstream>
#include <memory>

namespace bodydock::hw {

namespace asio = boost::asio;
using boost::system::error_code;

namespace {

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnon-virtual-dtor"
class PowerCategory final : public boost::system::error_category {
 public:
  const char* name() const noexcept override { return "port-power"; }
  std::string message(int ev) const override {
    switch (static_cast<power_errc>(ev)) {
      case power_errc::bad_port_path: return "not a USB port path (expected e.g. 1-1.3)";
      case power_errc::no_hub: return "no hub at that port path";
      case power_errc::not_switchable: return "the hub cannot switch power per port (ganged or no power switching)";
      case power_errc::no_such_port: return "the hub has no such port";
    }
    return "port power error " + std::to_string(ev);
  }
};
#pragma GCC diagnostic pop

bool parse_uint(std::string_view s, unsigned& out) {
  if (s.empty()) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc{} && p == s.data() + s.size() && out > 0;
}

}  // namespace

const boost::system::error_category& power_category() noexcept {
  static const PowerCategory category;
  return category;
}

boost::system::result<PortAddress> parse_port_path(const std::string& port) {
  const auto dash = port.find('-');
  if (dash == std::string::npos) return power_errc::bad_port_path;
  PortAddress a;
  if (!parse_uint(std::string_view(port).substr(0, dash), a.bus)) return power_errc::bad_port_path;
  const auto chain = std::string_view(port).substr(dash + 1);
  for (std::size_t start = 0;;) {  // every hop is a port number
    const auto dot = chain.find('.', start);
    unsigned hop = 0;
    if (!parse_uint(chain.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start), hop) || hop > 255)
      return power_errc::bad_port_path;
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  const auto cut = port.rfind('.');
  a.hub = cut == std::string::npos ? std::string() : port.substr(0, cut);
  parse_uint(std::string_view(port).substr((cut == std::string::npos ? dash : cut) + 1), a.number);
  return a;
}

// --- sysfs ----------------------------------------------------------------------------------

std::filesystem::path SysfsPortPower::port_dir(const std::string& port) const {
  auto a = parse_port_path(port);
  if (!a) return {};
  const auto bus = std::to_string(a->bus);
  // The hub's first interface holds its port directories; a root hub is "usbN" with interface "N-0:1.0".
  const std::string iface = a->hub.empty() ? bus + "-0:1.0" : a->hub + ":1.0";
  const std::string prefix = a->hub.empty() ? "usb" + bus : a->hub;
  return root_ / "bus/usb/devices" / iface / (prefix + "-port" + std::to_string(a->number));
}

error_code SysfsPortPower::set(const std::string& port, bool on) {
  const auto dir = port_dir(port);
  if (dir.empty()) return power_errc::bad_port_path;
  const auto attr = dir / "disable";
  const int fd = ::open(attr.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return {errno, boost::system::generic_category()};
  const char value = on ? '0' : '1';
  const bool ok = ::write(fd, &value, 1) == 1;
  const int err = errno;
  ::close(fd);
  if (!ok) return {err, boost::system::generic_category()};
  return {};
}

std::optional<bool> SysfsPortPower::is_attached(const std::string& port) const {
  const auto dir = port_dir(port);
  if (dir.empty()) return std::nullopt;
  std::ifstream in(dir / "state");
  std::string state;
  if (!(in >> state)) return std::nullopt;  // kernel without the attribute: cannot tell
  return state != "not-attached";
}

// --- hub class requests -------------------------------------------------------------------

namespace {

constexpr std::uint8_t kToPort = 0x23;        // class request, recipient "other" (a port), host to device
constexpr std::uint8_t kFromPort = 0xA3;      // the same, device to host
constexpr std::uint8_t kFromHub = 0xA0;       // class request, recipient device, device to host
constexpr std::uint8_t kGetStatus = 0x00;
constexpr std::uint8_t kClearFeature = 0x01;
constexpr std::uint8_t kSetFeature = 0x03;
constexpr std::uint8_t kGetDescriptor = 0x06;
constexpr std::uint16_t kPortPower = 8;       // feature selector
constexpr std::uint16_t kConnection = 0x0001, kEnable = 0x0002, kPowerUsb2 = 0x0100, kPowerUsb3 = 0x0200;

struct HandleCloser {
  void operator()(libusb_device_handle* h) const { libusb_close(h); }
};
using Handle = std::unique_ptr<libusb_device_handle, HandleCloser>;

struct OpenHub {
  Handle handle;
  bool superspeed = false;
};

/// Finds and opens the hub `a` hangs off.
boost::system::result<OpenHub> open_hub(libusb_context* ctx, const PortAddress& a) {
  libusb_device** list = nullptr;
  const auto n = libusb_get_device_list(ctx, &list);
  if (n < 0) return usb::libusb_error_code(static_cast<int>(n));
  libusb_device* found = nullptr;
  for (ssize_t i = 0; i < n && !found; ++i) {
    libusb_device* d = list[i];
    if (libusb_get_bus_number(d) != a.bus) continue;
    const bool match = a.hub.empty() ? libusb_get_parent(d) == nullptr : usb::port_path(d) == a.hub;
    if (match) found = d;
  }
  OpenHub hub;
  error_code ec = power_errc::no_hub;
  if (found) {
    libusb_device_descriptor dd{};
    libusb_device_handle* h = nullptr;
    if (libusb_get_device_descriptor(found, &dd) != 0 || dd.bDeviceClass != LIBUSB_CLASS_HUB) ec = power_errc::no_hub;
    else if (int rc = libusb_open(found, &h); rc != 0) ec = usb::libusb_error_code(rc);
    else {
      hub.handle.reset(h);
      hub.superspeed = dd.bcdUSB >= 0x0300;
      ec = {};
    }
  }
  libusb_free_device_list(list, 1);
  if (ec) return ec;
  return hub;
}

asio::awaitable<boost::system::result<OpenHub>> open_switchable_hub(libusb_context* ctx, const std::string& port,
                                                                    std::chrono::milliseconds timeout) {
  auto a = parse_port_path(port);
  if (!a) co_return a.error();
  auto hub = open_hub(ctx, *a);
  if (!hub) co_return hub.error();
  usb::ControlRequest get_desc;
  get_desc.request_type = kFromHub;
  get_desc.request = kGetDescriptor;
  get_desc.value = static_cast<std::uint16_t>((hub->superspeed ? 0x2A : 0x29) << 8);
  get_desc.length = 16;
  auto desc = co_await usb::control_transfer(hub->handle.get(), get_desc, timeout);
  if (!desc) co_return desc.error();
  if (desc->size() < 5) co_return power_errc::no_hub;
  const unsigned ports = (*desc)[2];
  const unsigned switching = (*desc)[3] & 0x3;  // wHubCharacteristics bits 1:0; 01 = per port
  if (switching != 1) co_return power_errc::not_switchable;
  if (a->number > ports) co_return power_errc::no_such_port;
  co_return std::move(*hub);
}

}  // namespace

asio::awaitable<error_code> HubPortPower::switch_port(std::string port, bool on) {
  auto hub = co_await open_switchable_hub(ctx_, port, timeout_);
  if (!hub) co_return hub.error();
  usb::ControlRequest req;
  req.request_type = kToPort;
  req.request = on ? kSetFeature : kClearFeature;
  req.value = kPortPower;
  req.index = static_cast<std::uint16_t>(parse_port_path(port)->number);
  auto r = co_await usb::control_transfer(hub->handle.get(), req, timeout_);
  co_return r ? error_code{} : r.error();
}

asio::awaitable<boost::system::result<HubPortPower::PortStatus>> HubPortPower::status(std::string port) {
  auto hub = co_await open_switchable_hub(ctx_, port, timeout_);
  if (!hub) co_return hub.error();
  usb::ControlRequest req;
  req.request_type = kFromPort;
  req.request = kGetStatus;
  req.index = static_cast<std::uint16_t>(parse_port_path(port)->number);
  req.length = 4;
  auto r = co_await usb::control_transfer(hub->handle.get(), req, timeout_);
  if (!r) co_return r.error();
  if (r->size() < 2) co_return usb::libusb_error_code(LIBUSB_ERROR_IO);
  const unsigned bits = (*r)[0] | ((*r)[1] << 8);
  PortStatus s;
  s.connected = (bits & kConnection) != 0;
  s.enabled = (bits & kEnable) != 0;
  s.powered = (bits & (hub->superspeed ? kPowerUsb3 : kPowerUsb2)) != 0;
  co_return s;
}

asio::awaitable<std::optional<bool>> HubPortPower::attached(std::string port) {
  auto s = co_await status(std::move(port));
  if (!s) co_return std::nullopt;
  co_return s->connected;
}

// --- virtual --------------------------------------------------------------------------------

error_code VirtualPortPower::set(const std::string& port, bool on) {
  const auto it = on_.find(port);
  const bool was_on = it == on_.end() || it->second;  // ports start powered
  on_[port] = on;
  if (was_on && !on) ++off_count_[port];
  if (was_on != on && on_change) on_change(port, on);
  return {};
}

asio::awaitable<std::optional<bool>> VirtualPortPower::attached(std::string port) {
  const auto it = attached_.find(port);
  co_return is_on(port) && it != attached_.end() && it->second;
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
