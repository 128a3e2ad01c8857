#include "dock/usb_slots.hpp"

#include "dock/log.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>

namespace bodydock::dock {

namespace asio = boost::asio;

UsbSlots::UsbSlots(Dock& dock, usb::UsbContext& usb, std::map<std::string, unsigned> slot_of_port, usb::CameraMatch match,
                   usb::UsbLinkOptions link_options)
    : dock_(dock), usb_(usb), slot_of_port_(std::move(slot_of_port)), match_(std::move(match)), link_options_(link_options) {}

void UsbSlots::start() {
  usb_.start_hotplug([this](usb::DeviceRef dev, bool arrived) { on_hotplug(std::move(dev), arrived); });
}

void UsbSlots::close_all() {
  for (auto& [port, link] : links_) link->close();
}

void UsbSlots::on_hotplug(usb::DeviceRef dev, bool arrived) {
  const auto port = usb::port_path(dev.get());
  const auto slot = slot_of_port_.find(port);
  if (!arrived) {
    if (auto it = links_.find(port); it != links_.end()) {
      log(Level::notice, "usb ", port, ": device removed");
      it->second->device_gone();
    }
    return;
  }
  if (slot == slot_of_port_.end()) {
    log(Level::debug, "usb ", port.empty() ? "(root hub)" : port, ": not a dock slot, ignored");
    return;
  }
  std::string why;
  auto iface = usb::match_camera(dev.get(), match_, why);
  if (!iface) {
    log(Level::warning, "slot ", slot->second, " usb ", port, ": device ignored: ", why);
    return;
  }
  if (links_.contains(port)) {
    // libusb reports a device both when enumerating at registration and when its arrival event
    // is processed; the session is already running.
    log(Level::debug, "slot ", slot->second, " usb ", port, ": already served");
    return;
  }
  auto link = usb::UsbCameraLink::open(dock_.executor(), dev.get(), *iface, link_options_, port);
  if (!link) {
    log(Level::error, "slot ", slot->second, " usb ", port, ": cannot open the camera: ", link.error().message());
    return;
  }
  links_[port] = link->get();
  asio::co_spawn(dock_.executor(), serve(slot->second, port, std::move(*link)), [](std::exception_ptr e) { log_if_failed("usb slot", e); });
}

void UsbSlots::set_port_power(hw::PortPower* power, std::chrono::milliseconds off_time, unsigned max_cycles) {
  power_ = power;
  power_off_time_ = off_time;
  max_power_cycles_ = max_cycles;
}

bool UsbSlots::power_cycle(unsigned slot, const std::string& port) {
  auto& cycles = power_cycles_[port];
  if (power_ == nullptr) return false;
  if (cycles >= max_power_cycles_) {
    log(Level::error, "slot ", slot, " usb ", port, ": camera still not answering after ", cycles, " power cycles; needs an admin");
    dock_.slot(slot).detail = cat("not answering after ", cycles, " power cycles");
    return false;
  }
  ++cycles;
  log(Level::warning, "slot ", slot, " usb ", port, ": camera not answering; power-cycling the port (", cycles, " of ", max_power_cycles_, ")");
  if (auto ec = power_->set(port, false)) {
    log(Level::error, "slot ", slot, " usb ", port, ": cannot switch port power (", power_->describe(), "): ", ec.message());
    return false;
  }
  auto timer = std::make_shared<asio::steady_timer>(dock_.executor(), power_off_time_);
  timer->async_wait([this, timer, port, slot](const boost::system::error_code& ec) {
    if (ec) return;
    if (auto err = power_->set(port, true)) log(Level::error, "slot ", slot, " usb ", port, ": cannot power the port on again: ", err.message());
  });
  return true;
}

asio::awaitable<void> UsbSlots::serve(unsigned slot, std::string port, std::unique_ptr<usb::UsbCameraLink> link) {
  const auto end = co_await dock_.run_session(slot, *link);
  co_await link->shutdown();
  links_.erase(port);
  link.reset();
  bool retrying = false;
  if (end == SessionEnd::unresponsive) retrying = power_cycle(slot, port);
  else if (end == SessionEnd::done) power_cycles_.erase(port);
  if (on_session_end) on_session_end(slot, end, retrying);
}

}  // namespace bodydock::dock
