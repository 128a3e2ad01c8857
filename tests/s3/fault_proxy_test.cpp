// The fault proxy (tests/support/fault_proxy.hpp) that S3 tests put between dockd and RGW,
// checked against a small echo/sink server on loopback: forwarding is byte-exact, full duplex
// and passes half-close on; each fault happens where it was armed, once, and is counted; and
// destroying the proxy with connections open leaves no socket behind.
#include "support/fault_proxy.hpp"
#include "support/sandbox.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/test/unit_test.hpp>

#include <array>
#include <chrono>
#include <filesystem>
#include <iterator>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

using namespace bodydock;
namespace asio = boost::asio;
using namespace asio::experimental::awaitable_operators;
using boost::system::error_code;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

namespace {

constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);
constexpr std::size_t kMiB = 1024 * 1024;

std::string bytes(std::size_t n, unsigned seed) {
  std::string s(n, '\0');
  std::mt19937 g(seed);
  for (auto& c : s) c = static_cast<char>(g());
  return s;
}

tcp::endpoint loopback(std::uint16_t port) { return {asio::ip::make_address("127.0.0.1"), port}; }

std::size_t open_fds() {
  return static_cast<std::size_t>(std::distance(std::filesystem::directory_iterator("/proc/self/fd"), std::filesystem::directory_iterator()));
}

/// What one end of a test connection saw.
struct Seen {
  std::string received;
  error_code connect_error, write_error;
  error_code read_error;  ///< what ended the reading: eof after a clean close
  Clock::time_point ended{};

  [[nodiscard]] bool reset() const {
    const auto r = asio::error::connection_reset;
    return connect_error == r || write_error == r || read_error == r;
  }
};

/// Reads until EOF or an error; `echo` writes every chunk back and half-closes after EOF.
asio::awaitable<void> drain(tcp::socket& s, Seen& seen, bool echo) {
  std::vector<char> buf(64 * 1024);
  for (;;) {
    auto [ec, n] = co_await s.async_read_some(asio::buffer(buf), kTuple);
    seen.received.append(buf.data(), n);
    if (ec) {
      seen.read_error = ec;
      break;
    }
    if (echo) {
      auto [wec, written] = co_await asio::async_write(s, asio::buffer(buf.data(), n), kTuple);
      if (wec) {
        seen.write_error = wec;
        break;
      }
    }
  }
  seen.ended = Clock::now();
  error_code ignored;
  if (echo && seen.read_error == asio::error::eof) s.shutdown(tcp::socket::shutdown_send, ignored);
}

/// The test server's side: accepts one connection, then echoes it or sinks it.
asio::awaitable<void> serve_one(tcp::acceptor& server, bool echo, Seen& seen) {
  auto [ec, s] = co_await server.async_accept(kTuple);
  seen.connect_error = ec;
  if (!ec) co_await drain(s, seen, echo);
}

asio::awaitable<void> send_all(tcp::socket& s, const std::string& data, Seen& seen) {
  auto [ec, n] = co_await asio::async_write(s, asio::buffer(data), kTuple);
  seen.write_error = ec;
  error_code ignored;
  if (!ec) s.shutdown(tcp::socket::shutdown_send, ignored);
}

/// The client's side: connects to `port`, sends `data` and half-closes while reading until EOF.
asio::awaitable<void> send_and_receive(std::uint16_t port, const std::string& data, Seen& seen) {
  tcp::socket s(co_await asio::this_coro::executor);
  const auto to = loopback(port);
  auto [ec] = co_await s.async_connect(to, kTuple);
  seen.connect_error = ec;
  if (ec) co_return;
  co_await (send_all(s, data, seen) && drain(s, seen, false));
}

asio::awaitable<void> exchange_with(tcp::acceptor& server, bool echo, Seen& server_saw, std::uint16_t port, const std::string& data,
                                    Seen& client_saw) {
  co_await (serve_one(server, echo, server_saw) && send_and_receive(port, data, client_saw));
}

