#include "dock/web/server.hpp"

#include "dock/blocking.hpp"
#include "dock/log.hpp"
#include "dock/web/auth.hpp"
#include "dock/web/routing.hpp"
#include "dock/web/status.hpp"
#include "usb/async_event.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <boost/json/serialize.hpp>

#include <pwd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <type_traits>
#include <variant>

namespace bodydock::dock::web {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace json = boost::json;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using local = asio::local::stream_protocol;
using Clock = std::chrono::steady_clock;
constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);

namespace {

std::int64_t unix_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

/// "uid 1000 (alice)" for the process at the other end of a Unix socket, as the kernel says.
std::string peer_credentials(local::socket& socket) {
  ucred cred{};
  socklen_t len = sizeof cred;
  if (::getsockopt(socket.native_handle(), SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return "uid unknown";
  // The overflow uid: a caller outside a user namespace the service runs in.
  if (cred.uid == 65534) return "uid not visible to the service";
  std::string out = "uid " + std::to_string(cred.uid);
  passwd pw{};
  passwd* found = nullptr;
  char buf[1024];
  if (::getpwuid_r(cred.uid, &pw, buf, sizeof buf, &found) == 0 && found) out += std::string(" (") + found->pw_name + ")";
  return out;
}

}  // namespace

struct WebServer::Impl {
  Impl(asio::io_context& ioc_, Dock& dock_, WebOptions o, AdminHooks h)
      : ioc(ioc_), dock(dock_), opts(std::move(o)), hooks(std::move(h)), acceptor(ioc_), control(ioc_), pushed(ioc_.get_executor()) {}

  asio::io_context& ioc;
  Dock& dock;
  WebOptions opts;
  AdminHooks hooks;
  tcp::acceptor acceptor;
  local::acceptor control;     ///< the control socket (open when WebOptions::control_socket is set)
  std::optional<std::pair<dev_t, ino_t>> made_socket;  ///< the socket file this server made (removed at stop)
  std::size_t local_connections = 0;
  std::unique_ptr<ssl::context> tls;
  AccountStore accounts;
  SessionStore sessions;
  LoginThrottle throttle;
  asio::thread_pool kdf_pool{1};  ///< password checks: one at a time (each takes 32 MiB and ~0.1 s)
  RateHistory history;
  std::shared_ptr<const std::string> status;  ///< the newest /api/v1/status body
  std::int64_t status_ms = 0;
  std::uint64_t generation = 0;
  usb::AsyncEvent pushed;
  std::size_t connections = 0;
  std::size_t streams = 0;
  bool stopping = false;
  std::shared_ptr<bool> alive = std::make_shared<bool>(true);

  [[nodiscard]] bool https() const { return tls != nullptr; }

  asio::awaitable<void> refresh() {
    Snapshot snap;
    snap.unix_ms = unix_ms();
    snap.queue = co_await dock.queue_view();
    snap.quarantined = co_await dock.in_state(SegState::quarantined);
    std::error_code ec;
    const auto space = std::filesystem::space(dock.config().state_dir / "spool", ec);
    snap.spool_free_bytes = ec ? 0 : space.available;
    history.update(dock.totals().pulled_bytes, dock.totals().stored_bytes, snap.unix_ms);
    last_queue = snap.queue;
    last_free = snap.spool_free_bytes;
    auto body = json::serialize(status_json(dock, snap, history, Log::recent_entries(12)));
    body += '\n';
    status = std::make_shared<const std::string>(std::move(body));
    status_ms = snap.unix_ms;
    ++generation;
    pushed.notify();
  }
  QueueView last_queue;
  std::uint64_t last_free = 0;

  asio::awaitable<void> pusher(std::shared_ptr<bool> live) {
    asio::steady_timer timer(ioc);
    while (*live && !stopping) {
      try {
        co_await refresh();
      } catch (const std::exception& e) {
        log(Level::warning, "web page: cannot read the dock's state: ", e.what());
      }
      timer.expires_after(opts.push_interval);
      co_await timer.async_wait(kTuple);
    }
  }

  template <typename Acceptor>
  asio::awaitable<void> accept_loop(Acceptor& listener, std::shared_ptr<bool> live) {
    while (*live && !stopping) {
      auto [ec, socket] = co_await listener.async_accept(kTuple);
      if (ec) {
        if (ec == asio::error::operation_aborted || !*live || stopping) co_return;
        log(Level::warning, "web page: accept failed: ", ec.message());
        asio::steady_timer pause(ioc, std::chrono::milliseconds(100));  // e.g. out of file descriptors
        co_await pause.async_wait(kTuple);
        continue;
      }
      // The control socket counts apart, so clients of the page can never lock the operator out.
      constexpr bool is_local = std::is_same_v<Acceptor, local::acceptor>;
      auto& count = is_local ? local_connections : connections;
      if (count >= (is_local ? opts.max_control_connections : opts.max_connections)) {
        // Over the limit: a short refusal, never a queue that grows.
        static const std::string busy =
            "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nRetry-After: 5\r\nConnection: close\r\n\r\n";
        boost::system::error_code ignored;
        socket.non_blocking(true, ignored);
        socket.write_some(asio::buffer(busy), ignored);
        socket.close(ignored);
        continue;
      }
      ++count;
      asio::co_spawn(ioc, connection(std::move(socket), live), [&count, live](const std::exception_ptr& e) {
        if (*live) --count;
        log_if_failed("web page: connection", e);
      });
    }
  }

  asio::awaitable<void> connection(local::socket socket, std::shared_ptr<bool> live) {
    Caller caller;
    caller.peer = "control socket";
    caller.local = true;
    caller.creds = peer_credentials(socket);
    beast::basic_stream<local> stream(std::move(socket));
    co_await serve(stream, caller, live);
    boost::system::error_code ec;
    stream.socket().shutdown(local::socket::shutdown_send, ec);
  }

  asio::awaitable<void> connection(tcp::socket socket, std::shared_ptr<bool> live) {
    boost::system::error_code ec;
    const auto peer_ep = socket.remote_endpoint(ec);
    Caller peer;
    peer.peer = ec ? "?" : peer_ep.address().to_string();
    if (https()) {
      beast::ssl_stream<beast::tcp_stream> stream(std::move(socket), *tls);
      beast::get_lowest_layer(stream).expires_after(opts.request_timeout);
      auto [hec] = co_await stream.async_handshake(ssl::stream_base::server, kTuple);
      if (hec) co_return;  // scanners and plain-HTTP clients end here
      co_await serve(stream, peer, live);
      beast::get_lowest_layer(stream).expires_after(std::chrono::seconds(2));
      co_await stream.async_shutdown(kTuple);
    } else {
      beast::tcp_stream stream(std::move(socket));
      co_await serve(stream, peer, live);
      stream.socket().shutdown(tcp::socket::shutdown_send, ec);
    }
  }

  template <typename Stream>
  asio::awaitable<void> serve(Stream& stream, const Caller& caller, std::shared_ptr<bool> live) {
    beast::flat_buffer buffer(opts.max_header_bytes + opts.max_body_bytes);
    bool first = true;
    while (*live && !stopping) {
      http::request_parser<http::string_body> parser;
      parser.header_limit(static_cast<std::uint32_t>(opts.max_header_bytes));
      parser.body_limit(opts.max_body_bytes);
      // The first byte may take the idle time; the whole request must then arrive in time.
      auto& lowest = beast::get_lowest_layer(stream);
      lowest.expires_after(first ? opts.request_timeout : opts.idle_timeout);
      auto [hec, hn] = co_await http::async_read_header(stream, buffer, parser, kTuple);
      if (!hec && !first) {
        lowest.expires_after(opts.request_timeout);
      }
      boost::system::error_code ec = hec;
      if (!ec) {
        auto [bec, bn] = co_await http::async_read(stream, buffer, parser, kTuple);
        ec = bec;
      }
      first = false;
      if (ec == http::error::end_of_stream || ec == beast::error::timeout || ec == asio::error::connection_reset ||
          ec == asio::error::eof || ec == asio::error::operation_aborted)
        co_return;
      if (ec) {
        // Oversized or malformed: answer once, then close.
        log(Level::notice, "web page: bad request from ", caller.peer, ": ", ec.message());
        auto res = make_response(unreadable_reply(ec), 11, false, https());
        co_await write(stream, res);
        co_return;
      }
      auto req = parser.release();
      auto routed = route(req, caller, rules(), sessions, Clock::now());
      if (routed.notice) log(Level::notice, "web page: ", routed.notice, " from ", caller.peer);
      if (routed.route == Route::events) {
        co_await event_stream(stream, req.version(), live);
        co_return;
      }
      const bool close = routed.close;
      Reply r = co_await handle(req, std::move(routed), caller);
      auto res = make_response(std::move(r), req.version(), req.keep_alive() && !close, https());
      const bool keep = res.keep_alive();
      if (!co_await write(stream, res)) co_return;
      if (!keep) co_return;
    }
  }

  [[nodiscard]] PageRules rules() const {
    PageRules r;
    r.status_public = opts.status_public;
    r.https = https();
    r.accounts = !accounts.empty();
    return r;
  }

  template <typename Stream>
  asio::awaitable<bool> write(Stream& stream, http::response<http::string_body>& res) {
    beast::get_lowest_layer(stream).expires_after(opts.write_timeout);
    auto [ec, n] = co_await http::async_write(stream, res, kTuple);
    co_return !ec;
  }

  /// Server-Sent Events: the status now, then each new one as it is made. A client that does
  /// not keep up is dropped (its writes time out), so it never holds memory or the loop.
  template <typename Stream>
  asio::awaitable<void> event_stream(Stream& stream, unsigned version, std::shared_ptr<bool> live) {
    if (streams >= opts.max_event_streams) {
      Reply r = error_reply(http::status::service_unavailable, "too many live views; try again later");
      r.headers.emplace_back("Retry-After", "10");
      auto res = make_response(std::move(r), version, false, https());
      co_await write(stream, res);
      co_return;
    }
    ++streams;
    struct Count {
      std::size_t& n;
      std::shared_ptr<bool> live;
      ~Count() {
        if (*live) --n;
      }
    } count{streams, live};
    std::string head =
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n"
        "Connection: close\r\n\r\nretry: 2000\n\n";
    auto& lowest = beast::get_lowest_layer(stream);
    lowest.expires_after(opts.write_timeout);
    auto [hec, hn] = co_await asio::async_write(stream, asio::buffer(head), kTuple);
    if (hec) co_return;
    std::uint64_t sent = 0;
    while (*live && !stopping) {
      if (!status || sent == generation) {
        co_await pushed.wait();
        if (!*live || stopping) co_return;
        if (sent == generation) continue;
      }
      sent = generation;
      auto body = status;  // keeps this snapshot alive while it is written
      std::string event = "event: status\ndata: ";
      event.reserve(body->size() + 32);
      event.append(*body, 0, body->size() - 1);  // without its final newline
      event += "\n\n";
      lowest.expires_after(opts.write_timeout);
      auto [ec, n] = co_await asio::async_write(stream, asio::buffer(event), kTuple);
      if (ec) co_return;
    }
  }

  // --- routing (what needs nothing of the dock is decided in routing.cpp) ------------------

  /// The session behind the request's cookie, if any.
  const SessionStore::Session* session_of(const http::request<http::string_body>& req) {
    const auto cookie = req.find(http::field::cookie);
    if (cookie == req.end()) return nullptr;
    const auto id = cookie_value(cookie->value(), "bodydock_session");
    if (!id) return nullptr;
    return sessions.find(*id, Clock::now());
  }

  /// The answer to a routed request (every route but the event stream, which serve() runs).
  asio::awaitable<Reply> handle(const http::request<http::string_body>& req, Routed routed, const Caller& caller) {
    switch (routed.route) {
      case Route::answered:
        co_return std::move(routed.reply);
      case Route::status: {
        if (!status || unix_ms() - status_ms > 250) co_await refresh();
        Reply r;
        r.body = *status;
        co_return r;
      }
      case Route::metrics: {
        if (!status || unix_ms() - status_ms > 250) co_await refresh();
        Snapshot snap;
        snap.unix_ms = status_ms;
        snap.queue = last_queue;
        snap.spool_free_bytes = last_free;
        Reply r;
        r.content_type = "text/plain; version=0.0.4; charset=utf-8";
        r.body = metrics_text(dock, snap);
        co_return r;
      }
      case Route::queue:
        co_return co_await queue_list();
      case Route::cameras:
        co_return co_await camera_list();
      case Route::login:
        co_return co_await login(req, caller.peer);
      case Route::action:
        co_return co_await action(req, std::move(routed.action), caller);
      case Route::events:
        break;
    }
    co_return error_reply(http::status::not_found, "not found");
  }

  /// scrypt on its own thread (a plain function: no lambda may cross a co_await, blocking.hpp).
  auto check_password(std::string user, std::string password) {
    return run_blocking(kdf_pool, [store = &accounts, user = std::move(user), password = std::move(password)] { return store->check(user, password); });
  }

  asio::awaitable<Reply> login(const http::request<http::string_body>& req, const std::string& peer) {
    const auto form = parse_login(req.body());
    if (!form) co_return error_reply(http::status::bad_request, "send {\"user\": ..., \"password\": ...}");
    const auto& user = form->user;
    const auto now = Clock::now();
    const std::string by_peer = "addr " + peer, by_user = "user " + user;
    auto wait = throttle.blocked(by_peer, now);
    if (auto w = throttle.blocked(by_user, now); w && (!wait || *w > *wait)) wait = w;
    if (wait) {
      Reply r = error_reply(http::status::too_many_requests, "too many failed logins; wait and try again");
      r.headers.emplace_back("Retry-After", std::to_string(wait->count()));
      co_return r;
    }
    // scrypt off the event loop: the slots keep being served while a password is checked.
    auto account = co_await check_password(user, form->password);
    AuditEvent e;
    e.event = "web login";
    e.actor = "web page";  // who it was is what the login says, once it succeeds
    e.details["user"] = user;
    e.details["from"] = peer;
    if (!account) {
      throttle.failed(by_peer, Clock::now());
      throttle.failed(by_user, Clock::now());
      // The name is the client's: only a well-formed one goes into the log line as it is.
      log(Level::warning, "web page: failed login for ", valid_account_name(user) ? "'" + user + "'" : std::string("a malformed name"), " from ",
          peer);
      e.why = "login refused: wrong user name or password";
      co_await dock.audit_by(std::move(e));
      co_return error_reply(http::status::unauthorized, "wrong user name or password");
    }
    throttle.succeeded(by_peer);
    throttle.succeeded(by_user);
    const auto& s = sessions.create(account->name, account->role, Clock::now());
    log(Level::notice, "web page: ", account->name, " logged in from ", peer);
    e.actor = std::string(account->role == Role::admin ? "admin " : "viewer ") + account->name;
    e.why = "logged in";
    co_await dock.audit_by(std::move(e));
    Reply r = json_reply(http::status::ok, json::object{{"user", s.user}, {"role", s.role == Role::admin ? "admin" : "viewer"}, {"csrf", s.csrf}});
    r.headers.emplace_back("Set-Cookie", session_cookie(s.id, https(), std::chrono::hours(8)));
    co_return r;
  }

  /// The upload queue in the order it is sent: flagged segments first, then the oldest.
  asio::awaitable<Reply> queue_list() {
    const auto rows = co_await dock.in_state(SegState::spooled);
    json::array items;
    for (const auto& r : rows) {
      json::object item;
      item["serial"] = r.serial;
      item["segment"] = r.seq;
      item["bytes"] = r.manifest.size;
      item["recorded_utc_ms"] = r.manifest.start_utc_ms;
      item["priority"] = r.manifest.priority();
      item["uploading"] = dock.uploading(r.serial, r.seq);
      item["attempts"] = r.attempts;
      item["last_error"] = r.reason;
      items.push_back(std::move(item));
    }
    const auto view = co_await dock.queue_view();
    const auto& up = dock.uplink();
    json::object out;
    const auto total = view.counts.contains(SegState::spooled) ? view.counts.at(SegState::spooled) : 0;
    out["total_segments"] = total;
    out["total_bytes"] = view.spooled_bytes;
    out["truncated"] = total > items.size();  // the list stops at in_state's limit
    out["paused"] = dock.uploads_paused();
    out["uplink"] = uplink_state_name(up.state);
    out["alert"] = up.alert;
    out["items"] = std::move(items);
    co_return json_reply(http::status::ok, out);
  }

  /// Every camera this dock has seen: who it belongs to, where it is, what it still holds.
  asio::awaitable<Reply> camera_list() {
    const auto rows = co_await dock.cameras();
    json::array list;
    for (const auto& c : rows) {
      json::object o;
      o["serial"] = c.serial;
      o["model"] = c.model;
      o["firmware"] = c.firmware;
      o["officer"] = c.officer;
      o["last_seen_ms"] = c.last_seen_ms;
      o["revoked"] = c.revoked ? json::value(*c.revoked) : json::value(nullptr);
      json::value slot = nullptr;
      for (const auto& s : dock.slots())
        if (s.serial == c.serial && s.phase != SlotPhase::empty) slot = s.index;
      o["slot"] = slot;
      json::object counts;
      for (const auto& [st, n] : c.segments) counts[state_name(st)] = n;
      o["segments"] = std::move(counts);
      list.push_back(std::move(o));
    }
    co_return json_reply(http::status::ok, json::object{{"cameras", std::move(list)}});
  }

  /// The audit log's name for the one who acts: the web account, or on the control socket the
  /// operator: the uid the kernel gives first, then the name dockctl says it runs as (a claim).
  std::optional<std::string> actor_of(const http::request<http::string_body>& req, const Caller& caller) {
    if (caller.local) {
      const auto said = std::string(header_value(req, "X-Operator"));
      return "operator " + caller.creds + (valid_account_name(said) ? ", says '" + said + "'" : std::string());
    }
    const auto* s = session_of(req);
    if (!s || s->role != Role::admin || !SessionStore::csrf_ok(*s, header_value(req, "X-CSRF-Token"))) return std::nullopt;
    return "admin " + s->user;
  }

  asio::awaitable<Reply> action(const http::request<http::string_body>& req, std::string name, const Caller& caller) {
    // route() let only an admin with the CSRF token, or the operator, get here.
    const std::string admin = actor_of(req, caller).value_or("?");  // the session may end while this action waits
    auto parsed = parse_action(name, req.body(), dock.config().slots);
    if (auto* refused = std::get_if<Reply>(&parsed)) co_return std::move(*refused);
    const auto a = std::get<AdminAction>(std::move(parsed));
    const auto& reason = a.reason;
    AuditEvent e;
    e.actor = admin;
    e.event = "admin action";
    e.details["action"] = name;
    e.details["from"] = caller.peer;
    e.why = reason.empty() ? name : name + ": " + reason;
    std::string done;
    using Kind = AdminAction::Kind;
    switch (a.kind) {
      case Kind::retry:
        dock.retry_now();
        done = "uploads retry now";
        break;
      case Kind::pause:
      case Kind::resume:
        dock.pause_uploads(a.kind == Kind::pause);
        done = a.kind == Kind::pause ? "uploads paused" : "uploads resumed";
        break;
      case Kind::power_cycle:
        if (!hooks.power_cycle) co_return error_reply(http::status::conflict, "this dock cannot switch its ports");
        if (auto err = hooks.power_cycle(a.slot)) co_return error_reply(http::status::conflict, *err);
        e.slot = a.slot;
        e.camera = dock.slots().at(a.slot - 1).serial;
        done = "slot " + std::to_string(a.slot) + " power-cycled";
        break;
      case Kind::revoke:
        if (auto err = co_await dock.revoke_camera(a.serial, admin, reason)) co_return error_reply(http::status::conflict, *err);
        e.camera = a.serial;
        done = "camera " + a.serial + " revoked at this dock";
        break;
      case Kind::reinstate:
        if (auto err = co_await dock.reinstate_camera(a.serial, admin, reason)) co_return error_reply(http::status::conflict, *err);
        e.camera = a.serial;
        done = "camera " + a.serial + " reinstated at this dock";
        break;
      case Kind::quarantine:
        if (auto err = co_await dock.decide_quarantine(a.serial, a.segment, a.release, admin, reason)) co_return error_reply(http::status::conflict, *err);
        e.camera = a.serial;
        e.segment = a.segment;
        done = "segment " + std::to_string(a.segment) + " of " + a.serial + (a.release ? " released: it is pulled and checked again" : " kept in quarantine");
        break;
    }
    status_ms = 0;  // the next status shows what the action changed
    log(Level::notice, "web page: ", admin, ": ", done, reason.empty() ? "" : " (", reason, reason.empty() ? "" : ")");
    // Revocations and quarantine decisions were audited by the dock, in the step that made them.
    if (a.kind != Kind::revoke && a.kind != Kind::reinstate && a.kind != Kind::quarantine) co_await dock.audit_by(std::move(e));
    co_return json_reply(http::status::ok, json::object{{"ok", true}, {"message", done}});
  }
};

WebServer::WebServer(asio::io_context& ioc, Dock& dock, WebOptions options, AdminHooks hooks)
    : impl_(std::make_unique<Impl>(ioc, dock, std::move(options), std::move(hooks))) {
  auto& o = impl_->opts;
  const std::string where = o.address + ":" + std::to_string(o.port);
  if (!o.tls_cert.empty()) {
    impl_->tls = std::make_unique<ssl::context>(ssl::context::tls_server);
    impl_->tls->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 | ssl::context::no_tlsv1 |
                            ssl::context::no_tlsv1_1);
    boost::system::error_code ec;
    impl_->tls->use_certificate_chain_file(o.tls_cert.string(), ec);
    if (ec) throw std::runtime_error("web page: cannot use certificate " + o.tls_cert.string() + ": " + ec.message());
    impl_->tls->use_private_key_file(o.tls_key.string(), ssl::context::pem, ec);
    if (ec) throw std::runtime_error("web page: cannot use key " + o.tls_key.string() + ": " + ec.message());
  }
  if (!o.accounts_file.empty()) {
    impl_->accounts = AccountStore::load(o.accounts_file);
    for (const auto& w : impl_->accounts.warnings) log(Level::warning, "web page: ", w);
  }
  boost::system::error_code ec;
  if (o.listen_tcp) {
    const tcp::endpoint ep(asio::ip::make_address(o.address, ec), o.port);
    if (ec) throw std::runtime_error("web page: '" + o.address + "' is not an IP address");
    auto& a = impl_->acceptor;
    a.open(ep.protocol(), ec);
    if (!ec) a.set_option(tcp::acceptor::reuse_address(true), ec);
    if (!ec) a.bind(ep, ec);
    if (!ec) a.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) throw std::runtime_error("web page: cannot listen on " + where + ": " + ec.message());
  }
  if (!o.control_socket.empty()) open_control_socket();
}

