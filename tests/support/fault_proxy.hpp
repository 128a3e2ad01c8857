#pragma once
// Test support: a TCP proxy on loopback that injects network faults on demand, for tests that
// put it between dockd (or any client) and the storage server. It runs its own io_context on
// its own thread, so a test can arm faults while the daemon under test is uploading.
//
// Faults are addressed by the offset in one connection's client->server byte stream (offset 0
// is the first byte the client sends on that connection), which is what a test knows: "the
// connection breaks 1 MiB into the PUT body". A fault armed applies to connections accepted
// after it was armed and is consumed by the first of them that reaches its offset; connections
// that end earlier pass untouched.

#include "dock/log.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <chrono>
#include <cstdint>
#include <exception>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace bodydock::test {

/// A loopback TCP proxy with injectable faults: refuse connections, reset, stall, or flip a
/// bit at a given offset of a connection's upload stream. Forwarding is full duplex and
/// propagates half-close, so HTTP through it behaves as without it.
class FaultProxy {
 public:
  enum class Mode {
    forward,  ///< forward every connection
    refuse,   ///< accept, then reset at once (RST): storage unreachable
  };

  /// What the proxy did so far. `connections` counts every accepted connection, `refused` those
  /// of them reset at once in Mode::refuse; `resets`, `stalls`, `flips` count faults applied;
  /// the bytes are those written to the server (up) and to the client (down).
  struct Counters {
    std::uint64_t connections = 0, refused = 0, resets = 0, stalls = 0, flips = 0, bytes_up = 0, bytes_down = 0;
  };

  /// Listens on 127.0.0.1 (ephemeral port) and forwards every connection to
  /// target_host:target_port (resolved once, here). Starts in Mode::forward.
  FaultProxy(const std::string& target_host, std::uint16_t target_port)
      : targets_(boost::asio::ip::tcp::resolver(ioc_).resolve(target_host, std::to_string(target_port))),
        acceptor_(ioc_, {boost::asio::ip::make_address("127.0.0.1"), 0}),
        port_(acceptor_.local_endpoint().port()) {
    boost::asio::co_spawn(ioc_, accept_loop(), [](std::exception_ptr e) { dock::log_if_failed("fault proxy: accept loop", e); });
    thread_ = std::thread([this] { run(); });
  }

  /// Closes the listener and every open connection (with a reset), waits for the io thread.
  ~FaultProxy() {
    boost::asio::post(ioc_, [this] { stop_all(); });
    thread_.join();
  }

  FaultProxy(const FaultProxy&) = delete;
  FaultProxy& operator=(const FaultProxy&) = delete;

