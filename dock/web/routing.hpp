#pragma once
/// What the web page decides about one request before the dock is asked anything: whether its
/// path may be served at all, which route it takes, who may take it (session cookie, role, CSRF
/// token, Content-Type, Origin), the refusals, the embedded files, the session and logout, and
/// the checked bodies of a login and of an admin action. Pure and synchronous: no sockets, no
/// Asio, no clock reads (callers pass `now`), no logging. The server (server.cpp) answers every
/// request through route(); the HTTP fuzz target (tests/fuzz/http_fuzz.cpp) feeds it arbitrary
/// bytes through Beast's parser, the way the server reads them.

#include "dock/web/auth.hpp"

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/status.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/json/value.hpp>
#include <boost/system/error_code.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace bodydock::dock::web {

using HttpRequest = boost::beast::http::request<boost::beast::http::string_body>;
using HttpResponse = boost::beast::http::response<boost::beast::http::string_body>;

/// What the page answers, before the headers every answer carries (make_response).
struct Reply {
  boost::beast::http::status status = boost::beast::http::status::ok;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  bool cacheable = false;  ///< a static asset (revalidated by ETag)
};

Reply json_reply(boost::beast::http::status status, const boost::json::value& v);
/// {"error": message}.
Reply error_reply(boost::beast::http::status status, std::string_view message);
/// The one answer to a request that cannot be read (malformed, or over a size limit): 413 for
/// a header or body over its limit, 400 for anything else. The server closes after it.
Reply unreadable_reply(const boost::system::error_code& ec);

/// The response as it goes on the wire: the page's security headers on every answer (CSP,
/// nosniff, no framing, no referrer; HSTS over HTTPS), caching rules, Content-Length.
HttpResponse make_response(Reply reply, unsigned version, bool keep_alive, bool https);

/// A request target the page could ever serve: a plain absolute path of at most 256 bytes, no
/// dot segments, empty segments, escapes, backslashes, control or non-ASCII characters.
/// Everything else is refused before routing.
bool clean_target(std::string_view target);

/// The value of header `name`, empty when the request has none.
std::string_view header_value(const HttpRequest& req, std::string_view name);

/// Who sent a request.
struct Caller {
  std::string peer;    ///< the client's address; "control socket" for the local one
  bool local = false;  ///< on the control socket: the dock's operator (the socket's permissions let them in)
  std::string creds;   ///< local: the peer's uid (and name) as the kernel tells it
};

/// How the page is set up, as far as routing cares (WebOptions and the accounts file).
struct PageRules {
  bool status_public = true;  ///< viewers see status, events and metrics without a login
  bool https = false;         ///< cookies get Secure, answers HSTS, Origin must be https://
  bool accounts = false;      ///< some account can log in (GET /api/v1/session says so)
};

enum class Route {
  answered,  ///< Routed::reply is the whole answer: a refusal, a file, the session, a logout
  events,    ///< GET /api/v1/events by someone who may see the status: the live stream
  status,    ///< GET /api/v1/status, allowed
  metrics,   ///< GET /metrics, allowed
  queue,     ///< GET /api/v1/queue, by a logged-in user or the operator
  cameras,   ///< GET /api/v1/cameras, by a logged-in user or the operator
  login,     ///< POST /api/v1/login from the page (its body still to check: parse_login)
  action,    ///< POST /api/v1/actions/NAME by an admin with the CSRF token, or by the operator
};

struct Routed {
  Route route = Route::answered;
  Reply reply;                ///< with Route::answered
  bool close = false;         ///< with Route::answered: close the connection after the answer
  std::string action;         ///< with Route::action: NAME (not yet checked: parse_action)
  const char* notice = nullptr;  ///< what the server logs, with the peer, about this request
};

/// Decides what `req` gets. Looks the session cookie up in `sessions` (moving its last use to
/// `now`) and, for a logout with the session's CSRF token, ends it there.
Routed route(const HttpRequest& req, const Caller& caller, const PageRules& rules, SessionStore& sessions, SessionStore::Clock::time_point now);

/// The body of POST /api/v1/login.
struct LoginForm {
  std::string user;      ///< 1..64 bytes (any text: the account check decides)
  std::string password;  ///< 1..256 bytes
};
/// {"user": ..., "password": ...} with both strings in range; nullopt for anything else.
std::optional<LoginForm> parse_login(std::string_view body);

/// An admin action with its arguments checked (README, "Web page and status API").
struct AdminAction {
  enum class Kind { retry, pause, resume, power_cycle, revoke, reinstate, quarantine };
  Kind kind = Kind::retry;
  std::string name;    ///< as requested: "power-cycle", ...
  std::string reason;  ///< at most 500 bytes (a longer one counts as none); required by revoke, reinstate, quarantine
  unsigned slot = 0;   ///< power_cycle: 1..slots
  std::string serial;  ///< revoke, reinstate, quarantine: 1..64 bytes
  std::uint64_t segment = 0;  ///< quarantine
  bool release = false;       ///< quarantine: release (true) or keep
};
/// Action `name` with its JSON body (empty: {}), on a dock of `slots` slots: what to do, or
/// the 400 (malformed or missing argument) or 404 (no such action) that refuses it.
std::variant<AdminAction, Reply> parse_action(std::string_view name, std::string_view body, unsigned slots);

}  // namespace bodydock::dock::web
