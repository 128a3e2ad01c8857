#include "dock/web/listen.hpp"

#include <boost/asio/ip/address.hpp>

#include <algorithm>
#include <cctype>
#include <stdexcept>

namespace bodydock::dock::web {

namespace asio = boost::asio;

std::pair<std::string, std::uint16_t> parse_listen(const std::string& text) {
  std::string host;
  std::string port;
  if (!text.empty() && text.front() == '[') {
    const auto close = text.find(']');
    if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':')
      throw std::invalid_argument("'" + text + "' is not ADDR:PORT ([v6-address]:PORT for IPv6)");
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    const auto colon = text.rfind(':');
    if (colon == std::string::npos || colon == 0) throw std::invalid_argument("'" + text + "' is not ADDR:PORT, e.g. 127.0.0.1:8080");
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
  }
  boost::system::error_code ec;
  asio::ip::make_address(host, ec);
  if (ec) throw std::invalid_argument("'" + host + "' is not an IP address (the page listens on an address of this machine, e.g. 127.0.0.1)");
  if (port.empty() || port.size() > 5 || !std::all_of(port.begin(), port.end(), [](unsigned char c) { return std::isdigit(c); }) ||
      std::stoul(port) > 65535)
    throw std::invalid_argument("'" + port + "' is not a port number (0..65535)");
  return {host, static_cast<std::uint16_t>(std::stoul(port))};
}

}  // namespace bodydock::dock::web