void WebServer::open_control_socket() {
  const auto& path = impl_->opts.control_socket;
  const std::string what = "control socket " + path.string() + ": ";
  if (path.string().size() >= sizeof(sockaddr_un::sun_path)) throw std::runtime_error(what + "the path is too long for a Unix socket");
  std::error_code fec;
  const auto st = std::filesystem::symlink_status(path, fec);
  if (st.type() == std::filesystem::file_type::socket) {
    // Left by a dock that stopped, or held by one that runs: only the first may be replaced.
    local::socket probe(impl_->ioc);
    boost::system::error_code ec;
    probe.connect(local::endpoint(path.string()), ec);
    if (!ec) throw std::runtime_error(what + "another dockd answers there");
    if (ec != boost::system::errc::connection_refused) throw std::runtime_error(what + "cannot tell whether it is in use (" + ec.message() + ")");
    std::filesystem::remove(path, fec);
  } else if (st.type() != std::filesystem::file_type::not_found) {
    throw std::runtime_error(what + "something else is there; not replacing it");
  }
  auto& a = impl_->control;
  boost::system::error_code ec;
  a.open(local{}, ec);
  if (!ec) a.bind(local::endpoint(path.string()), ec);
  // Before listen(): no one can connect while the socket still has the umask's permissions.
  if (!ec && ::chmod(path.c_str(), 0660) != 0) ec.assign(errno, boost::system::system_category());
  struct stat st_made {};
  if (!ec && ::lstat(path.c_str(), &st_made) != 0) ec.assign(errno, boost::system::system_category());
  if (!ec) {
    impl_->made_socket = {st_made.st_dev, st_made.st_ino};
  }
  if (!ec) a.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) throw std::runtime_error(what + "cannot listen: " + ec.message());
}

