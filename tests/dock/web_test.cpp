// The web page's server against real sockets: the status API's schema, Prometheus metrics,
// live updates, logins, CSRF and every admin action, and hostile clients (traversal,
// oversized requests, slow clients, connection floods). The dock runs on its own thread with
// an emulated camera; the tests are plain blocking HTTP clients.
#include "dock/dock.hpp"
#include "dock/emulated_fleet.hpp"
#include "dock/local_sink.hpp"
#include "dock/log.hpp"
#include "dock/web/auth.hpp"
#include "dock/web/server.hpp"
#include "hw/camera_device.hpp"
#include "hw/emulated_link.hpp"
#include "support/fleet.hpp"
#include "support/sandbox.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/write.hpp>
#include <boost/json.hpp>
#include <boost/test/unit_test.hpp>

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <sys/time.h>

#include <fstream>
#include <future>
#include <sstream>
#include <thread>

using namespace bodydock;
namespace asio = boost::asio;
namespace json = boost::json;
using tcp = asio::ip::tcp;

namespace {

constexpr const char* kAdminPassword = "correct horse battery";
constexpr const char* kViewerPassword = "just looking around";

struct Answer {
  int status = 0;
  std::string head;
  std::string body;
  bool closed_without_answer = false;

  [[nodiscard]] std::string header(std::string name) const {
    std::istringstream in(head);
    std::string line;
    for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    while (std::getline(in, line)) {
      const auto colon = line.find(':');
      if (colon == std::string::npos) continue;
      std::string key = line.substr(0, colon);
      for (auto& c : key) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      if (key != name) continue;
      auto value = line.substr(colon + 1);
      while (!value.empty() && (value.front() == ' ')) value.erase(0, 1);
      while (!value.empty() && (value.back() == '\r' || value.back() == ' ')) value.pop_back();
      return value;
    }
    return {};
  }
  [[nodiscard]] json::value json_body() const { return json::parse(body); }
};

tcp::socket connect_to(asio::io_context& ioc, std::uint16_t port) {
  tcp::socket s(ioc);
  s.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
  timeval tv{10, 0};
  ::setsockopt(s.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return s;
}

/// Writes `request` as is on `stream` and reads the answer until the server closes.
template <typename Stream>
Answer send_and_read(Stream& s, const std::string& request) {
  boost::system::error_code ec;
  asio::write(s, asio::buffer(request), ec);
  std::string all;
  char buf[65536];
  for (;;) {
    const auto n = s.read_some(asio::buffer(buf), ec);
    all.append(buf, n);
    if (ec) break;
  }
  Answer a;
  const auto end = all.find("\r\n\r\n");
  if (all.size() < 12 || end == std::string::npos) {
    a.closed_without_answer = true;
    return a;
  }
  a.status = std::stoi(all.substr(9, 3));
  a.head = all.substr(0, end);
  a.body = all.substr(end + 4);
  return a;
}

Answer raw(std::uint16_t port, const std::string& request) {
  asio::io_context ioc;
  auto s = connect_to(ioc, port);
  return send_and_read(s, request);
}

std::string http_request(const std::string& method, const std::string& target, const std::string& host, const std::string& body,
                         const std::vector<std::pair<std::string, std::string>>& headers) {
  std::string r = method + " " + target + " HTTP/1.1\r\nHost: " + host + "\r\nConnection: close\r\n";
  for (const auto& [k, v] : headers) r += k + ": " + v + "\r\n";
  if (!body.empty() || method == "POST") r += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  return r + "\r\n" + body;
}

Answer request(std::uint16_t port, const std::string& method, const std::string& target, const std::string& body = {},
               const std::vector<std::pair<std::string, std::string>>& headers = {}) {
  return raw(port, http_request(method, target, "127.0.0.1:" + std::to_string(port), body, headers));
}

/// The same on the control socket (dockctl's way in).
Answer request_unix(const std::filesystem::path& socket, const std::string& method, const std::string& target, const std::string& body = {},
                    const std::vector<std::pair<std::string, std::string>>& headers = {}) {
  asio::io_context ioc;
  asio::local::stream_protocol::socket s(ioc);
  s.connect(asio::local::stream_protocol::endpoint(socket.string()));
  return send_and_read(s, http_request(method, target, "localhost", body, headers));
}

/// The same over TLS, trusting only `ca_file` (the fleet CA that issued the dock's certificate).
Answer raw_tls(std::uint16_t port, const std::filesystem::path& ca_file, const std::string& request) {
  asio::io_context ioc;
  asio::ssl::context ctx(asio::ssl::context::tls_client);
  ctx.load_verify_file(ca_file.string());
  asio::ssl::stream<tcp::socket> s(ioc, ctx);
  s.set_verify_mode(asio::ssl::verify_peer);
  s.next_layer() = connect_to(ioc, port);
  s.handshake(asio::ssl::stream_base::client);
  return send_and_read(s, request);
}

struct Login {
  std::string cookie;  ///< "bodydock_session=..."
  std::string csrf;
};

/// The dock (one emulated camera in slot 1) and its web page, on a thread of their own.
struct WebFixture {
  test::TempDir dir;
  asio::io_context ioc;
  asio::thread_pool sink_pool{2};
  dock::LocalDirSink sink{dir / "store", sink_pool};
  std::unique_ptr<dock::Dock> dock;
  std::unique_ptr<hw::CameraDevice> camera;
  std::unique_ptr<hw::EmulatedLink> link;
  std::unique_ptr<dock::web::WebServer> server;
  std::unique_ptr<asio::executor_work_guard<asio::io_context::executor_type>> guard;
  std::thread loop;
  std::uint16_t port = 0;
  std::vector<unsigned> power_cycled;

  explicit WebFixture(dock::web::WebOptions o = {}, std::uint32_t segments = 3, bool with_camera = true) {
    dock::web::AccountStore accounts;
    accounts.set("admin", dock::web::Role::admin, kAdminPassword, dock::web::ScryptParams{10, 8, 1});
    accounts.set("viewer", dock::web::Role::viewer, kViewerPassword, dock::web::ScryptParams{10, 8, 1});
    accounts.save(dir / "accounts");
    dock::DockConfig c;
    c.state_dir = dir / "state";
    c.identity = test::dock_identity();
    c.slots = 2;
    dock = std::make_unique<dock::Dock>(ioc, c, sink);
    o.address = "127.0.0.1";
    o.port = 0;
    o.accounts_file = dir / "accounts";
    o.push_interval = std::chrono::milliseconds(200);
    dock::web::AdminHooks hooks;
    hooks.power_cycle = [this](unsigned slot) -> std::optional<std::string> {
      power_cycled.push_back(slot);
      return std::nullopt;
    };
    server = std::make_unique<dock::web::WebServer>(ioc, *dock, o, hooks);
    port = server->port();
    server->start();
    asio::co_spawn(ioc, dock->run_uploader(), [](std::exception_ptr e) { bodydock::dock::log_if_failed("uploader", e); });
    if (with_camera) {
      hw::CameraSpec s;
      s.serial = "BC-0101";
      s.segments = segments;
      s.segment_bytes = 512 * 1024;
      s.chunk_size = 64 * 1024;
      s.seed = 3;
      s.trust = test::camera_keys(s.serial);
      camera = std::make_unique<hw::CameraDevice>(s);
      link = std::make_unique<hw::EmulatedLink>(ioc.get_executor(), *camera, "emulated:1");
      asio::co_spawn(ioc, dock->run_session(1, *link), [](std::exception_ptr e, bodydock::dock::SessionEnd) { bodydock::dock::log_if_failed("session", e); });
    }
    guard = std::make_unique<asio::executor_work_guard<asio::io_context::executor_type>>(ioc.get_executor());
    loop = std::thread([this] { ioc.run(); });
  }

  ~WebFixture() {
    asio::post(ioc, [this] {
      dock->stop();
      server->stop();
      if (link) link->close();
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(200));  // sessions see their links close
    guard.reset();
    ioc.stop();
    loop.join();
    sink_pool.join();
  }

  json::object status() {
    const auto a = request(port, "GET", "/api/v1/status");
    BOOST_REQUIRE_EQUAL(a.status, 200);
    return a.json_body().as_object();
  }

  /// Polls the status until `pred` holds (bounded).
  template <typename P>
  json::object wait_status(P pred, std::chrono::seconds limit = std::chrono::seconds(30)) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    for (;;) {
      auto s = status();
      if (pred(s)) return s;
      BOOST_REQUIRE_MESSAGE(std::chrono::steady_clock::now() < deadline, "status never reached the expected state: " << json::serialize(s));
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }

  Login login(const std::string& user, const std::string& password) {
    const auto a = request(port, "POST", "/api/v1/login", json::serialize(json::object{{"user", user}, {"password", password}}),
                           {{"Content-Type", "application/json"}});
    BOOST_REQUIRE_MESSAGE(a.status == 200, "login: " << a.status << " " << a.body);
    auto cookie = a.header("Set-Cookie");
    cookie = cookie.substr(0, cookie.find(';'));
    return {cookie, std::string(a.json_body().at("csrf").as_string())};
  }

  Answer act(const Login& l, const std::string& name, const json::object& body, bool with_csrf = true) {
    std::vector<std::pair<std::string, std::string>> h = {{"Content-Type", "application/json"}, {"Cookie", l.cookie}};
    if (with_csrf) h.emplace_back("X-CSRF-Token", l.csrf);
    return request(port, "POST", "/api/v1/actions/" + name, json::serialize(body), h);
  }

  std::string audit_log() const { return test::slurp_text(dir / "state" / "audit" / "audit.log"); }
};

bool has_keys(const json::object& o, std::initializer_list<const char*> keys) {
  for (const auto* k : keys)
    if (!o.contains(k)) {
      BOOST_ERROR("missing key '" << k << "' in " << json::serialize(o));
      return false;
    }
  return true;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(status_api)

BOOST_AUTO_TEST_CASE(status_json_has_the_contracted_schema_and_follows_a_docking_to_done) {
  WebFixture f;
  const auto st = f.wait_status([](const json::object& s) {
    const auto& slot = s.at("slots").as_array().at(0).as_object();
    const bool purged = s.at("queue").at("segments_by_state").at("PURGED").to_number<int>() == 3;  // the spool's copies go last
    return (slot.at("state") == "done" || slot.at("state") == "charging") && purged;
  });
  BOOST_TEST(has_keys(st, {"slots", "queue", "uplink", "spool", "events", "dock", "time_ms"}));
  const auto& slots = st.at("slots").as_array();
  BOOST_REQUIRE_EQUAL(slots.size(), 2u);
  for (const auto& v : slots) {
    const auto& s = v.as_object();
    BOOST_TEST(has_keys(s, {"slot", "state", "led", "serial", "officer", "battery", "bytes_done", "bytes_total", "mbps", "eta_s", "detail"}));
    BOOST_TEST(has_keys(s.at("led").as_object(), {"colour", "pattern", "on_ms", "off_ms"}));
    BOOST_TEST(s.at("slot").is_int64());
    BOOST_TEST(s.at("bytes_done").is_number());
  }
  const auto& one = slots.at(0).as_object();
  BOOST_TEST(one.at("serial") == "BC-0101");
  BOOST_TEST(one.at("officer") == "officer-BC-0101");
  BOOST_TEST(one.at("battery").is_int64());
  BOOST_TEST(one.at("bytes_done") == one.at("bytes_total"));
  // Three segments of 512 KiB of footage, encrypted on the camera (a small header and tag each).
  BOOST_TEST(one.at("bytes_total").to_number<std::uint64_t>() >= 3u * 512 * 1024);
  BOOST_TEST(one.at("bytes_total").to_number<std::uint64_t>() < 3u * 512 * 1024 + 4096);
  BOOST_TEST(one.at("led").at("colour") == "green");
  BOOST_TEST(one.at("safe_to_take") == true);
  const auto& two = slots.at(1).as_object();
  BOOST_TEST(two.at("state") == "empty");
  BOOST_TEST(two.at("serial").is_null());
  BOOST_TEST(two.at("led").at("colour") == "off");
  BOOST_TEST(has_keys(st.at("queue").as_object(), {"items", "bytes", "oldest_waiting_s", "segments_by_state"}));
  BOOST_TEST(has_keys(st.at("uplink").as_object(), {"state", "paused", "alert", "retries", "errors", "stored_bytes", "history"}));
  BOOST_TEST(has_keys(st.at("spool").as_object(), {"used_bytes", "limit_bytes", "free_bytes"}));
  BOOST_TEST(st.at("uplink").at("stored_segments").to_number<int>() == 3);
  BOOST_TEST(st.at("queue").at("segments_by_state").at("PURGED").to_number<int>() == 3);
  BOOST_TEST(!st.at("events").as_array().empty());
}

BOOST_AUTO_TEST_CASE(metrics_are_valid_prometheus_text) {
  WebFixture f;
  // Stored, erased on the camera and purged from the spool: the counts below no longer move.
  const auto st = f.wait_status([](const json::object& s) {
    return s.at("uplink").at("stored_segments").to_number<int>() == 3 && s.at("queue").at("segments_by_state").at("PURGED").to_number<int>() == 3;
  });
  const auto stored = st.at("uplink").at("stored_bytes").to_number<std::uint64_t>();
  const auto a = request(f.port, "GET", "/metrics");
  BOOST_REQUIRE_EQUAL(a.status, 200);
  BOOST_TEST(a.header("Content-Type").starts_with("text/plain; version=0.0.4"));
  // Every sample: name{labels} value, its family declared by HELP and TYPE before it.
  std::set<std::string> typed, helped, names;
  std::istringstream in(a.body);
  std::string line;
  std::size_t samples = 0;
  while (std::getline(in, line)) {
    BOOST_REQUIRE_MESSAGE(!line.empty(), "blank line in metrics");
    if (line.starts_with("# HELP ")) {
      helped.insert(line.substr(7, line.find(' ', 7) - 7));
      continue;
    }
    if (line.starts_with("# TYPE ")) {
      const auto name = line.substr(7, line.find(' ', 7) - 7);
      const auto type = line.substr(line.rfind(' ') + 1);
      BOOST_TEST((type == "counter" || type == "gauge"), line);
      typed.insert(name);
      continue;
    }
    BOOST_REQUIRE_MESSAGE(line.front() != '#', "unexpected comment: " << line);
    const auto name_end = line.find_first_of("{ ");
    BOOST_REQUIRE(name_end != std::string::npos);
    const auto name = line.substr(0, name_end);
    BOOST_TEST(std::all_of(name.begin(), name.end(), [](unsigned char c) { return std::isalnum(c) || c == '_' || c == ':'; }), line);
    BOOST_TEST(typed.contains(name), "sample before its TYPE: " << line);
    BOOST_TEST(helped.contains(name), "sample before its HELP: " << line);
    std::string rest = line.substr(name_end);
    if (rest.front() == '{') {
      const auto close = rest.find('}');
      BOOST_REQUIRE_MESSAGE(close != std::string::npos, line);
      const auto labels = rest.substr(1, close - 1);
      std::size_t i = 0;
      while (i < labels.size()) {  // key="value"(,key="value")*
        const auto eq = labels.find("=\"", i);
        BOOST_REQUIRE_MESSAGE(eq != std::string::npos, line);
        auto j = eq + 2;
        while (j < labels.size() && labels[j] != '"') j += labels[j] == '\\' ? 2 : 1;
        BOOST_REQUIRE_MESSAGE(j < labels.size(), line);
        i = j + 1;
        if (i < labels.size()) {
          BOOST_REQUIRE_MESSAGE(labels[i] == ',', line);
          ++i;
        }
      }
      rest = rest.substr(close + 1);
    }
    BOOST_REQUIRE_MESSAGE(rest.size() > 1 && rest.front() == ' ', line);
    std::size_t used = 0;
    (void)std::stod(rest.substr(1), &used);
    BOOST_TEST(used == rest.size() - 1, line);
    names.insert(name);
    ++samples;
  }
  for (const char* want : {"bodydock_pulled_bytes_total", "bodydock_stored_bytes_total", "bodydock_segments", "bodydock_queue_segments",
                           "bodydock_upload_retries_total", "bodydock_upload_errors_total", "bodydock_slot_state", "bodydock_slot_battery_percent",
                           "bodydock_spool_bytes"})
    BOOST_TEST(names.contains(want), want);
  BOOST_TEST(a.body.find("bodydock_stored_bytes_total " + std::to_string(stored) + "\n") != std::string::npos);
  BOOST_TEST(a.body.find("bodydock_segments{state=\"PURGED\"} 3\n") != std::string::npos);
  BOOST_TEST(samples > 30u);
}

BOOST_AUTO_TEST_CASE(events_stream_pushes_status_without_polling) {
  WebFixture f;
  asio::io_context ioc;
  auto s = connect_to(ioc, f.port);
  const std::string req = "GET /api/v1/events HTTP/1.1\r\nHost: x\r\n\r\n";
  asio::write(s, asio::buffer(req));
  std::string got;
  char buf[65536];
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  std::size_t events = 0;
  while (events < 3 && std::chrono::steady_clock::now() < deadline) {
    boost::system::error_code ec;
    const auto n = s.read_some(asio::buffer(buf), ec);
    BOOST_REQUIRE_MESSAGE(!ec, "event stream ended: " << ec.message());
    got.append(buf, n);
    events = 0;
    for (auto p = got.find("event: status\ndata: {"); p != std::string::npos; p = got.find("event: status\ndata: {", p + 1)) ++events;
  }
  BOOST_TEST(got.starts_with("HTTP/1.1 200 OK\r\n"));
  BOOST_TEST(got.find("Content-Type: text/event-stream") != std::string::npos);
  BOOST_TEST(events >= 3u, "three pushes within 10 s (every 200 ms in this test)");
}

BOOST_AUTO_TEST_CASE(the_page_and_its_assets_come_from_the_dock_itself) {
  WebFixture f({}, 1, false);
  const auto page = request(f.port, "GET", "/");
  BOOST_REQUIRE_EQUAL(page.status, 200);
  BOOST_TEST(page.header("Content-Type") == "text/html; charset=utf-8");
  BOOST_TEST(page.header("Content-Security-Policy").find("default-src 'self'") != std::string::npos);
  BOOST_TEST(page.header("X-Frame-Options") == "DENY");
  // No external asset: every src/href is a local path.
  for (const char* external : {"src=\"http", "href=\"http", "src=\"//", "href=\"//", "url(http"})
    BOOST_TEST(page.body.find(external) == std::string::npos, external);
  for (const char* asset : {"/app.js", "/app.css"}) {
    const auto a = request(f.port, "GET", asset);
    BOOST_TEST(a.status == 200, asset);
    BOOST_TEST(!a.header("ETag").empty());
    const auto again = request(f.port, "GET", asset, {}, {{"If-None-Match", a.header("ETag")}});
    BOOST_TEST(again.status == 304, asset);
  }
  const auto js = request(f.port, "GET", "/app.js");
  BOOST_TEST(js.body.find("klaar, mag mee") != std::string::npos, "Dutch texts are in the page");
}

BOOST_AUTO_TEST_CASE(https_with_the_docks_own_certificate) {
  test::TempDir keys;
  dock::EmulatedFleet world(keys / "world");
  world.dock("web-dock", keys / "trust");
  dock::web::WebOptions o;
  o.tls_cert = keys / "trust" / "dock.crt";
  o.tls_key = keys / "trust" / "dock.key";
  WebFixture f(o, 1, false);
  const auto ca = keys / "trust" / "ca.crt";
  const auto a = raw_tls(f.port, ca, "GET /api/v1/status HTTP/1.1\r\nHost: dock\r\nConnection: close\r\n\r\n");
  BOOST_REQUIRE_EQUAL(a.status, 200);
  BOOST_TEST(a.header("Strict-Transport-Security") == "max-age=31536000");
  BOOST_TEST(json::parse(a.body).at("slots").as_array().size() == 2u);
  // Over HTTPS the session cookie is Secure.
  const std::string login = json::serialize(json::object{{"user", "admin"}, {"password", kAdminPassword}});
  const auto l = raw_tls(f.port, ca,
                         "POST /api/v1/login HTTP/1.1\r\nHost: dock\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: " +
                             std::to_string(login.size()) + "\r\n\r\n" + login);
  BOOST_REQUIRE_EQUAL(l.status, 200);
  BOOST_TEST(l.header("Set-Cookie").find("; Secure") != std::string::npos);
  // Plain HTTP to the HTTPS port gets no answer, and the server keeps serving.
  const auto plain = request(f.port, "GET", "/api/v1/status");
  BOOST_TEST(plain.closed_without_answer);
  BOOST_TEST(raw_tls(f.port, ca, "GET / HTTP/1.1\r\nHost: dock\r\nConnection: close\r\n\r\n").status == 200);
}

BOOST_AUTO_TEST_CASE(a_bad_listen_address_or_certificate_is_refused_clearly) {
  BOOST_CHECK_THROW(dock::web::parse_listen("localhost:8080"), std::invalid_argument);
  BOOST_CHECK_THROW(dock::web::parse_listen("127.0.0.1"), std::invalid_argument);
  BOOST_CHECK_THROW(dock::web::parse_listen("127.0.0.1:65536"), std::invalid_argument);
  BOOST_TEST(dock::web::parse_listen("[::1]:8443").first == "::1");
  BOOST_TEST(dock::web::parse_listen("0.0.0.0:443").second == 443);
  dock::web::WebOptions o;
  o.tls_cert = "/nonexistent/dock.crt";
  o.tls_key = "/nonexistent/dock.key";
  try {
    WebFixture f(o, 1, false);
    BOOST_ERROR("a missing certificate was accepted");
  } catch (const std::runtime_error& e) {
    BOOST_TEST(std::string(e.what()).find("/nonexistent/dock.crt") != std::string::npos, e.what());
  }
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(hostile_clients)

BOOST_AUTO_TEST_CASE(traversal_and_odd_paths_are_refused) {
  WebFixture f({}, 1, false);
  for (const char* target : {"/../etc/passwd", "/%2e%2e/etc/passwd", "/app.js/../../etc/passwd", "/..%2fstate", "/\\..\\dock.key",
                             "//etc/passwd", "/assets/..", "/index.html%00", "/state/trust/dock.key", "/dock.sqlite"}) {
    const auto a = request(f.port, "GET", target);
    BOOST_TEST((a.status == 400 || a.status == 404), target << " answered " << a.status);
    BOOST_TEST(a.body.find("PRIVATE KEY") == std::string::npos);
    BOOST_TEST(a.body.find("root:") == std::string::npos);
  }
  const auto not_origin_form = request(f.port, "GET", "http://example.org/");
  BOOST_TEST(not_origin_form.status == 400);
  const auto method = request(f.port, "DELETE", "/api/v1/status");
  BOOST_TEST(method.status == 405);
  BOOST_TEST(method.header("Allow") == "GET, POST");
}

BOOST_AUTO_TEST_CASE(oversized_headers_and_bodies_are_refused) {
  WebFixture f({}, 1, false);
  const auto big_header = request(f.port, "GET", "/api/v1/status", {}, {{"X-Padding", std::string(20000, 'a')}});
  BOOST_TEST((big_header.status == 413 || big_header.status == 431 || big_header.closed_without_answer), big_header.status);
  const auto big_body = request(f.port, "POST", "/api/v1/login", std::string(100000, '{'), {{"Content-Type", "application/json"}});
  BOOST_TEST(big_body.status == 413);
  const auto garbage = raw(f.port, "NOT HTTP AT ALL\r\n\r\n");
  BOOST_TEST(garbage.status == 400);
  // The server is still serving.
  BOOST_TEST(request(f.port, "GET", "/api/v1/status").status == 200);
}

BOOST_AUTO_TEST_CASE(a_slow_client_is_cut_off_and_others_are_served_meanwhile) {
  dock::web::WebOptions o;
  o.request_timeout = std::chrono::milliseconds(500);
  WebFixture f(o, 1, false);
  asio::io_context ioc;
  auto slow = connect_to(ioc, f.port);
  const auto t0 = std::chrono::steady_clock::now();
  asio::write(slow, asio::buffer(std::string("GET /api/v1/status HTTP/1.1\r\nHost: x\r\n")));  // never finishes its headers
  BOOST_TEST(request(f.port, "GET", "/api/v1/status").status == 200);  // served while the slow one hangs
  for (int i = 0; i < 3; ++i) {
    asio::write(slow, asio::buffer(std::string("X-Drip: 1\r\n")));  // dripping bytes does not extend the deadline
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  char buf[256];
  boost::system::error_code ec;
  const auto n = slow.read_some(asio::buffer(buf), ec);
  const auto took = std::chrono::steady_clock::now() - t0;
  BOOST_TEST((ec == asio::error::eof || ec == asio::error::connection_reset), ec.message() << " after " << n << " bytes");
  BOOST_TEST(took < std::chrono::seconds(3));
}

BOOST_AUTO_TEST_CASE(a_connection_flood_is_bounded) {
  dock::web::WebOptions o;
  o.max_connections = 4;
  WebFixture f(o, 1, false);
  asio::io_context ioc;
  std::vector<tcp::socket> held;
  for (int i = 0; i < 4; ++i) held.push_back(connect_to(ioc, f.port));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  const auto refused = request(f.port, "GET", "/api/v1/status");
  BOOST_TEST(refused.status == 503);
  BOOST_TEST(refused.header("Retry-After") == "5");
  held.clear();
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  BOOST_TEST(request(f.port, "GET", "/api/v1/status").status == 200);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(admin_access)

BOOST_AUTO_TEST_CASE(every_admin_action_needs_a_login_an_admin_and_the_csrf_token) {
  WebFixture f({}, 1, false);
  const std::vector<std::pair<std::string, json::object>> actions = {
      {"retry", {}},
      {"pause", {{"reason", "maintenance"}}},
      {"resume", {}},
      {"power-cycle", {{"slot", 1}}},
      {"revoke", {{"serial", "BC-0999"}, {"reason", "reported stolen"}}},
      {"quarantine", {{"serial", "BC-0101"}, {"segment", 1}, {"decision", "keep"}, {"reason", "evidence"}}},
  };
  const auto viewer = f.login("viewer", kViewerPassword);
  const auto admin = f.login("admin", kAdminPassword);
  const std::string planted = "bodydock_session=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
  for (const auto& [name, body] : actions) {
    BOOST_TEST_CONTEXT(name) {
      const auto none = request(f.port, "POST", "/api/v1/actions/" + name, json::serialize(body), {{"Content-Type", "application/json"}});
      BOOST_TEST(none.status == 401);
      BOOST_TEST(f.act(Login{planted, "x"}, name, body).status == 401);
      BOOST_TEST(f.act(viewer, name, body).status == 403);
      BOOST_TEST(f.act(admin, name, body, false).status == 403);
      BOOST_TEST(f.act(Login{admin.cookie, viewer.csrf}, name, body).status == 403);
      // A form post from another site cannot carry JSON without a preflight the dock never grants.
      const auto form = request(f.port, "POST", "/api/v1/actions/" + name, "reason=x",
                                {{"Content-Type", "application/x-www-form-urlencoded"}, {"Cookie", admin.cookie}, {"X-CSRF-Token", admin.csrf}});
      BOOST_TEST(form.status == 415);
      const auto cross = request(f.port, "POST", "/api/v1/actions/" + name, json::serialize(body),
                                 {{"Content-Type", "application/json"}, {"Cookie", admin.cookie}, {"X-CSRF-Token", admin.csrf},
                                  {"Origin", "http://evil.example"}});
      BOOST_TEST(cross.status == 403);
    }
  }
  // Nothing above acted: no admin action in the audit log yet.
  BOOST_TEST(f.audit_log().find("\"admin action\"") == std::string::npos);
  BOOST_TEST(f.power_cycled.empty());

  // Done properly, each acts and is audited with who, what and why.
  BOOST_TEST(f.act(admin, "pause", {{"reason", "switch maintenance"}}).status == 200);
  BOOST_TEST(f.status().at("uplink").at("paused") == true);
  BOOST_TEST(f.act(admin, "resume", {}).status == 200);
  BOOST_TEST(f.status().at("uplink").at("paused") == false);
  BOOST_TEST(f.act(admin, "retry", {}).status == 200);
  BOOST_TEST(f.act(admin, "power-cycle", {{"slot", 2}}).status == 200);
  BOOST_TEST(f.act(admin, "power-cycle", {{"slot", 9}}).status == 400);
  BOOST_TEST(f.act(admin, "revoke", {{"serial", "BC-0999"}}).status == 400, "a revocation needs a written reason");
  BOOST_TEST(f.act(admin, "revoke", {{"serial", "BC-0999"}, {"reason", "reported stolen"}}).status == 200);
  BOOST_TEST(f.act(admin, "revoke", {{"serial", "../x"}, {"reason", "r"}}).status == 409);
  BOOST_TEST(f.act(admin, "quarantine", {{"serial", "BC-0101"}, {"segment", 1}, {"decision", "keep"}, {"reason", "x"}}).status == 409,
             "not quarantined");
  BOOST_TEST(f.act(admin, "no-such-thing", {}).status == 404);
  BOOST_TEST(f.power_cycled == std::vector<unsigned>{2});
  const auto audit = f.audit_log();
  BOOST_TEST(audit.find("\"actor\":\"admin admin\"") != std::string::npos);
  BOOST_TEST(audit.find("pause: switch maintenance") != std::string::npos);
  BOOST_TEST(audit.find("\"action\":\"resume\"") != std::string::npos);
  BOOST_TEST(audit.find("\"action\":\"power-cycle\"") != std::string::npos);
  BOOST_TEST(audit.find("camera revoked at this dock: reported stolen") != std::string::npos);
  BOOST_TEST(audit.find(kAdminPassword) == std::string::npos);
  BOOST_TEST(audit.find(admin.csrf) == std::string::npos);
  BOOST_TEST(audit.find(admin.cookie.substr(17)) == std::string::npos);
}

BOOST_AUTO_TEST_CASE(logins_are_rate_limited_and_never_fixate_a_session) {
  WebFixture f({}, 1, false);
  const auto wrong = [&f] {
    return request(f.port, "POST", "/api/v1/login", R"({"user":"admin","password":"guess"})", {{"Content-Type", "application/json"}});
  };
  // Five failures are free; after that each one locks the name and the address out for longer.
  for (int i = 0; i < 6; ++i) BOOST_TEST(wrong().status == 401);
  const auto blocked = wrong();
  BOOST_TEST(blocked.status == 429);
  BOOST_TEST(!blocked.header("Retry-After").empty());
  BOOST_TEST(f.audit_log().find("login refused") != std::string::npos);
  // A cookie planted before login is not adopted: the login answers with a new id.
  WebFixture g({}, 1, false);
  const std::string planted = "bodydock_session=BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB";
  const auto a = request(g.port, "POST", "/api/v1/login", json::serialize(json::object{{"user", "admin"}, {"password", kAdminPassword}}),
                         {{"Content-Type", "application/json"}, {"Cookie", planted}});
  BOOST_REQUIRE_EQUAL(a.status, 200);
  const auto cookie = a.header("Set-Cookie");
  BOOST_TEST(cookie.find(planted) == std::string::npos);
  BOOST_TEST(cookie.find("HttpOnly") != std::string::npos);
  BOOST_TEST(cookie.find("SameSite=Strict") != std::string::npos);
  const auto l1 = g.login("admin", kAdminPassword);
  const auto l2 = g.login("admin", kAdminPassword);
  BOOST_TEST(l1.cookie != l2.cookie);
  // Logged out, the session is gone.
  const auto out = request(g.port, "POST", "/api/v1/logout", "{}",
                           {{"Content-Type", "application/json"}, {"Cookie", l1.cookie}, {"X-CSRF-Token", l1.csrf}});
  BOOST_TEST(out.status == 200);
  BOOST_TEST(g.act(l1, "retry", {}).status == 401);
  BOOST_TEST(g.act(l2, "retry", {}).status == 200);
}

BOOST_AUTO_TEST_CASE(a_private_status_needs_a_login) {
  dock::web::WebOptions o;
  o.status_public = false;
  WebFixture f(o, 1, false);
  BOOST_TEST(request(f.port, "GET", "/api/v1/status").status == 401);
  BOOST_TEST(request(f.port, "GET", "/metrics").status == 401);
  BOOST_TEST(request(f.port, "GET", "/api/v1/events").status == 401);
  BOOST_TEST(request(f.port, "GET", "/").status == 200, "the page itself (with its login form) is public");
  const auto l = f.login("viewer", kViewerPassword);
  BOOST_TEST(request(f.port, "GET", "/api/v1/status", {}, {{"Cookie", l.cookie}}).status == 200);
}

// The control socket serves the same API to dockctl: the operator acts without a login (the
// socket's permissions are the lock) and is named in the audit log; the camera and queue lists
// are not public on the page. A second dock cannot take a socket in use, nor replace a file.
BOOST_AUTO_TEST_CASE(the_control_socket_serves_the_operator_and_lists_need_a_login) {
  test::TempDir sockets;
  dock::web::WebOptions o;
  o.control_socket = sockets / "control.sock";
  WebFixture f(o, 2);
  f.wait_status([](const json::object& s) { return s.at("slots").as_array()[0].as_object().at("safe_to_take") == true; });
  // On the page: the lists need a login (any role).
  BOOST_TEST(request(f.port, "GET", "/api/v1/cameras").status == 401);
  BOOST_TEST(request(f.port, "GET", "/api/v1/queue").status == 401);
  const auto viewer = f.login("viewer", kViewerPassword);
  const auto listed = request(f.port, "GET", "/api/v1/cameras", {}, {{"Cookie", viewer.cookie}});
  BOOST_REQUIRE_EQUAL(listed.status, 200);
  const auto cameras = listed.json_body();
  const auto& cam = cameras.at("cameras").as_array().at(0).as_object();
  BOOST_TEST(cam.at("serial") == "BC-0101");
  BOOST_TEST(cam.at("slot") == 1);
  BOOST_TEST(cam.at("revoked").is_null());
  BOOST_TEST(cam.at("officer") == "officer-BC-0101");
  BOOST_TEST(cam.at("last_seen_ms").as_int64() > 0);
  BOOST_TEST(cam.at("segments").as_object().empty(), "stored, erased and purged: nothing of it left here");
  // On the socket: no login, the same answers, and actions.
  const auto q = request_unix(o.control_socket, "GET", "/api/v1/queue");
  BOOST_REQUIRE_EQUAL(q.status, 200);
  BOOST_TEST(q.json_body().at("items").as_array().empty());
  BOOST_TEST(q.json_body().at("total_segments") == 0);
  BOOST_TEST(q.json_body().at("paused") == false);
  const auto revoked = request_unix(o.control_socket, "POST", "/api/v1/actions/revoke",
                                    json::serialize(json::object{{"serial", "BC-0101"}, {"reason", "reported stolen"}}),
                                    {{"Content-Type", "application/json"}, {"X-Operator", "ops-jan"}});
  BOOST_TEST(revoked.status == 200, revoked.body);
  const auto again = request_unix(o.control_socket, "GET", "/api/v1/cameras");
  const auto now = again.json_body();
  const auto actor = "operator uid " + std::to_string(::geteuid());
  BOOST_TEST(std::string(now.at("cameras").as_array().at(0).at("revoked").as_string()).find(actor) == 0, again.body);
  BOOST_TEST(f.audit_log().find(actor) != std::string::npos);
  BOOST_TEST(f.audit_log().find(", says 'ops-jan'") != std::string::npos);
  // Still JSON only; no login there.
  BOOST_TEST(request_unix(o.control_socket, "POST", "/api/v1/actions/pause", "reason=x", {{"Content-Type", "application/x-www-form-urlencoded"}}).status == 415);
  BOOST_TEST(request_unix(o.control_socket, "POST", "/api/v1/login", "{}", {{"Content-Type", "application/json"}}).status == 400);
  // The page's actions still need a login, an admin and the CSRF token.
  BOOST_TEST(request(f.port, "POST", "/api/v1/actions/pause", "{}", {{"Content-Type", "application/json"}}).status == 401);
  // A second dock on the same socket is refused; so is a path that is not a socket.
  dock::DockConfig c;
  c.state_dir = f.dir / "state2";
  c.identity = test::dock_identity();
  c.slots = 1;
  asio::io_context other_ioc;
  dock::Dock other(other_ioc, c, f.sink);
  dock::web::WebOptions o2;
  o2.listen_tcp = false;
  o2.control_socket = o.control_socket;
  BOOST_CHECK_EXCEPTION(dock::web::WebServer(other_ioc, other, o2), std::runtime_error,
                        [](const std::runtime_error& e) { return std::string(e.what()).find("another dockd answers there") != std::string::npos; });
  std::ofstream(sockets / "plain") << "x";
  o2.control_socket = sockets / "plain";
  BOOST_CHECK_EXCEPTION(dock::web::WebServer(other_ioc, other, o2), std::runtime_error,
                        [](const std::runtime_error& e) { return std::string(e.what()).find("not replacing it") != std::string::npos; });
  std::filesystem::create_symlink(o.control_socket, sockets / "link");
  o2.control_socket = sockets / "link";
  BOOST_CHECK_EXCEPTION(dock::web::WebServer(other_ioc, other, o2), std::runtime_error,
                        [](const std::runtime_error& e) { return std::string(e.what()).find("not replacing it") != std::string::npos; });
  // A socket left by a dock that died is taken over, and removed again when this one stops.
  const auto stale = sockets / "stale.sock";
  {
    const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::snprintf(a.sun_path, sizeof a.sun_path, "%s", stale.c_str());
    BOOST_REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    ::close(fd);  // never listened, never removed: connecting is refused
  }
  o2.control_socket = stale;
  {
    dock::web::WebServer taken(other_ioc, other, o2);
    taken.start();
    BOOST_TEST(std::filesystem::is_socket(stale));
    taken.stop();
    BOOST_TEST(!std::filesystem::exists(stale));
  }
}

BOOST_AUTO_TEST_CASE(quarantine_decisions_keep_or_release_a_segment) {
  WebFixture f({}, 3, false);
  // A camera whose segment 2 keeps arriving corrupt: quarantined, the slot shows attention.
  hw::CameraSpec s;
  s.serial = "BC-0102";
  s.segments = 3;
  s.segment_bytes = 256 * 1024;
  s.chunk_size = 64 * 1024;
  s.seed = 5;
  s.trust = test::camera_keys(s.serial);
  hw::CameraDevice cam(s);
  cam.faults().corrupt_chunk[{2, 1}] = 0xFFFFFFFFu;
  hw::EmulatedLink link(f.ioc.get_executor(), cam, "emulated:2");
  std::promise<dock::SessionEnd> ended;
  asio::post(f.ioc, [&] {
    asio::co_spawn(f.ioc, f.dock->run_session(2, link), [&ended](std::exception_ptr, dock::SessionEnd e) { ended.set_value(e); });
  });
  auto end = ended.get_future();
  BOOST_REQUIRE(end.wait_for(std::chrono::seconds(60)) == std::future_status::ready);
  BOOST_REQUIRE(end.get() == dock::SessionEnd::attention);
  auto st = f.wait_status([](const json::object& j) { return !j.at("quarantine").as_array().empty(); });
  const auto& q = st.at("quarantine").as_array().at(0).as_object();
  BOOST_TEST(q.at("serial") == "BC-0102");
  BOOST_TEST(q.at("segment").to_number<int>() == 2);
  BOOST_TEST(q.at("kept") == false);
  const auto admin = f.login("admin", kAdminPassword);
  BOOST_TEST(f.act(admin, "quarantine", {{"serial", "BC-0102"}, {"segment", 2}, {"decision", "keep"}}).status == 400, "needs a reason");
  BOOST_TEST(f.act(admin, "quarantine", {{"serial", "BC-0102"}, {"segment", 2}, {"decision", "keep"}, {"reason", "case 2026-118"}}).status == 200);
  st = f.status();
  BOOST_TEST(st.at("quarantine").at(0).at("kept") == true);
  BOOST_TEST(f.audit_log().find("kept in quarantine by admin admin: case 2026-118") != std::string::npos);
  // Released instead: back to LISTED, pulled and checked again at the next docking.
  BOOST_TEST(f.act(admin, "quarantine", {{"serial", "BC-0102"}, {"segment", 2}, {"decision", "release"}, {"reason", "retry after cleaning"}}).status == 200);
  st = f.status();
  BOOST_TEST(st.at("quarantine").as_array().empty());
  BOOST_TEST(st.at("queue").at("segments_by_state").at("LISTED").to_number<int>() == 1);
  BOOST_TEST(f.audit_log().find("released by admin admin: retry after cleaning") != std::string::npos);
}

BOOST_AUTO_TEST_SUITE_END()
