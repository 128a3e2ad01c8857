#pragma once
/// Cameras on real USB: turns libusb hotplug into dock sessions. A device on a port path the
/// board lists, matching the camera VID/PIDs and offering the vendor interface, gets a session
/// on that slot; anything else is ignored with a log line. A removal fails the session's link
/// at once (the session resumes at the next docking).

#include "dock/dock.hpp"
#include "hw/port_power.hpp"
#include "usb/usb_context.hpp"
#include "usb/usb_link.hpp"

#include <boost/asio/steady_timer.hpp>

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>

namespace bodydock::dock {

class UsbSlots {
 public:
  /// slot_of_port: board description, USB port path ("1-1.3") -> 1-based slot.
  UsbSlots(Dock& dock, usb::UsbContext& usb, std::map<std::string, unsigned> slot_of_port, usb::CameraMatch match,
           usb::UsbLinkOptions link_options);
  ~UsbSlots();
  UsbSlots(const UsbSlots&) = delete;
  UsbSlots& operator=(const UsbSlots&) = delete;
  /// Starts listening; cameras already present are served too.
  void start();
  /// Drops every link (sessions end; state is durable).
  void close_all();
  struct PowerPolicy {
    std::chrono::milliseconds off_time{1000};            ///< how long a cycled port stays off
    unsigned max_cycles = 3;                             ///< in a row without a good session; then the slot shows a fault
    std::chrono::milliseconds enumerate_timeout{10000};  ///< attached but not on the bus this long: cycle it
  };
  /// A session that ends on a fault of the dock's own (a full disk, the database) starts again
  /// on the same camera after `first`, then after twice as long each time up to `most`, for as
  /// long as the camera stays docked: a fault that clears needs no officer and no admin.
  struct FaultRetry {
    std::chrono::milliseconds first{5000};
    std::chrono::milliseconds most{300000};
  };
  void set_fault_retry(FaultRetry retry) { fault_retry_ = retry; }
  /// Powers every slot when started and revives cameras that stop answering, or that are
  /// attached but never enumerate, by switching their port off and on (bounded).
  void set_port_power(hw::PortPower* power, PowerPolicy policy);
  /// An admin's power cycle of a slot's port (the web page): the camera is switched off and on
  /// and its session resumes at the new docking. Resets the slot's count of automatic cycles.
  /// nullopt when started, else why not.
  std::optional<std::string> request_power_cycle(unsigned slot);
  /// Called whenever a session on a slot ends; `retrying` when a power cycle is under way and
  /// the camera is expected back, or the session starts again after a dock fault.
  std::function<void(unsigned slot, SessionEnd, bool retrying)> on_session_end;
  [[nodiscard]] std::size_t active() const { return links_.size(); }

 private:
  void on_hotplug(const usb::DeviceRef& dev, bool arrived);
  boost::asio::awaitable<void> serve(unsigned slot, std::string port, usb::DeviceRef dev, usb::CameraInterface iface,
                                     std::unique_ptr<usb::UsbCameraLink> link);
  /// After a dock fault: waits, then opens the same camera again if it is still docked and no
  /// other session has it; null when not.
  boost::asio::awaitable<std::unique_ptr<usb::UsbCameraLink>> reopen_after_fault(unsigned slot, const std::string& port, const usb::DeviceRef& dev,
                                                                                 const usb::CameraInterface& iface, std::chrono::milliseconds wait);
  /// Powers every slot, then power-cycles ports where something is attached that does not enumerate.
  boost::asio::awaitable<void> watch_ports(std::shared_ptr<bool> alive);
  boost::asio::awaitable<bool> power_cycle(unsigned slot, std::string port, std::string why);

  Dock& dock_;
  usb::UsbContext& usb_;
  std::map<std::string, unsigned> slot_of_port_;
  usb::CameraMatch match_;
  usb::UsbLinkOptions link_options_;

  std::map<std::string, usb::UsbCameraLink*> links_;  ///< port path -> link of the running session
  std::set<std::string> present_;                     ///< ports with a device on the bus, camera or not
  hw::PortPower* power_ = nullptr;
  PowerPolicy policy_;
  std::map<std::string, unsigned> power_cycles_;      ///< consecutive cycles without a good session
  std::set<std::string> cycling_;                     ///< ports switched off right now
  std::set<std::string> given_up_;                    ///< out of power cycles: a fault until a device shows up
  FaultRetry fault_retry_;
  std::set<boost::asio::steady_timer*> fault_waits_;  ///< sessions waiting to start again; close_all() cuts them short
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);  ///< false once destroyed: for coroutines that may outlive us
  bool closing_ = false;                                          ///< close_all(): no more power cycles
};

}  // namespace bodydock::dock
