#pragma once
/// The slot LEDs follow what each slot shows (slot_light: the same state the web page and
/// `dockctl status` show), through the board's LED backend (hw/leds.hpp). Failed LED writes
/// are logged once per distinct error and retried after 50 ms, 100 ms, 200 ms ... at most
/// 10 s apart (hw::led_retry_delay), and never touch a session.

#include "dock/dock.hpp"
#include "hw/leds.hpp"

#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <memory>
#include <set>
#include <string>

namespace bodydock::dock {

class SlotLights {
 public:
  /// `backend` null: virtual LEDs (the demo, a board without lights).
  SlotLights(Dock& dock, std::unique_ptr<hw::LedBackend> backend);
  /// Follows the slots every `interval` until stop(), waking sooner for a due LED retry.
  boost::asio::awaitable<void> run(std::chrono::milliseconds interval = std::chrono::milliseconds(100));
  void stop() { stopping_ = true; }
  /// Every slot dark: on the way out, so a stopped dock never shows a "safe to take" or
  /// "syncing" it no longer means.
  void dark();
  [[nodiscard]] const hw::LedBackend& backend() const { return *backend_; }
  [[nodiscard]] hw::SlotLight light(unsigned slot) const { return leds_.light(slot); }

 private:
  Dock& dock_;
  std::unique_ptr<hw::LedBackend> backend_;
  hw::SlotLeds leds_;
  bool stopping_ = false;
};

/// An error sink for an LED backend: logs each distinct message once (a missing LED fails
/// on every retry; the admin needs the line once, not every few seconds).
hw::LedErrorSink log_led_errors();

/// Reads a board file's [leds] table and builds its backend; throws std::runtime_error naming
/// the file (and std::invalid_argument from the parser naming key and line).
std::unique_ptr<hw::LedBackend> load_led_board(const std::filesystem::path& file, boost::asio::any_io_executor ex, hw::LedErrorSink on_error);

}  // namespace bodydock::dock
