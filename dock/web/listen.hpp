#pragma once
/// The address the web page listens on, as dockd.toml and `dockd demo --web` give it.

#include <cstdint>
#include <string>
#include <utility>

namespace bodydock::dock::web {

/// Parses "ADDR:PORT" ("127.0.0.1:8080", "[::1]:8080", "0.0.0.0:443"); throws
/// std::invalid_argument naming what is wrong.
std::pair<std::string, std::uint16_t> parse_listen(const std::string& text);

}  // namespace bodydock::dock::web