/// Sends each turn and waits for its whole echo before the next; `took` gets how long each
/// echo took. Then half-closes and reads to the end.
asio::awaitable<void> turns_then_close(tcp::socket& c, const std::vector<std::string>& turns, std::vector<Clock::duration>& took,
                                       std::vector<std::string>& echoed) {
  for (const auto& turn : turns) {
    const auto start = Clock::now();
    co_await asio::async_write(c, asio::buffer(turn), asio::use_awaitable);
    std::string back(turn.size(), '\0');
    co_await asio::async_read(c, asio::buffer(back), asio::use_awaitable);
    took.push_back(Clock::now() - start);
    echoed.push_back(std::move(back));
  }
  c.shutdown(tcp::socket::shutdown_send);
  Seen rest;
  co_await drain(c, rest, false);
  BOOST_CHECK_EQUAL(rest.read_error, asio::error::eof);
}

/// A conversation in turns with the echo server, through the proxy at `port`.
asio::awaitable<void> echo_turns(tcp::acceptor& server, std::uint16_t port, const std::vector<std::string>& turns,
                                 std::vector<Clock::duration>& took, std::vector<std::string>& echoed) {
  tcp::socket c(co_await asio::this_coro::executor);
  const auto to = loopback(port);
  co_await c.async_connect(to, asio::use_awaitable);
  tcp::socket s = co_await server.async_accept(asio::use_awaitable);
  Seen server_saw;
  co_await (drain(s, server_saw, true) && turns_then_close(c, turns, took, echoed));
}

/// Connects `a` and `b` through the proxy; `a` sends ten bytes, which the server reads on `sa`.
asio::awaitable<void> open_two(tcp::acceptor& server, std::uint16_t port, tcp::socket& a, tcp::socket& sa, tcp::socket& b,
                               tcp::socket& sb) {
  const auto to = loopback(port);
  co_await a.async_connect(to, asio::use_awaitable);
  co_await asio::async_write(a, asio::buffer("0123456789", 10), asio::use_awaitable);
  sa = co_await server.async_accept(asio::use_awaitable);
  std::array<char, 10> got{};
  co_await asio::async_read(sa, asio::buffer(got), asio::use_awaitable);
  co_await b.async_connect(to, asio::use_awaitable);
  sb = co_await server.async_accept(asio::use_awaitable);
}

asio::awaitable<void> read_end(tcp::socket& s, error_code& out) {
  std::array<char, 64> buf{};
  auto [ec, n] = co_await s.async_read_some(asio::buffer(buf), kTuple);
  out = ec;
}

struct ProxyFixture {
  asio::io_context ioc;
  tcp::acceptor server{ioc, loopback(0)};
  std::optional<test::FaultProxy> proxy{std::in_place, "127.0.0.1", server.local_endpoint().port()};

  void run(asio::awaitable<void> a) { test::run_with_watchdog(ioc, std::move(a), std::chrono::seconds(10)); }

  /// One connection through the proxy to the test server: the client sends `data`, half-closes
  /// and reads until the end. Returns what the server and the client saw.
  std::pair<Seen, Seen> exchange(const std::string& data, bool echo) {
    Seen server_saw, client_saw;
    run(exchange_with(server, echo, server_saw, proxy->port(), data, client_saw));
    return {std::move(server_saw), std::move(client_saw)};
  }

  /// A client whose connection the proxy refuses (the server must not get one).
  Seen refused_client(const std::string& data) {
    Seen client_saw;
    run(send_and_receive(proxy->port(), data, client_saw));
    return client_saw;
  }
};

}  // namespace

BOOST_FIXTURE_TEST_SUITE(fault_proxy, ProxyFixture)

BOOST_AUTO_TEST_CASE(forward_passes_20_mb_byte_exact_both_ways_with_half_close) {
  BOOST_CHECK_EQUAL(proxy->url(), "http://127.0.0.1:" + std::to_string(proxy->port()));
  const auto data = bytes(20 * kMiB, 1);
  auto [server_saw, client_saw] = exchange(data, true);
  // The server's EOF is the client's half-close passed on; the client's EOF the server's.
  BOOST_CHECK_EQUAL(server_saw.read_error, asio::error::eof);
  BOOST_CHECK_EQUAL(client_saw.read_error, asio::error::eof);
  BOOST_CHECK(!client_saw.write_error);
  BOOST_CHECK_EQUAL(server_saw.received.size(), data.size());
  BOOST_CHECK(server_saw.received == data);
  BOOST_CHECK_EQUAL(client_saw.received.size(), data.size());
  BOOST_CHECK(client_saw.received == data);
  const auto c = proxy->counters();
  BOOST_CHECK_EQUAL(c.connections, 1u);
  BOOST_CHECK_EQUAL(c.bytes_up, data.size());
  BOOST_CHECK_EQUAL(c.bytes_down, data.size());
  BOOST_CHECK_EQUAL(c.refused + c.resets + c.stalls + c.flips, 0u);
}

