#pragma once
/// Emulated cameras on an emulated USB bus, served to the unmodified libusb code path through
/// umockdev: the usbfs ioctls libusb issues (SUBMITURB, REAPURBNDELAY, DISCARDURB, ...) are
/// answered by a handler on umockdev's worker thread that feeds OUT transfers to a
/// CameraDevice and completes IN transfers from what the device queued.
///
/// The process must run with libumockdev-preload (linked with --no-as-needed, or LD_PRELOAD),
/// and the bus must exist before libusb_init: it sets UMOCKDEV_DIR for the process.
/// Port paths are 1-1.N (a root hub usb1 and a hub 1-1 are created so libusb sees the chain).

#include "hw/camera_device.hpp"

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace bodydock::hw {

/// The emulated bus replaces sysfs and /dev for libusb, so libumockdev-preload must be in the
/// process from its very start. Returns true when it is; otherwise runs /proc/self/exe again
/// with `argv` (argv[0] first) and the preload added to LD_PRELOAD, and returns false only when
/// that failed (errno tells why). Call it first thing, before any thread: it sets the
/// environment.
bool ensure_umockdev_preload(const std::vector<std::string>& argv);

struct UsbIdentity {
  std::uint16_t vid = 0x1d50;  ///< bodydock emulator VID/PID (openmoko's open-hardware range)
  std::uint16_t pid = 0x6160;
  std::uint8_t interface_class = 0xFF;
};

class UmockdevBus {
 public:
  UmockdevBus();
  ~UmockdevBus();
  UmockdevBus(const UmockdevBus&) = delete;
  UmockdevBus& operator=(const UmockdevBus&) = delete;

  /// Plugs `device` into hub port `port` (1..15): appears as 1-1.<port>. The device is used
  /// from umockdev's worker thread until unplugged; do not touch it meanwhile.
  void plug(unsigned port, CameraDevice& device, UsbIdentity id = {});
  /// Pulls it out: transfers in flight fail with NO_DEVICE, then a removal uevent.
  void unplug(unsigned port);
  /// The cable is pulled after the device has sent `bytes` on IN: transfers in flight fail
  /// with NO_DEVICE from that instant (call unplug() afterwards for the removal uevent).
  void unplug_after(unsigned port, std::uint64_t bytes);
  /// Makes the device stop answering (IN transfers never complete) or answer again.
  void set_hang(unsigned port, bool hang);
  /// The device goes silent after it has sent `bytes` on IN (until it is power-cycled).
  void hang_after(unsigned port, std::uint64_t bytes);
  /// Stalls the next IN transfer on that port once.
  void stall_next_in(unsigned port);
  /// Bytes the device has put on its IN endpoint so far.
  [[nodiscard]] std::uint64_t bytes_in(unsigned port);

  /// The hub 1-1 switches power per port like a real hub (hub class SET/CLEAR_FEATURE
  /// PORT_POWER, GET_STATUS, hub descriptor). `hook` runs on umockdev's worker thread when a
  /// port is switched: hand it to your own thread, which then unplugs or plugs the device.
  void on_port_power(std::function<void(unsigned port, bool on)> hook);
  [[nodiscard]] bool port_powered(unsigned port);
  /// Something is attached to `port` that never enumerates (a camera whose USB side is wedged):
  /// the hub reports a connection, the bus shows nothing. plug() replaces it.
  void attach_unenumerated(unsigned port);

  /// Emulated device nodes are regular files, which epoll cannot watch. This eventfd becomes
  /// readable whenever a URB may be reaped (as a real usbfs fd becomes writable), so the host
  /// can handle libusb events on readiness instead of on a timer: UsbContext::add_readiness_source.
  [[nodiscard]] int readiness_fd() const;
  /// URB buffers are written in place when libusb runs in this process (it does in the test
  /// binaries and the demo); this makes devices plugged afterwards copy them through umockdev's
  /// socket instead, as they must for a client in another process.
  void copy_through_socket() { copy_through_socket_ = true; }

  struct Port;  // handler state, shared with the umockdev worker thread

 private:
  struct Impl;
  void hub_port(unsigned port, bool connected, bool enumerated);
  std::unique_ptr<Impl> impl_;
  bool copy_through_socket_ = false;
};

}  // namespace bodydock::hw
