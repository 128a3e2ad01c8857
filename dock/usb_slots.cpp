#include "dock/usb_slots.hpp"

#include "dock/log.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>

namespace bodydock::dock {

namespace asio = boost::asio;

UsbSlots::UsbSlots(Dock& dock, usb::UsbContext& usb, std::map<std::string, unsigned> slot_of_port, usb::CameraMatch match,
                   usb::UsbLinkOptions link_options)
    : dock_(dock), usb_(usb), slot_of_port_(std::move(slot_of_port)), match_(std::move(match)), link_options_(link_options) {}

void UsbSlots::start() {
  usb_.start_hotplug([this](const usb::DeviceRef& dev, bool arrived) { on_hotplug(dev, arrived); });
  if (power_) asio::co_spawn(dock_.executor(), watch_ports(alive_), [](const std::exception_ptr& e) { log_if_failed("port watch", e); });
}

UsbSlots::~UsbSlots() {
  *alive_ = false;
  // A session waiting to start again wakes, sees it is gone, and ends without touching us.
  for (auto* wait : fault_waits_) {
    try {
      wait->cancel();
    } catch (const std::exception& e) {  // a destructor must not throw; the wait then ends on its own
      log(Level::warning, "usb: cannot cut a wait short: ", e.what());
    }
  }
}

void UsbSlots::close_all() {
  closing_ = true;  // no more power cycles
  for (auto& [port, link] : links_) link->close();
  for (auto* wait : fault_waits_) wait->cancel();
}

void UsbSlots::on_hotplug(const usb::DeviceRef& dev, bool arrived) {
  const auto port = usb::port_path(dev.get());
  const auto slot = slot_of_port_.find(port);
  if (arrived) {
    present_.insert(port);
    given_up_.erase(port);
  } else {
    present_.erase(port);
  }
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
  asio::co_spawn(dock_.executor(), serve(slot->second, port, dev, *iface, std::move(*link)),
                 [](const std::exception_ptr& e) { log_if_failed("usb slot", e); });
}

void UsbSlots::set_port_power(hw::PortPower* power, PowerPolicy policy) {
  power_ = power;
  policy_ = policy;
}

asio::awaitable<bool> UsbSlots::power_cycle(unsigned slot, std::string port, std::string why) {
  auto& cycles = power_cycles_[port];
  if (power_ == nullptr || closing_) co_return false;
  auto& status = dock_.slot(slot);
  if (cycles >= policy_.max_cycles) {
    log(Level::error, "slot ", slot, " usb ", port, ": ", why, " after ", cycles, " power cycles; needs an admin");
    status.phase = SlotPhase::attention;
    status.detail = cat("fault: ", why, " after ", cycles, " power cycles");
    given_up_.insert(port);
    co_return false;
  }
  ++cycles;
  log(Level::warning, "slot ", slot, " usb ", port, ": ", why, "; power-cycling the port (", cycles, " of ", policy_.max_cycles, ", ",
      power_->describe(), ")");
  status.detail = cat(why, ": power-cycling (", cycles, " of ", policy_.max_cycles, ")");
  cycling_.insert(port);
  const auto alive = alive_;  // the port must come back on even while closing, but not after we are gone
  auto ec = co_await power_->switch_port(port, false);
  if (!ec) {
    asio::steady_timer off(dock_.executor(), policy_.off_time);
    co_await off.async_wait(asio::use_awaitable);
    ec = co_await power_->switch_port(port, true);
  }
  if (!*alive) co_return false;  // destroyed meanwhile
  cycling_.erase(port);
  if (ec) {
    log(Level::error, "slot ", slot, " usb ", port, ": cannot switch port power (", power_->describe(), "): ", ec.message());
    status.phase = SlotPhase::attention;
    status.detail = cat("fault: port power: ", ec.message());
    co_return false;
  }
  co_return true;
}

std::optional<std::string> UsbSlots::request_power_cycle(unsigned slot) {
  if (power_ == nullptr) return "this dock has no port power control";
  if (closing_) return "the dock is stopping";
  for (const auto& [port, s] : slot_of_port_) {
    if (s != slot) continue;
    if (cycling_.contains(port)) return "slot " + std::to_string(slot) + " is being power-cycled already";
    power_cycles_[port] = 0;
    given_up_.erase(port);
    asio::co_spawn(dock_.executor(), power_cycle(slot, port, "power cycle asked by an admin"),
                   [](const std::exception_ptr& e, bool) { log_if_failed("power cycle", e); });
    return std::nullopt;
  }
  return "slot " + std::to_string(slot) + " has no USB port on this board";
}

asio::awaitable<void> UsbSlots::watch_ports(std::shared_ptr<bool> alive) {
  // Policy: every slot is powered when the dock starts (cameras charge even before they sync).
  for (const auto& [port, slot] : slot_of_port_) {
    const auto ec = co_await power_->switch_port(port, true);
    if (!*alive || closing_) co_return;  // gone (touch nothing) or closing
    if (ec) {
      log(Level::error, "slot ", slot, " usb ", port, ": cannot power the port (", power_->describe(), "): ", ec.message());
      dock_.slot(slot).phase = SlotPhase::attention;
      dock_.slot(slot).detail = cat("fault: port power: ", ec.message());
    }
  }
  // Something attached that does not show up on the bus for a whole timeout is cycled.
  const auto tick = std::clamp(policy_.enumerate_timeout / 4, std::chrono::milliseconds(20), std::chrono::milliseconds(2000));
  std::map<std::string, std::chrono::steady_clock::time_point> missing_since;
  asio::steady_timer timer(dock_.executor());
  while (*alive && !closing_) {
    timer.expires_after(tick);
    co_await timer.async_wait(asio::use_awaitable);
    if (!*alive || closing_) co_return;
    for (const auto& [port, slot] : slot_of_port_) {
      if (present_.contains(port) || cycling_.contains(port) || given_up_.contains(port)) {
        missing_since.erase(port);
        continue;
      }
      const auto attached = co_await power_->attached(port);
      if (!*alive || closing_) co_return;
      if (!attached.value_or(false) || present_.contains(port)) {
        missing_since.erase(port);
        continue;
      }
      const auto now = std::chrono::steady_clock::now();
      const auto since = missing_since.try_emplace(port, now).first->second;
      if (now - since < policy_.enumerate_timeout) continue;
      missing_since.erase(port);
      co_await power_cycle(slot, port, "attached device does not enumerate");
      if (!*alive || closing_) co_return;
    }
  }
}

asio::awaitable<std::unique_ptr<usb::UsbCameraLink>> UsbSlots::reopen_after_fault(unsigned slot, const std::string& port, const usb::DeviceRef& dev,
                                                                                 const usb::CameraInterface& iface, std::chrono::milliseconds wait) {
  if (closing_ || !present_.contains(port)) co_return nullptr;
  log(Level::notice, "slot ", slot, " usb ", port, ": the session starts again in ", std::chrono::duration<double>(wait).count(), " s (dock fault)");
  dock_.slot(slot).detail += cat("; trying again in ", (wait.count() + 999) / 1000, " s");
  const auto alive = alive_;
  asio::steady_timer timer(dock_.executor(), wait);
  fault_waits_.insert(&timer);
  const auto [ec] = co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
  if (!*alive) co_return nullptr;  // destroyed meanwhile: touch nothing
  fault_waits_.erase(&timer);
  // Undocked, closing, or docked again (a new arrival has a session of its own) meanwhile.
  if (ec || closing_ || !present_.contains(port) || links_.contains(port)) co_return nullptr;
  auto link = usb::UsbCameraLink::open(dock_.executor(), dev.get(), iface, link_options_, port);
  if (!link) {
    log(Level::error, "slot ", slot, " usb ", port, ": cannot open the camera again: ", link.error().message());
    co_return nullptr;
  }
  links_[port] = link->get();
  co_return std::move(*link);
}

asio::awaitable<void> UsbSlots::serve(unsigned slot, std::string port, usb::DeviceRef dev, usb::CameraInterface iface,
                                      std::unique_ptr<usb::UsbCameraLink> link) {
  // A synced camera stays in the session, watched for battery and temperature, until undocked.
  bool reported = false;
  auto synced = [this, slot, port, &reported](SessionEnd end) {
    reported = true;
    if (end == SessionEnd::done) power_cycles_.erase(port);
    if (on_session_end) on_session_end(slot, end, false);
  };
  SessionEnd end = SessionEnd::failed;
  for (auto wait = fault_retry_.first;; wait = std::min(wait * 2, fault_retry_.most)) {
    end = co_await dock_.run_session(slot, *link, synced);
    co_await link->shutdown();
    links_.erase(port);
    link.reset();
    if (end != SessionEnd::dock_fault || reported) break;
    const auto alive = alive_;
    link = co_await reopen_after_fault(slot, port, dev, iface, wait);
    if (!*alive) co_return;  // destroyed meanwhile: touch nothing
    if (!link) break;
    if (on_session_end) on_session_end(slot, end, true);  // the session starts again
  }
  bool retrying = cycling_.contains(port);  // an admin's power cycle: the camera comes back
  if (end == SessionEnd::dock_fault && !closing_) {
    if (links_.contains(port)) retrying = true;                       // docked again meanwhile: that session goes on
    else if (!present_.contains(port)) end = SessionEnd::unplugged;  // taken out while the dock waited
  }
  if (end == SessionEnd::unresponsive) {
    retrying = co_await power_cycle(slot, port, "camera not answering");
  } else if (end == SessionEnd::overheated && power_) {
    // Safety before footage: the footage stays on the camera; the port stays dark until an
    // admin acts (or the dock restarts).
    log(Level::error, "slot ", slot, " usb ", port, ": switching the port off: the camera overheats and keeps charging");
    if (auto ec = co_await power_->switch_port(port, false))
      log(Level::error, "slot ", slot, " usb ", port, ": cannot switch the port off (", power_->describe(), "): ", ec.message());
    else
      given_up_.insert(port);
  }
  if (!reported && on_session_end) on_session_end(slot, end, retrying);
}

}  // namespace bodydock::dock
