#include "dock/lights.hpp"

#include "dock/log.hpp"

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <fstream>
#include <sstream>

namespace bodydock::dock {

namespace asio = boost::asio;

hw::LedErrorSink log_led_errors() {
  return [reported = std::make_shared<std::set<std::string>>()](const std::string& message) {
    if (reported->size() < 256 && reported->insert(message).second) log(Level::warning, "slot lights: ", message);
  };
}

SlotLights::SlotLights(Dock& dock, std::unique_ptr<hw::LedBackend> backend)
    : dock_(dock), backend_(backend ? std::move(backend) : std::make_unique<hw::VirtualLeds>()), leds_(*backend_, dock.config().slots) {}

asio::awaitable<void> SlotLights::run(std::chrono::milliseconds interval) {
  asio::steady_timer timer(dock_.executor());
  while (!stopping_) {
    for (const auto& s : dock_.slots()) leds_.set(s.index, slot_light(s));
    leds_.retry_due();
    // A failed write is usually a race with udev that clears in milliseconds: wake for its
    // retry rather than only at the next look at the slots.
    auto wake = std::chrono::steady_clock::now() + interval;
    if (const auto retry = leds_.next_retry(); retry && *retry < wake) wake = *retry;
    timer.expires_at(wake);
    co_await timer.async_wait(asio::use_awaitable);
  }
}

void SlotLights::dark() {
  for (unsigned slot = 1; slot <= leds_.slots(); ++slot) leds_.set(slot, hw::SlotLight::empty);
}

std::unique_ptr<hw::LedBackend> load_led_board(const std::filesystem::path& file, asio::any_io_executor ex, hw::LedErrorSink on_error) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read the board file " + file.string());
  std::ostringstream text;
  text << in.rdbuf();
  const auto board = hw::parse_led_board(text.str(), file.string());
  for (const auto& w : board.warnings) log(Level::warning, "board: ", w);
  log(Level::notice, "slot lights: ", hw::backend_name(board.backend), " (", file.string(), ")");
  return hw::make_led_backend(board, std::move(ex), std::move(on_error));
}

}  // namespace bodydock::dock