WebServer::~WebServer() {
  *impl_->alive = false;
  try {
    stop();
    impl_->kdf_pool.join();
  } catch (...) {
    // A destructor must not throw. Only a broken reactor or thread can make the timer cancel
    // in stop() or the join throw; there is nothing left to do about it here.
  }
}

void WebServer::start() {
  auto live = impl_->alive;
  if (impl_->acceptor.is_open())
    asio::co_spawn(impl_->ioc, impl_->accept_loop(impl_->acceptor, live), [](const std::exception_ptr& e) { log_if_failed("web page", e); });
  if (impl_->control.is_open()) {
    asio::co_spawn(impl_->ioc, impl_->accept_loop(impl_->control, live), [](const std::exception_ptr& e) { log_if_failed("control socket", e); });
    log(Level::notice, "control socket for dockctl at ", impl_->opts.control_socket.string());
  }
  asio::co_spawn(impl_->ioc, impl_->pusher(live), [](const std::exception_ptr& e) { log_if_failed("web page: live updates", e); });
  if (impl_->acceptor.is_open())
    log(Level::notice, "web page on ", url(), impl_->accounts.empty() ? " (no accounts: admin actions unavailable)" : "");
}

void WebServer::stop() {
  if (impl_->stopping) return;
  impl_->stopping = true;
  boost::system::error_code ec;
  impl_->acceptor.close(ec);
  impl_->control.close(ec);
  // Our socket file goes with us; one another dock has put there since is left alone.
  struct stat st {};
  const auto& path = impl_->opts.control_socket;
  if (impl_->made_socket && ::lstat(path.c_str(), &st) == 0 && std::pair{st.st_dev, st.st_ino} == *impl_->made_socket) ::unlink(path.c_str());
  impl_->made_socket.reset();
  impl_->pushed.notify();
}

std::uint16_t WebServer::port() const {
  boost::system::error_code ec;
  const auto ep = impl_->acceptor.local_endpoint(ec);
  return ec ? impl_->opts.port : ep.port();
}

std::string WebServer::url() const {
  if (!impl_->opts.listen_tcp) return "unix:" + impl_->opts.control_socket.string();
  const auto& a = impl_->opts.address;
  const bool v6 = a.find(':') != std::string::npos;
  return std::string(impl_->https() ? "https://" : "http://") + (v6 ? "[" + a + "]" : a) + ":" + std::to_string(port()) + "/";
}

}  // namespace bodydock::dock::web
