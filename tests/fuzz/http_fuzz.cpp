// libFuzzer target over the web page's request handling (dock/web/routing, auth): bytes as they
// come off a connection go through Beast's request parser with the server's limits, and every
// request parsed is routed as the server routes it (dock/web/server.cpp calls the same route()),
// with a login's or an admin action's body checked as the server checks it. Up to 8 pipelined
// requests a connection, against one admin's and one viewer's session. Beyond ASan and UBSan it
// checks:
//   - every answer has a status the page uses, a JSON body when it says JSON, no CR, LF or NUL
//     in a header, and goes on the wire as a response that parses back the same (with the
//     security headers);
//   - nothing that needs a login gets past routing without a real session id in the Cookie
//     header; no admin action without the admin's id and the exact CSRF token, JSON, and a
//     same-origin (or no) Origin; viewers get no action; the control socket needs none of it;
//   - a session ends only by a logout carrying its CSRF token; routing makes no session;
//   - no answer carries a session's id, nor its CSRF token unless that session asked;
//   - only the embedded files are served, and nothing past routing has an unclean path;
//   - a checked login or action body holds what the server relies on (lengths, slot range,
//     required reasons).
//
// Input: byte 0 sets the page up: bit 0 the caller is on the control socket, bit 1 the status
// needs a login, bit 2 HTTPS; the rest is what the client sends. In it, @ADMIN@ and @VIEWER@
// stand for the two sessions' ids and @CSRF@ and @VCSRF@ for their CSRF tokens (random, so the
// fuzzer could never guess them), so inputs can reach what lies behind a login.
#include "dock/web/assets.hpp"
#include "dock/web/auth.hpp"
#include "dock/web/routing.hpp"

#include <boost/asio/buffer.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/json/parse.hpp>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <string_view>

using namespace bodydock::dock::web;
namespace http = boost::beast::http;

