#pragma once
/// Cameras on real USB: turns libusb hotplug into dock sessions. A device on a port path the
/// board lists, matching the camera VID/PIDs and offering the vendor interface, gets a session
/// on that slot; anything else is ignored with a log line. A removal fails the session's link
/// at once (the session resumes at the next docking).

#include "dock/dock.hpp"
#include "hw/port_power.hpp"
#include "usb/usb_context.hpp"
#include "usb/usb_link.hpp"

#include <functional>
#include <map>
#include <memory>
#include <string>

namespace bodydock::dock {

class UsbSlots {
 public:
  /// slot_of_port: board description, USB port path ("1-1.3") -> 1-based slot.
  UsbSlots(Dock& dock, usb::UsbContext& usb, std::map<std::string, unsigned> slot_of_port, usb::CameraMatch match,
           usb::UsbLinkOptions link_options);
  /// Starts listening; cameras already present are served too.
  void start();
  /// Drops every link (sessions end; state is durable).
  void close_all();
  /// Revives cameras that stop answering by switching their port off and on (bounded).
  void set_port_power(hw::PortPower* power, std::chrono::milliseconds off_time = std::chrono::milliseconds(1000), unsigned max_cycles = 3);
  /// Called whenever a session on a slot ends; `retrying` when a power cycle is under way and
  /// the camera is expected back.
  std::function<void(unsigned slot, SessionEnd, bool retrying)> on_session_end;
  [[nodiscard]] std::size_t active() const { return links_.size(); }

 private:
  void on_hotplug(usb::DeviceRef dev, bool arrived);
  boost::asio::awaitable<void> serve(unsigned slot, std::string port, std::unique_ptr<usb::UsbCameraLink> link);

  Dock& dock_;
  usb::UsbContext& usb_;
  std::map<std::string, unsigned> slot_of_port_;
  usb::CameraMatch match_;
  usb::UsbLinkOptions link_options_;
  bool power_cycle(unsigned slot, const std::string& port);

  std::map<std::string, usb::UsbCameraLink*> links_;  ///< port path -> link of the running session
  hw::PortPower* power_ = nullptr;
  std::chrono::milliseconds power_off_time_{1000};
  unsigned max_power_cycles_ = 3;
  std::map<std::string, unsigned> power_cycles_;      ///< consecutive cycles without a good session
};

}  // namespace bodydock::dock
