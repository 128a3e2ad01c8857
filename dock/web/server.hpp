#pragma once
/// The dock's local web page and API (README, "Web page and status API"): one port, HTTP on
/// loopback by default, HTTPS with the dock's own certificate for the site LAN.
///
///   GET  /, /app.js, /app.css        the dashboard (compiled into the dock; no CDN)
///   GET  /api/v1/status              JSON: slots, queue, uplink, spool, recent events
///   GET  /api/v1/events              the same, pushed as Server-Sent Events once a second
///   GET  /metrics                    Prometheus text format
///   GET  /api/v1/session             who is logged in, and the CSRF token for actions
///   POST /api/v1/login, /api/v1/logout
///   GET  /api/v1/queue               the upload queue, item by item, in the order it is sent (login)
///   GET  /api/v1/cameras             every camera this dock has seen (login)
///   POST /api/v1/actions/NAME        admin actions (login, CSRF token, JSON body; audited)
///
/// The same API answers on the control socket (WebOptions::control_socket) for dockctl.
///
/// Hard against hostile clients: every request must arrive whole within a deadline (slow
/// clients are cut off), headers and bodies are size-limited, the number of connections and
/// event streams is bounded, and files are never read from disk, so no path reaches one. The
/// page never serves footage or key material. Which route a request takes and who may take it
/// is decided in routing.hpp, pure code that the HTTP fuzz target (tests/fuzz/http_fuzz.cpp) runs too.

#include "dock/dock.hpp"
#include "dock/web/listen.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>

#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>

namespace bodydock::dock::web {

struct WebOptions {
  /// The page on TCP; false: only the control socket.
  bool listen_tcp = true;
  std::string address = "127.0.0.1";
  std::uint16_t port = 8080;
  /// The control socket for dockctl (a Unix stream socket, made 0660; empty: none). It serves
  /// the same API, and whoever may open it is the dock's operator: no login, no CSRF token.
  /// The file system is the lock: under dockd.service it lives in /run/bodydock (0750, group
  /// bodydock), so only root and the service group get in. Actions name the caller in the
  /// audit log by the uid the kernel gives for the peer, and the name dockctl says it runs as.
  std::filesystem::path control_socket;
  /// HTTPS: the dock's certificate (chain) and key, PEM. Empty: plain HTTP (loopback).
  std::filesystem::path tls_cert, tls_key;
  /// Viewers see the status without logging in; false: status, events and metrics need a login too.
  bool status_public = true;
  /// Local accounts (NAME:ROLE:SCRYPT-HASH a line). Missing or empty: no one can log in.
  std::filesystem::path accounts_file;
  std::size_t max_connections = 64;
  std::size_t max_control_connections = 8;  ///< on the control socket, counted apart
  std::size_t max_event_streams = 16;
  std::size_t max_body_bytes = std::size_t{16} * 1024;
  std::size_t max_header_bytes = std::size_t{8} * 1024;
  /// A request (headers and body) must arrive whole within this; then the connection is closed.
  std::chrono::milliseconds request_timeout{10000};
  /// A kept-alive connection with no new request this long is closed.
  std::chrono::milliseconds idle_timeout{30000};
  /// A response (or an event) that the client does not take within this ends the connection.
  std::chrono::milliseconds write_timeout{10000};
  std::chrono::milliseconds push_interval{1000};
};

/// What the surrounding program does for the admin actions that reach past the dock's own
/// state. Each returns an error text when it cannot act.
struct AdminHooks {
  std::function<std::optional<std::string>(unsigned slot)> power_cycle;
};

class WebServer {
 public:
  /// Binds at once; throws std::runtime_error naming the address when it cannot (in use, not
  /// an address of this machine, bad certificate or key).
  WebServer(boost::asio::io_context& ioc, Dock& dock, WebOptions options, AdminHooks hooks = {});
  ~WebServer();
  WebServer(const WebServer&) = delete;
  WebServer& operator=(const WebServer&) = delete;

  /// Serves until stop().
  void start();
  void stop();
  /// "http://127.0.0.1:8080/" (the port actually bound when 0 was asked for); without TCP,
  /// "unix:PATH" of the control socket.
  [[nodiscard]] std::string url() const;
  [[nodiscard]] std::uint16_t port() const;

 private:
  void open_control_socket();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace bodydock::dock::web
