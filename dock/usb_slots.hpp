#pragma once
/// Cameras on real USB: turns libusb hotplug into dock sessions. A device on a port path the
/// board lists, matching the camera VID/PIDs and offering the vendor interface, gets a session
/// on that slot; anything else is ignored with a log line. A removal fails the session's link
/// at once (the session resumes at the next docking).

#include "dock/dock.hpp"
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
  /// Called whenever a session on a slot ends.
  std::function<void(unsigned slot, SessionEnd)> on_session_end;
  [[nodiscard]] std::size_t active() const { return links_.size(); }

 private:
  void on_hotplug(usb::DeviceRef dev, bool arrived);
  boost::asio::awaitable<void> serve(unsigned slot, std::string port, std::unique_ptr<usb::UsbCameraLink> link);

  Dock& dock_;
  usb::UsbContext& usb_;
  std::map<std::string, unsigned> slot_of_port_;
  usb::CameraMatch match_;
  usb::UsbLinkOptions link_options_;
  std::map<std::string, usb::UsbCameraLink*> links_;  ///< port path -> link of the running session
};

}  // namespace bodydock::dock
