// libFuzzer target over the dock's config files: dockd.toml (dock::parse_config, which reads the
// LED board of hw/leds too) and a board file alone (hw::parse_led_board). An admin's typo or a
// damaged file must be refused with a ConfigError naming where (source:line), never crash, hang
// or escape as another exception (which would take `dockd --check-config` down without a line
// to point at). A board file alone is refused with std::invalid_argument, as hw/leds.hpp says. Input: byte 0 picks the parser, the rest is the file.
#include "dock/config.hpp"
#include "hw/leds.hpp"

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string_view>

using namespace bodydock;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  try {
    if (data[0] % 2 == 0) {
      (void)dock::parse_config(text, "dockd.toml");
    } else {
      (void)hw::parse_led_board(text, "board.toml");
    }
  } catch (const dock::ConfigError& e) {
    if (std::string_view(e.what()).empty()) {
      std::fputs("config_fuzz: a refusal without a message\n", stderr);
      std::abort();
    }
  } catch (const std::invalid_argument& e) {  // parse_led_board's refusal, with source:line
    if (data[0] % 2 == 0) {
      std::fprintf(stderr, "config_fuzz: dockd.toml refused with something other than a ConfigError: %s\n", e.what());
      std::abort();
    }
    if (std::string_view(e.what()).empty()) {
      std::fputs("config_fuzz: a refusal without a message\n", stderr);
      std::abort();
    }
  }
  return 0;
}