namespace {

constexpr std::size_t kHeaderLimit = 8 * 1024;  // WebOptions' defaults, as the server sets its parser
constexpr std::size_t kBodyLimit = 16 * 1024;
constexpr unsigned kSlots = 4;
constexpr int kMaxRequests = 8;

[[noreturn]] void broken(const char* what, std::string_view detail = {}) {
  std::fprintf(stderr, "http_fuzz: %s%s%.*s\n", what, detail.empty() ? "" : ": ", static_cast<int>(detail.size()), detail.data());
  std::abort();
}

void require(bool ok, const char* what, std::string_view detail = {}) {
  if (!ok) broken(what, detail);
}

const auto kNow = SessionStore::Clock::time_point{} + std::chrono::hours(24);

/// One admin and one viewer signed in; each input starts from a copy, so a logout in one input
/// does not carry over to the next.
struct World {
  SessionStore sessions;
  std::string admin_id, admin_csrf, viewer_id, viewer_csrf;
  World() {
    const auto& a = sessions.create("alice", Role::admin, kNow);
    admin_id = a.id;
    admin_csrf = a.csrf;
    const auto& v = sessions.create("victor", Role::viewer, kNow);
    viewer_id = v.id;
    viewer_csrf = v.csrf;
  }
};

const World& world() {
  static const World w;
  return w;
}

std::string substitute(std::string_view in, const World& w) {
  static constexpr std::pair<std::string_view, int> kTokens[] = {{"@ADMIN@", 0}, {"@CSRF@", 1}, {"@VIEWER@", 2}, {"@VCSRF@", 3}};
  std::string out;
  out.reserve(in.size());
  while (!in.empty()) {
    bool replaced = false;
    if (in.front() == '@') {
      for (const auto& [token, which] : kTokens) {
        if (!in.starts_with(token)) continue;
        out += which == 0 ? w.admin_id : which == 1 ? w.admin_csrf : which == 2 ? w.viewer_id : w.viewer_csrf;
        in.remove_prefix(token.size());
        replaced = true;
        break;
      }
    }
    if (!replaced) {
      out += in.front();
      in.remove_prefix(1);
    }
  }
  return out;
}

bool contains(std::string_view text, std::string_view part) { return !part.empty() && text.find(part) != std::string_view::npos; }

/// An answer as the server writes it: checked, put on the wire, parsed back.
void check_answer(const Reply& reply, unsigned version, bool keep_alive, bool https, const World& w, std::string_view cookie) {
  static const std::set<unsigned> kStatuses = {200, 304, 400, 401, 403, 404, 405, 413, 415};
  const auto code = static_cast<unsigned>(reply.status);
  require(kStatuses.contains(code), "an answer with a status the page never sends", std::to_string(code));
  if (reply.content_type == "application/json") {
    boost::system::error_code ec;
    const auto v = boost::json::parse(reply.body, ec);
    require(!ec && v.is_object(), "a JSON answer whose body is not a JSON object", reply.body);
  }
  for (const auto& [k, v] : reply.headers) {
    require(k.find_first_of(std::string_view("\r\n\0: ", 5)) == std::string::npos, "a header name that is not a token", k);
    require(v.find_first_of(std::string_view("\r\n\0", 3)) == std::string::npos, "CR, LF or NUL in a header value", v);
  }
  // Tokens: a session id never goes out (only a login's Set-Cookie carries one); a CSRF token
  // only to the browser whose session it is.
  std::string everything = reply.body;
  for (const auto& [k, v] : reply.headers) everything += k + ": " + v + "\n";
  require(!contains(everything, w.admin_id) && !contains(everything, w.viewer_id), "an answer carries a session id");
  if (contains(everything, w.admin_csrf)) require(contains(cookie, w.admin_id), "the admin's CSRF token went to someone else");
  if (contains(everything, w.viewer_csrf)) require(contains(cookie, w.viewer_id), "the viewer's CSRF token went to someone else");

  const auto res = make_response(reply, version, keep_alive, https);
  std::ostringstream wire;
  wire << res;
  const std::string bytes = wire.str();
  http::response_parser<http::string_body> back;
  back.body_limit(64 * 1024 * 1024);
  boost::system::error_code ec;
  std::size_t used = 0;
  while (!back.is_done() && !ec && used < bytes.size()) used += back.put(boost::asio::buffer(bytes.data() + used, bytes.size() - used), ec);
  if (!back.is_done() && (!ec || ec == http::error::need_more)) back.put_eof(ec);
  require(back.is_done() && (!ec || ec == http::error::need_more), "the response does not parse back", bytes);
  const auto& got = back.get();
  require(got.result_int() == code, "the response's status changed on the wire");
  require(got.body() == reply.body, "the response's body changed on the wire");
  for (const char* h : {"Content-Security-Policy", "X-Content-Type-Options", "X-Frame-Options", "Referrer-Policy", "Cache-Control"})
    require(got.find(h) != got.end(), "an answer without a security header", h);
  if (https) require(got.find(http::field::strict_transport_security) != got.end(), "an HTTPS answer without HSTS");
}

/// The path of a target, as the page refuses an unclean one (written apart from clean_target).
bool plain_path(std::string_view target) {
  if (target.empty() || target[0] != '/' || target.size() > 256) return false;
  const auto path = target.substr(0, target.find('?'));
  for (std::size_t i = 0; i < path.size(); ++i) {
    const auto c = static_cast<unsigned char>(path[i]);
    if (c < 0x20 || c > 0x7e || c == '%' || c == '\\') return false;
    if (i > 0 && (path.substr(i - 1, 2) == ".." || path.substr(i - 1, 2) == "//")) return false;
  }
  return true;
}

void check_login(const HttpRequest& req) {
  const auto form = parse_login(req.body());
  if (!form) return;
  require(!form->user.empty() && form->user.size() <= 64, "a login name out of range");
  require(!form->password.empty() && form->password.size() <= 256, "a password out of range");
}

void check_action(const HttpRequest& req, std::string_view name, unsigned version, bool https, const World& w, std::string_view cookie) {
  auto parsed = parse_action(name, req.body(), kSlots);
  if (const auto* refused = std::get_if<Reply>(&parsed)) {
    require(refused->status == http::status::bad_request || refused->status == http::status::not_found, "an action refused with an odd status");
    check_answer(*refused, version, false, https, w, cookie);
    return;
  }
  const auto& a = std::get<AdminAction>(parsed);
  using Kind = AdminAction::Kind;
  static const std::pair<std::string_view, Kind> kNames[] = {{"retry", Kind::retry},   {"pause", Kind::pause},         {"resume", Kind::resume},
                                                             {"power-cycle", Kind::power_cycle}, {"revoke", Kind::revoke}, {"reinstate", Kind::reinstate},
                                                             {"quarantine", Kind::quarantine}};
  bool known = false;
  for (const auto& [n, k] : kNames)
    if (n == name) {
      known = true;
      require(a.kind == k, "an action of another kind than its name");
    }
  require(known, "an unknown action accepted", name);
  require(a.name == name, "an action renamed");
  require(a.reason.size() <= 500, "a reason over 500 bytes");
  if (a.kind == Kind::power_cycle) require(a.slot >= 1 && a.slot <= kSlots, "power-cycle of a slot the dock does not have");
  if (a.kind == Kind::revoke || a.kind == Kind::reinstate) require(!a.serial.empty() && a.serial.size() <= 64, "a serial out of range");
  if (a.kind == Kind::quarantine) require(a.serial.size() <= 64, "a serial out of range");
  if (a.kind == Kind::revoke || a.kind == Kind::reinstate || a.kind == Kind::quarantine) require(!a.reason.empty(), "a decision without a reason");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const World& w = world();
  Caller caller;
  caller.local = (data[0] & 1) != 0;
  caller.peer = caller.local ? "control socket" : "192.0.2.7";
  PageRules rules;
  rules.status_public = (data[0] & 2) == 0;
  rules.https = (data[0] & 4) != 0;
  rules.accounts = true;
  SessionStore sessions = w.sessions;
  const std::string bytes = substitute(std::string_view(reinterpret_cast<const char*>(data + 1), size - 1), w);

  std::string_view rest = bytes;
  for (int n = 0; n < kMaxRequests && !rest.empty(); ++n) {
    http::request_parser<http::string_body> parser;
    parser.header_limit(static_cast<std::uint32_t>(kHeaderLimit));
    parser.body_limit(kBodyLimit);
    boost::system::error_code ec;
    while (!parser.is_done()) {
      if (rest.empty()) {
        parser.put_eof(ec);  // the client stopped sending mid-request
        break;
      }
      const auto used = parser.put(boost::asio::buffer(rest.data(), rest.size()), ec);
      rest.remove_prefix(used);
      if (ec == http::error::need_more) {
        ec = {};
        if (used == 0) rest = {};
        continue;
      }
      if (ec) break;
    }
    if (ec || !parser.is_done()) {
      const auto reply = unreadable_reply(ec ? ec : make_error_code(http::error::partial_message));
      require(reply.status == http::status::bad_request || reply.status == http::status::payload_too_large, "an unreadable request answered oddly");
      check_answer(reply, 11, false, rules.https, w, {});
      return 0;  // the server closes the connection
    }
    const auto req = parser.release();
    const auto cookie = header_value(req, "Cookie");
    const bool admin_cookie = contains(cookie, w.admin_id);
    const bool viewer_cookie = contains(cookie, w.viewer_id);
    const auto target = std::string_view(req.target().data(), req.target().size());
    const auto path = target.substr(0, target.find('?'));

    const bool admin_was_live = sessions.find(w.admin_id, kNow) != nullptr;
    const bool viewer_was_live = sessions.find(w.viewer_id, kNow) != nullptr;
    auto routed = route(req, caller, rules, sessions, kNow);
    require(sessions.size() <= 2, "routing made a session");
    // A session ends only by a logout that carries its own CSRF token (an earlier request on
    // this connection may have ended it already).
    const bool logout = req.method() == http::verb::post && path == "/api/v1/logout" && !caller.local;
    if (admin_was_live && !sessions.find(w.admin_id, kNow))
      require(logout && admin_cookie && header_value(req, "X-CSRF-Token") == w.admin_csrf, "the admin's session ended without its CSRF token");
    if (viewer_was_live && !sessions.find(w.viewer_id, kNow))
      require(logout && viewer_cookie && header_value(req, "X-CSRF-Token") == w.viewer_csrf, "the viewer's session ended without its CSRF token");

    if (routed.route != Route::answered) {
      require(req.method() == http::verb::get || req.method() == http::verb::post, "a route for a method the page does not serve");
      require(plain_path(target), "an unclean path got past routing", target);
    }
    const bool any_session = admin_cookie || viewer_cookie;
    switch (routed.route) {
      case Route::answered:
        check_answer(routed.reply, req.version(), req.keep_alive() && !routed.close, rules.https, w, cookie);
        if (routed.reply.cacheable && routed.reply.status == http::status::ok) {
          bool embedded = false;
          for (const auto& a : assets()) embedded = embedded || a.path == (path == "/" ? std::string_view("/index.html") : path);
          require(embedded, "a file served that is not one of the page's", target);
          require(req.method() == http::verb::get, "a file served to a non-GET");
        }
        break;
      case Route::events:
        require(target == "/api/v1/events", "an event stream on another path");
        [[fallthrough]];
      case Route::status:
      case Route::metrics:
        require(caller.local || rules.status_public || any_session, "a private status shown without a session");
        break;
      case Route::queue:
      case Route::cameras:
        require(caller.local || any_session, "a list shown without a session");
        break;
      case Route::login:
        require(!caller.local && req.method() == http::verb::post && path == "/api/v1/login", "a login route for something else");
        check_login(req);
        break;
      case Route::action: {
        require(req.method() == http::verb::post && path.starts_with("/api/v1/actions/") && routed.action == path.substr(16), "an action route for something else");
        const auto type = header_value(req, "Content-Type");
        require(type.substr(0, type.find(';')) == "application/json", "an action without a JSON body type");
        if (!caller.local) {
          require(admin_cookie, "an admin action without the admin's session");
          require(header_value(req, "X-CSRF-Token") == w.admin_csrf, "an admin action without the exact CSRF token");
          const auto origin = header_value(req, "Origin");
          const auto host = header_value(req, "Host");
          require(origin.empty() || (!host.empty() && origin == std::string(rules.https ? "https://" : "http://") + std::string(host)),
                  "a cross-origin admin action");
        }
        check_action(req, routed.action, req.version(), rules.https, w, cookie);
        break;
      }
    }
    // The server stops reading this connection after an event stream or a closing answer.
    if (routed.route == Route::events || !req.keep_alive() || routed.close) return 0;
  }
  return 0;
}
