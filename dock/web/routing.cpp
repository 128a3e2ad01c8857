#include "dock/web/routing.hpp"

#include "dock/web/assets.hpp"

#include <boost/beast/http/error.hpp>
#include <boost/beast/http/field.hpp>
#include <boost/beast/http/verb.hpp>
#include <boost/json/object.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <algorithm>
#include <cstdio>

namespace bodydock::dock::web {

namespace beast = boost::beast;
namespace http = beast::http;
namespace json = boost::json;

namespace {

std::string etag_of(std::string_view body) {
  // FNV-1a: a change detector for the embedded files, not a security function.
  std::uint64_t h = 1469598103934665603ull;
  for (unsigned char c : body) h = (h ^ c) * 1099511628211ull;
  char out[24];
  std::snprintf(out, sizeof out, "\"%016llx\"", static_cast<unsigned long long>(h));
  return out;
}

const json::value* field(const json::object& o, std::string_view key) {
  const auto it = o.find(key);
  return it == o.end() ? nullptr : &it->value();
}

std::optional<std::string> string_field(const json::object& o, std::string_view key, std::size_t max) {
  const auto* v = field(o, key);
  if (!v || !v->is_string() || v->as_string().size() > max) return std::nullopt;
  return std::string(v->as_string());
}

Routed answer(Reply r) {
  Routed out;
  out.reply = std::move(r);
  return out;
}

Routed go(Route route) {
  Routed out;
  out.route = route;
  return out;
}

/// The session behind the request's cookie, if any.
const SessionStore::Session* session_of(const HttpRequest& req, SessionStore& sessions, SessionStore::Clock::time_point now) {
  const auto cookie = req.find(http::field::cookie);
  if (cookie == req.end()) return nullptr;
  const auto id = cookie_value(cookie->value(), kSessionCookie);
  if (!id) return nullptr;
  return sessions.find(*id, now);
}

std::optional<Reply> check_viewer(bool has_session, const Caller& caller, const PageRules& rules) {
  if (caller.local || rules.status_public || has_session) return std::nullopt;
  return error_reply(http::status::unauthorized, "log in to see the dock's status");
}

/// Every POST: JSON only (a cross-site form cannot send it without a preflight we never
/// grant), and from this page's own origin when the browser says where it comes from.
std::optional<Reply> check_post(const HttpRequest& req, const Caller& caller, const PageRules& rules) {
  const auto type = header_value(req, "Content-Type");
  if (type.substr(0, type.find(';')) != "application/json")
    return error_reply(http::status::unsupported_media_type, "send JSON (Content-Type: application/json)");
  if (caller.local) return std::nullopt;  // no browser reaches a Unix socket
  const auto origin = header_value(req, "Origin");
  const auto host = header_value(req, "Host");
  if (!origin.empty()) {
    const std::string expected = std::string(rules.https ? "https://" : "http://") + std::string(host);
    if (host.empty() || origin != expected) return error_reply(http::status::forbidden, "cross-origin request refused");
  }
  return std::nullopt;
}

Reply session_info(const SessionStore::Session* s, const PageRules& rules) {
  if (!s) return json_reply(http::status::ok, json::object{{"user", nullptr}, {"accounts", rules.accounts}});
  return json_reply(http::status::ok, json::object{{"user", s->user}, {"role", s->role == Role::admin ? "admin" : "viewer"}, {"csrf", s->csrf}});
}

Routed route_get(const HttpRequest& req, std::string_view path, const Caller& caller, const PageRules& rules, SessionStore& sessions,
                 SessionStore::Clock::time_point now) {
  if (path == "/api/v1/status" || path == "/metrics") {
    if (auto refused = check_viewer(session_of(req, sessions, now) != nullptr, caller, rules)) return answer(std::move(*refused));
    return go(path == "/metrics" ? Route::metrics : Route::status);
  }
  // Lists of every camera and every waiting segment (serials, officers) are not part of the
  // public status: a login or the control socket.
  if (path == "/api/v1/queue" || path == "/api/v1/cameras") {
    if (!caller.local && !session_of(req, sessions, now)) return answer(error_reply(http::status::unauthorized, "log in to see this"));
    return go(path == "/api/v1/queue" ? Route::queue : Route::cameras);
  }
  if (path == "/api/v1/session") return answer(session_info(session_of(req, sessions, now), rules));
  const auto wanted = path == "/" ? std::string_view("/index.html") : path;
  for (const auto& a : assets()) {
    if (a.path != wanted) continue;
    Reply r;
    r.cacheable = true;
    r.content_type = std::string(a.content_type);
    const auto tag = etag_of(a.body);
    r.headers.emplace_back("ETag", tag);
    const auto inm = req.find(http::field::if_none_match);
    if (inm != req.end() && inm->value() == tag) {
      r.status = http::status::not_modified;
      return answer(std::move(r));
    }
    r.body = std::string(a.body);
    return answer(std::move(r));
  }
  return answer(error_reply(http::status::not_found, "not found"));
}

}  // namespace

Reply json_reply(http::status status, const json::value& v) {
  Reply r;
  r.status = status;
  r.body = json::serialize(v);
  r.body += '\n';
  return r;
}

Reply error_reply(http::status status, std::string_view message) { return json_reply(status, json::object{{"error", message}}); }

Reply unreadable_reply(const boost::system::error_code& ec) {
  const bool too_big = ec == http::error::body_limit || ec == http::error::header_limit || ec == http::error::buffer_overflow;
  return too_big ? error_reply(http::status::payload_too_large, "request too large") : error_reply(http::status::bad_request, "malformed request");
}

HttpResponse make_response(Reply r, unsigned version, bool keep_alive, bool https) {
  HttpResponse res{r.status, version};
  res.set(http::field::server, "bodydock");
  res.set(http::field::content_type, r.content_type);
  res.set(http::field::cache_control, r.cacheable ? "no-cache" : "no-store");
  res.set("X-Content-Type-Options", "nosniff");
  res.set("X-Frame-Options", "DENY");
  res.set("Referrer-Policy", "no-referrer");
  res.set("Content-Security-Policy",
          "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
          "frame-ancestors 'none'; base-uri 'none'; form-action 'self'");
  if (https) res.set(http::field::strict_transport_security, "max-age=31536000");
  for (auto& [k, v] : r.headers) res.insert(k, v);
  res.body() = std::move(r.body);
  res.keep_alive(keep_alive);
  res.prepare_payload();
  return res;
}

bool clean_target(std::string_view target) {
  if (target.empty() || target.front() != '/' || target.size() > 256) return false;
  const auto path = target.substr(0, target.find('?'));
  if (path.find("..") != std::string_view::npos || path.find("//") != std::string_view::npos) return false;
  return std::none_of(path.begin(), path.end(), [](unsigned char c) { return c < 0x20 || c >= 0x7f || c == '\\' || c == '%'; });
}

std::string_view header_value(const HttpRequest& req, std::string_view name) {
  const auto it = req.find(name);
  return it == req.end() ? std::string_view{} : std::string_view(it->value().data(), it->value().size());
}

Routed route(const HttpRequest& req, const Caller& caller, const PageRules& rules, SessionStore& sessions, SessionStore::Clock::time_point now) {
  const auto target = std::string_view(req.target().data(), req.target().size());
  if (req.method() == http::verb::get && target == "/api/v1/events") {
    if (auto refused = check_viewer(session_of(req, sessions, now) != nullptr, caller, rules)) {
      auto out = answer(std::move(*refused));
      out.close = true;  // the page retries an event stream by itself; no reason to keep this one
      return out;
    }
    return go(Route::events);
  }
  if (!clean_target(target)) {
    auto out = answer(error_reply(http::status::bad_request, "bad path"));
    out.notice = "refused path";
    return out;
  }
  const auto path = target.substr(0, target.find('?'));
  const auto verb = req.method();
  if (verb == http::verb::get) return route_get(req, path, caller, rules, sessions, now);
  if (verb != http::verb::post) {
    Reply r = error_reply(http::status::method_not_allowed, "method not allowed");
    r.headers.emplace_back("Allow", "GET, POST");
    return answer(std::move(r));
  }
  if (auto refused = check_post(req, caller, rules)) return answer(std::move(*refused));
  if (caller.local && (path == "/api/v1/login" || path == "/api/v1/logout"))
    return answer(error_reply(http::status::bad_request, "the control socket needs no login"));
  if (path == "/api/v1/login") return go(Route::login);
  if (path == "/api/v1/logout") {
    Reply r = json_reply(http::status::ok, json::object{{"ok", true}});
    if (const auto* s = session_of(req, sessions, now)) {
      if (!SessionStore::csrf_ok(*s, header_value(req, "X-CSRF-Token")))
        return answer(error_reply(http::status::forbidden, "missing or wrong CSRF token"));
      sessions.end(s->id);
    }
    r.headers.emplace_back("Set-Cookie", clear_session_cookie(rules.https));
    return answer(std::move(r));
  }
  if (path.starts_with("/api/v1/actions/")) {
    if (!caller.local) {
      const auto* s = session_of(req, sessions, now);
      if (!s) return answer(error_reply(http::status::unauthorized, "log in first"));
      if (s->role != Role::admin) return answer(error_reply(http::status::forbidden, "this account may only view"));
      if (!SessionStore::csrf_ok(*s, header_value(req, "X-CSRF-Token")))
        return answer(error_reply(http::status::forbidden, "missing or wrong CSRF token"));
    }
    auto out = go(Route::action);
    out.action = std::string(path.substr(16));
    return out;
  }
  return answer(error_reply(http::status::not_found, "not found"));
}

std::optional<LoginForm> parse_login(std::string_view body) {
  boost::system::error_code ec;
  auto parsed = json::parse(body, ec);
  if (ec || !parsed.is_object()) return std::nullopt;
  auto user = string_field(parsed.as_object(), "user", 64);
  auto password = string_field(parsed.as_object(), "password", 256);
  if (!user || !password || user->empty() || password->empty()) return std::nullopt;
  return LoginForm{std::move(*user), std::move(*password)};
}

std::variant<AdminAction, Reply> parse_action(std::string_view name, std::string_view body_text, unsigned slots) {
  boost::system::error_code ec;
  auto parsed = json::parse(body_text.empty() ? std::string_view("{}") : body_text, ec);
  if (ec || !parsed.is_object()) return error_reply(http::status::bad_request, "the body must be a JSON object");
  const auto& body = parsed.as_object();
  AdminAction a;
  a.name = std::string(name);
  a.reason = string_field(body, "reason", 500).value_or("");
  using Kind = AdminAction::Kind;
  if (name == "retry") {
    a.kind = Kind::retry;
  } else if (name == "pause" || name == "resume") {
    a.kind = name == "pause" ? Kind::pause : Kind::resume;
  } else if (name == "power-cycle") {
    const auto* slot = field(body, "slot");
    if (!slot || !slot->is_int64() || slot->as_int64() < 1 || slot->as_int64() > static_cast<std::int64_t>(slots))
      return error_reply(http::status::bad_request, "power-cycle needs \"slot\": 1.." + std::to_string(slots));
    a.kind = Kind::power_cycle;
    a.slot = static_cast<unsigned>(slot->as_int64());
  } else if (name == "revoke" || name == "reinstate") {
    const auto serial = string_field(body, "serial", 64);
    if (!serial || serial->empty()) return error_reply(http::status::bad_request, std::string(name) + " needs \"serial\"");
    if (a.reason.empty()) return error_reply(http::status::bad_request, std::string(name) + " needs a written \"reason\"");
    a.kind = name == "revoke" ? Kind::revoke : Kind::reinstate;
    a.serial = *serial;
  } else if (name == "quarantine") {
    const auto serial = string_field(body, "serial", 64);
    const auto* seq = field(body, "segment");
    const auto decision = string_field(body, "decision", 16);
    if (!serial || !seq || !seq->is_int64() || seq->as_int64() < 0 || !decision || (*decision != "release" && *decision != "keep"))
      return error_reply(http::status::bad_request, "quarantine needs \"serial\", \"segment\" and \"decision\": release or keep");
    if (a.reason.empty()) return error_reply(http::status::bad_request, "a quarantine decision needs a written \"reason\"");
    a.kind = Kind::quarantine;
    a.serial = *serial;
    a.segment = static_cast<std::uint64_t>(seq->as_int64());
    a.release = *decision == "release";
  } else {
    return error_reply(http::status::not_found, "no such action");
  }
  return a;
}

}  // namespace bodydock::dock::web
