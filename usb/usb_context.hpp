#pragma once
/// libusb inside the Asio event loop (STYLE.md, "The libusb bridge"): libusb's pollfds are
/// watched with posix::stream_descriptor (read for POLLIN, write for POLLOUT), events are
/// handled with a zero timeout on readiness, and the watches follow libusb's pollfd
/// notifiers. No polling thread. Hotplug callbacks only take a device reference and post.

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/system/error_code.hpp>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>

struct libusb_context;
struct libusb_device;

namespace bodydock::usb {

/// A device reference that unrefs itself.
class DeviceRef {
 public:
  DeviceRef() = default;
  explicit DeviceRef(libusb_device* d);  // takes a new reference
  ~DeviceRef();
  DeviceRef(const DeviceRef& o);
  DeviceRef& operator=(const DeviceRef& o);
  [[nodiscard]] libusb_device* get() const { return dev_; }

 private:
  libusb_device* dev_ = nullptr;
};

/// "1-1.3": bus number, then the port chain. Empty if libusb cannot tell.
std::string port_path(libusb_device* dev);

/// Transfer callbacks call this, so the event loop knows libusb had work (it paces the timer
/// that services descriptors epoll cannot watch).
void note_transfer_completed() noexcept;

class UsbContext {
 public:
  enum class LogLevel { error, warning, info, debug };
  using LogFn = std::function<void(LogLevel, std::string_view)>;
  /// arrived = true on arrival (and for every device present at start), false on removal.
  using HotplugFn = std::function<void(DeviceRef, bool arrived)>;

  /// Throws std::runtime_error when libusb cannot start or cannot run inside an event loop.
  UsbContext(boost::asio::any_io_executor ex, LogFn log);
  ~UsbContext();
  UsbContext(const UsbContext&) = delete;
  UsbContext& operator=(const UsbContext&) = delete;

  [[nodiscard]] libusb_context* get() const { return ctx_; }
  /// Registers for arrivals and removals; devices already present are reported first.
  void start_hotplug(HotplugFn on_event);
  /// Handles whatever libusb has pending, now (used after cancelling transfers).
  void handle_events();
  /// For device nodes epoll cannot watch (emulation): `fd` (an eventfd, not owned) becomes
  /// readable whenever a transfer may have completed; events are then handled on readiness,
  /// and the timer that otherwise services such nodes only runs as a slow safety net.
  void add_readiness_source(int fd);

 private:
  struct Watch;
  static void pollfd_added(int fd, short events, void* self);
  static void pollfd_removed(int fd, void* self);
  void add_watch(int fd, short events);
  void remove_watch(int fd);
  void arm(const std::shared_ptr<Watch>& w, bool for_write);
  void arm_unpollable();

  boost::asio::any_io_executor ex_;
  LogFn log_;
  libusb_context* ctx_ = nullptr;
  std::map<int, std::shared_ptr<Watch>> watches_;
  /// One timer services every descriptor epoll cannot watch (regular files, as under
  /// umockdev): 250 µs after activity, backing off to 4 ms while idle.
  boost::asio::steady_timer unpollable_timer_;
  bool unpollable_armed_ = false;
  std::chrono::microseconds unpollable_interval_{250};
  std::unique_ptr<Watch> readiness_;
  void arm_readiness();
  HotplugFn on_hotplug_;
  int hotplug_handle_ = 0;
  bool hotplug_registered_ = false;
};

}  // namespace bodydock::usb