  [[nodiscard]] std::uint16_t port() const { return port_; }
  /// "http://127.0.0.1:PORT", for an S3 endpoint.
  [[nodiscard]] std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }

  /// Applies to connections accepted from now on. Thread-safe.
  void set_mode(Mode m) {
    std::lock_guard lock(mutex_);
    mode_ = m;
  }

  /// Resets both sides (SO_LINGER 0) once the client has sent `offset` bytes on a connection,
  /// before forwarding any more of them: exactly `offset` bytes go to the server, though it may
  /// not read them all (Linux drops unread data when the RST arrives). At 0 the connection is
  /// reset before any byte passes. Thread-safe, one-shot.
  void reset_at(std::uint64_t offset) { arm(Kind::reset, offset, {}); }
  /// Stops forwarding in both directions for `how_long` once the client has sent `offset`
  /// bytes on a connection, then goes on. Thread-safe, one-shot.
  void stall_at(std::uint64_t offset, std::chrono::milliseconds how_long) { arm(Kind::stall, offset, how_long); }
  /// XORs byte `offset` of a connection's client->server stream with 0x01. Thread-safe, one-shot.
  void flip_at(std::uint64_t offset) { arm(Kind::flip, offset, {}); }

  /// A snapshot. Thread-safe.
  [[nodiscard]] Counters counters() const {
    std::lock_guard lock(mutex_);
    return counters_;
  }

 private:
  using tcp = boost::asio::ip::tcp;
  using Clock = std::chrono::steady_clock;
  static constexpr std::size_t kChunk = 64 * 1024;
  static constexpr auto kTuple = boost::asio::as_tuple(boost::asio::use_awaitable);

  enum class Kind { reset, stall, flip };
  struct Fault {
    Kind kind = Kind::reset;
    std::uint64_t offset = 0;
    std::chrono::milliseconds stall{};
    std::uint64_t first_serial = 0;  ///< connections accepted before arming are not eligible
  };

  /// One proxied connection; lives in serve()'s frame, both pumps refer to it.
  struct Link {
    tcp::socket client;
    tcp::socket server;
    std::uint64_t serial = 0;
    boost::asio::steady_timer up_timer;
    boost::asio::steady_timer down_timer;
    Clock::time_point stalled_until{};
    bool closed = false;
  };

  void run() {
    try {
      ioc_.run();
    } catch (const std::exception& e) {
      dock::log(dock::Level::error, "fault proxy: io thread stopped: ", e.what());
    }
  }

  void arm(Kind kind, std::uint64_t offset, std::chrono::milliseconds stall) {
    std::lock_guard lock(mutex_);
    faults_.push_back({kind, offset, stall, next_serial_});
  }

  /// Takes the earliest fault that connection `serial` meets in stream bytes [lo, hi): a flip
  /// needs its byte in the range, a reset or stall fires at a boundary lo <= offset <= hi.
  std::optional<Fault> claim(std::uint64_t serial, std::uint64_t lo, std::uint64_t hi) {
    std::lock_guard lock(mutex_);
    auto best = faults_.end();
    for (auto f = faults_.begin(); f != faults_.end(); ++f) {
      if (f->first_serial > serial || f->offset < lo) continue;
      if (f->kind == Kind::flip ? f->offset >= hi : f->offset > hi) continue;
      if (best == faults_.end() || f->offset < best->offset) best = f;
    }
    if (best == faults_.end()) return std::nullopt;
    const Fault taken = *best;
    faults_.erase(best);
    // Counted before the fault takes effect, so a test that saw the effect sees the count.
    switch (taken.kind) {
      case Kind::reset: ++counters_.resets; break;
      case Kind::stall: ++counters_.stalls; break;
      case Kind::flip: ++counters_.flips; break;
    }
    return taken;
  }

  /// Closes with SO_LINGER {1, 0}: the peer sees ECONNRESET, unsent data is dropped.
  static void reset_socket(tcp::socket& s) {
    boost::system::error_code ignored;
    s.set_option(tcp::socket::linger(true, 0), ignored);
    s.close(ignored);
  }

  /// Ends a link abruptly (an injected reset, an error on either side, or the proxy's end): both
  /// peers see a reset, and whatever pump or timer is waiting on it wakes up.
  static void abort(Link& l) {
    if (l.closed) return;
    l.closed = true;
    reset_socket(l.client);
    reset_socket(l.server);
    l.up_timer.cancel();
    l.down_timer.cancel();
  }

  boost::asio::awaitable<void> accept_loop() {
    while (acceptor_.is_open()) {
      auto [ec, socket] = co_await acceptor_.async_accept(kTuple);
      if (ec == boost::asio::error::operation_aborted || stopping_) break;
      if (ec) {
        dock::log(dock::Level::warning, "fault proxy: accept: ", ec.message());
        continue;
      }
      boost::asio::co_spawn(ioc_, serve(std::move(socket)), [](std::exception_ptr e) { dock::log_if_failed("fault proxy: connection", e); });
    }
  }

  boost::asio::awaitable<void> serve(tcp::socket client) {
    std::uint64_t serial = 0;
    bool refuse = false;
    {
      std::lock_guard lock(mutex_);
      ++counters_.connections;
      serial = next_serial_++;
      refuse = mode_ == Mode::refuse;
      if (refuse) ++counters_.refused;
    }
    if (refuse || stopping_) {
      reset_socket(client);
      co_return;
    }
    Link link{std::move(client), tcp::socket(ioc_), serial, boost::asio::steady_timer(ioc_), boost::asio::steady_timer(ioc_)};
    struct Registration {
      std::set<Link*>& links;
      Link* link;
      ~Registration() { links.erase(link); }
    };
    links_.insert(&link);
    const Registration registered{links_, &link};

    auto [ec, ep] = co_await boost::asio::async_connect(link.server, targets_, kTuple);
    if (ec || link.closed) {
      abort(link);  // the client sees a reset: the nearest thing to "connection refused"
      co_return;
    }
    using namespace boost::asio::experimental::awaitable_operators;
    co_await (pump_up(link) && pump_down(link));
  }

  /// Client -> server, applying the faults.
  boost::asio::awaitable<void> pump_up(Link& l) {
    std::vector<char> buf(kChunk);
    std::uint64_t pos = 0;
    if (!co_await forward_up(l, buf.data(), 0, pos)) co_return;  // faults at offset 0
    for (;;) {
      auto [ec, n] = co_await l.client.async_read_some(boost::asio::buffer(buf), kTuple);
      if (ec == boost::asio::error::eof) {
        boost::system::error_code ignored;
        l.server.shutdown(tcp::socket::shutdown_send, ignored);
        co_return;
      }
      if (ec || l.closed) {
        abort(l);
        co_return;
      }
      if (!co_await forward_up(l, buf.data(), n, pos)) co_return;
      pos += n;
    }
  }

  /// Forwards `n` bytes that start at stream offset `pos`, applying any faults on the way.
  /// False when the link is gone.
  boost::asio::awaitable<bool> forward_up(Link& l, char* data, std::size_t n, std::uint64_t pos) {
    std::uint64_t at = pos;  // stream offset of the next byte to forward
    const std::uint64_t end = pos + n;
    while (auto fault = claim(l.serial, at, end)) {
      if (fault->offset > at) {
        if (!co_await write(l, l.server, data + (at - pos), fault->offset - at, true)) co_return false;
        at = fault->offset;
      }
      switch (fault->kind) {
        case Kind::flip:
          data[at - pos] = static_cast<char>(data[at - pos] ^ 0x01);
          break;
        case Kind::stall: {
          l.stalled_until = Clock::now() + fault->stall;
          l.up_timer.expires_at(l.stalled_until);
          co_await l.up_timer.async_wait(kTuple);
          if (l.closed) co_return false;
          break;
        }
        case Kind::reset:
          abort(l);
          co_return false;
      }
    }
    if (end == at) co_return true;
    co_return co_await write(l, l.server, data + (at - pos), end - at, true);
  }

  /// Server -> client; held while the link is stalled.
  boost::asio::awaitable<void> pump_down(Link& l) {
    std::vector<char> buf(kChunk);
    for (;;) {
      auto [ec, n] = co_await l.server.async_read_some(boost::asio::buffer(buf), kTuple);
      if (ec == boost::asio::error::eof) {
        boost::system::error_code ignored;
        l.client.shutdown(tcp::socket::shutdown_send, ignored);
        co_return;
      }
      if (ec || l.closed) {
        abort(l);
        co_return;
      }
      while (!l.closed && Clock::now() < l.stalled_until) {
        l.down_timer.expires_at(l.stalled_until);
        co_await l.down_timer.async_wait(kTuple);
      }
      if (l.closed || !co_await write(l, l.client, buf.data(), n, false)) co_return;
    }
  }

  boost::asio::awaitable<bool> write(Link& l, tcp::socket& to, const char* data, std::size_t n, bool up) {
    auto [ec, written] = co_await boost::asio::async_write(to, boost::asio::buffer(data, n), kTuple);
    if (ec || l.closed) {
      abort(l);
      co_return false;
    }
    std::lock_guard lock(mutex_);
    (up ? counters_.bytes_up : counters_.bytes_down) += written;
    co_return true;
  }

  /// On the io thread: no new connections, every open one reset; the loop then runs out of work.
  void stop_all() {
    stopping_ = true;
    boost::system::error_code ignored;
    acceptor_.close(ignored);
    for (Link* l : std::set<Link*>(links_)) abort(*l);
  }

  // Shared with the test thread, under mutex_.
  mutable std::mutex mutex_;
  Mode mode_ = Mode::forward;
  std::vector<Fault> faults_;
  Counters counters_;
  std::uint64_t next_serial_ = 0;

  // The io thread's own (links_ outlives ioc_: frames it points into may die with ioc_).
  std::set<Link*> links_;
  bool stopping_ = false;
  boost::asio::io_context ioc_;
  tcp::resolver::results_type targets_;
  tcp::acceptor acceptor_;
  std::uint16_t port_;
  std::thread thread_;
};

}  // namespace bodydock::test