BOOST_AUTO_TEST_CASE(refuse_resets_every_connection_until_forward_again) {
  proxy->set_mode(test::FaultProxy::Mode::refuse);
  for (int i = 0; i < 2; ++i) {
    const auto saw = refused_client("GET / HTTP/1.1\r\n\r\n");
    BOOST_CHECK_MESSAGE(saw.reset(), "connect: " << saw.connect_error.message() << ", write: " << saw.write_error.message()
                                                 << ", read: " << saw.read_error.message());
    BOOST_CHECK(saw.received.empty());
  }
  // Nothing reached the server.
  error_code ec;
  server.non_blocking(true);
  (void)server.accept(ec);
  BOOST_CHECK_EQUAL(ec, asio::error::would_block);
  server.non_blocking(false);
  auto c = proxy->counters();
  BOOST_CHECK_EQUAL(c.connections, 2u);
  BOOST_CHECK_EQUAL(c.refused, 2u);
  BOOST_CHECK_EQUAL(c.bytes_up, 0u);

  proxy->set_mode(test::FaultProxy::Mode::forward);
  const auto data = bytes(100'000, 2);
  auto [server_saw, client_saw] = exchange(data, true);
  BOOST_CHECK(client_saw.received == data);
  BOOST_CHECK_EQUAL(client_saw.read_error, asio::error::eof);
  c = proxy->counters();
  BOOST_CHECK_EQUAL(c.connections, 3u);
  BOOST_CHECK_EQUAL(c.refused, 2u);
}

BOOST_AUTO_TEST_CASE(reset_at_cuts_the_first_connection_that_gets_there_and_only_it) {
  proxy->reset_at(kMiB);
  // A shorter connection passes untouched and leaves the fault armed.
  const auto small = bytes(100'000, 3);
  auto [small_server, small_client] = exchange(small, true);
  BOOST_CHECK(small_client.received == small);
  BOOST_CHECK_EQUAL(proxy->counters().resets, 0u);

  const auto data = bytes(4 * kMiB, 4);
  auto [server_saw, client_saw] = exchange(data, false);
  BOOST_CHECK_MESSAGE(client_saw.reset(), "write: " << client_saw.write_error.message() << ", read: " << client_saw.read_error.message());
  BOOST_CHECK_EQUAL(server_saw.read_error, asio::error::connection_reset);
  // Exactly 1 MiB was forwarded. The server reads a prefix of it: Linux drops what the server
  // had not read yet when the RST arrives, so how much it saw depends on its pace.
  const auto c = proxy->counters();
  BOOST_CHECK_EQUAL(c.resets, 1u);
  BOOST_CHECK_EQUAL(c.bytes_up, small.size() + kMiB);
  BOOST_CHECK_LE(server_saw.received.size(), kMiB);
  BOOST_CHECK(data.compare(0, server_saw.received.size(), server_saw.received) == 0);

  // One-shot: the next connection is whole.
  auto [next_server, next_client] = exchange(data, true);
  BOOST_CHECK_EQUAL(next_server.read_error, asio::error::eof);
  BOOST_CHECK_EQUAL(next_client.read_error, asio::error::eof);
  BOOST_CHECK(next_client.received == data);
  BOOST_CHECK_EQUAL(proxy->counters().resets, 1u);
  BOOST_CHECK_EQUAL(proxy->counters().connections, 3u);
}

BOOST_AUTO_TEST_CASE(reset_at_zero_resets_a_connection_before_its_first_byte) {
  proxy->reset_at(0);
  const auto data = bytes(1000, 5);
  auto [server_saw, client_saw] = exchange(data, false);
  BOOST_CHECK(client_saw.reset());
  BOOST_CHECK(server_saw.received.empty());
  BOOST_CHECK_EQUAL(proxy->counters().resets, 1u);
  BOOST_CHECK_EQUAL(proxy->counters().bytes_up, 0u);
}

BOOST_AUTO_TEST_CASE(flip_at_changes_exactly_that_byte_once) {
  const auto data = bytes(256 * 1024, 6);
  // The first byte, both sides of a 64 KiB chunk boundary, one inside, the last.
  const std::vector<std::size_t> offsets = {0, 65535, 65536, 200'001, data.size() - 1};
  for (const auto at : offsets) {
    proxy->flip_at(at);
    auto expected = data;
    expected[at] = static_cast<char>(expected[at] ^ 0x01);
    auto [server_saw, client_saw] = exchange(data, true);
    BOOST_CHECK_MESSAGE(server_saw.received == expected, "flip at " << at);
    BOOST_CHECK_MESSAGE(client_saw.received == expected, "flip at " << at);  // the echo is not flipped again
  }
  BOOST_CHECK_EQUAL(proxy->counters().flips, offsets.size());
  // Consumed: the next connection passes unchanged; a flip past its end stays armed.
  proxy->flip_at(data.size());
  auto [server_saw, client_saw] = exchange(data, true);
  BOOST_CHECK(server_saw.received == data);
  BOOST_CHECK(client_saw.received == data);
  BOOST_CHECK_EQUAL(proxy->counters().flips, offsets.size());
}

BOOST_AUTO_TEST_CASE(stall_at_holds_both_directions_then_delivers_everything) {
  const auto stall = milliseconds(300);
  // In the middle of an upload: the whole echo arrives no sooner than the stall, intact.
  proxy->stall_at(300 * 1024, stall);
  const auto data = bytes(kMiB, 7);
  const auto start = Clock::now();
  auto [server_saw, client_saw] = exchange(data, true);
  BOOST_CHECK(client_saw.ended - start >= stall);
  BOOST_CHECK_EQUAL(client_saw.read_error, asio::error::eof);
  BOOST_CHECK(server_saw.received == data);
  BOOST_CHECK(client_saw.received == data);
  BOOST_CHECK_EQUAL(proxy->counters().stalls, 1u);

  // Right after the client's first 64 KiB, all of which were forwarded: the server's answer is
  // what is held. Then the connection goes on.
  proxy->stall_at(64 * 1024, stall);
  const std::vector<std::string> turns = {bytes(64 * 1024, 8), bytes(64 * 1024, 9)};
  std::vector<Clock::duration> took;
  std::vector<std::string> echoed;
  run(echo_turns(server, proxy->port(), turns, took, echoed));
  BOOST_REQUIRE_EQUAL(echoed.size(), 2u);
  BOOST_CHECK(took[0] >= stall);
  BOOST_CHECK(echoed[0] == turns[0]);
  BOOST_CHECK(echoed[1] == turns[1]);
  BOOST_CHECK_EQUAL(proxy->counters().stalls, 2u);
}

BOOST_AUTO_TEST_CASE(destroying_the_proxy_with_open_connections_resets_them_and_leaks_nothing) {
  proxy.reset();
  const auto fds = open_fds();
  proxy.emplace("127.0.0.1", server.local_endpoint().port());
  proxy->stall_at(10, std::chrono::seconds(20));  // `a` will be in a stall, `b` idle
  {
    tcp::socket a(ioc), sa(ioc), b(ioc), sb(ioc);
    run(open_two(server, proxy->port(), a, sa, b, sb));
    BOOST_CHECK_EQUAL(proxy->counters().stalls, 1u);
    const auto start = Clock::now();
    proxy.reset();
    BOOST_CHECK(Clock::now() - start < std::chrono::seconds(2));  // the stall did not hold it
    std::array<error_code, 4> ends;
    auto all = [](tcp::socket& a1, tcp::socket& a2, tcp::socket& a3, tcp::socket& a4, std::array<error_code, 4>& e) -> asio::awaitable<void> {
      co_await (read_end(a1, e[0]) && read_end(a2, e[1]) && read_end(a3, e[2]) && read_end(a4, e[3]));
    };
    run(all(a, sa, b, sb, ends));
    for (const auto& e : ends) BOOST_CHECK_EQUAL(e, asio::error::connection_reset);
  }
  BOOST_CHECK_EQUAL(open_fds(), fds);
}

BOOST_AUTO_TEST_SUITE_END()
