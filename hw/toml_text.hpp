#pragma once
/// Reads the dock's TOML files (dockd.toml, board files) with toml++, after refusing the control
/// characters TOML forbids anywhere in a document (U+0000..U+001F but tab, LF and CR, and
/// U+007F). Such a byte in a config file is damage, not configuration: the refusal says so and
/// where, instead of whatever the parser makes of it. Either way the error carries line and column.

#include <toml++/toml.h>

#include <cstdint>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <string_view>

namespace bodydock::hw {

/// Why a text is not TOML, and where (1-based).
struct TomlError : std::invalid_argument {
  TomlError(std::uint32_t at_line, std::uint32_t at_column, const std::string& why) : std::invalid_argument(why), line(at_line), column(at_column) {}
  std::uint32_t line;
  std::uint32_t column;
};

inline toml::table parse_toml(std::string_view text, std::string_view source) {
  std::uint32_t line = 1, column = 1;
  for (const char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if ((c < 0x20 && c != '\t' && c != '\n' && c != '\r') || c == 0x7F) {
      char hex[8];
      std::snprintf(hex, sizeof hex, "0x%02X", c);
      throw TomlError(line, column, std::string("control character ") + hex + " (TOML allows none but tab and line ends: a damaged file?)");
    }
    if (c == '\n') {
      ++line;
      column = 1;
    } else {
      ++column;
    }
  }
  try {
    return toml::parse(text, source);
  } catch (const toml::parse_error& e) {
    throw TomlError(e.source().begin.line, e.source().begin.column, std::string(e.description()));
  }
}

}  // namespace bodydock::hw
