#include "dock/service.hpp"

#include "dock/config.hpp"
#include "dock/dock.hpp"
#include "dock/lights.hpp"
#include "dock/local_sink.hpp"
#include "dock/log.hpp"
#include "dock/notify.hpp"
#include "dock/s3_sink.hpp"
#include "dock/usb_slots.hpp"
#include "dock/web/server.hpp"
#include "hw/port_power.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <csignal>
#include <functional>
#include <cstdio>
#include <iostream>
#include <map>
#include <memory>

namespace bodydock::dock {
namespace {

namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;

constexpr const char* kUsage = "usage: dockd run --config FILE   (the service; see dockd.service and dockd.toml.example)";

Level level_of(const std::string& name) {
  static const std::map<std::string, Level> levels = {
      {"error", Level::error}, {"warning", Level::warning}, {"notice", Level::notice}, {"info", Level::info}, {"debug", Level::debug}};
  return levels.at(name);
}

struct Service {
  std::filesystem::path config_file;
  Config cfg;
  asio::io_context ioc;
  std::unique_ptr<SystemdNotifier> notifier;
  std::unique_ptr<asio::thread_pool> sink_pool;
  std::unique_ptr<s3::Client> s3_client;
  std::shared_ptr<s3::RateLimiter> limiter;
  std::unique_ptr<Sink> sink;
  std::unique_ptr<Dock> dock;
  std::unique_ptr<usb::UsbContext> usb;
  std::unique_ptr<hw::PortPower> power;
  std::unique_ptr<UsbSlots> slots;
  std::unique_ptr<SlotLights> lights;
  std::unique_ptr<web::WebServer> web;
  bool stopping = false;

  void build() {
    Log::set_level(level_of(cfg.log_level));
    Log::set_json(cfg.log_format == "json");
    DockConfig dc;
    dc.state_dir = cfg.state_dir;
    dc.identity = std::make_shared<const pki::DockIdentity>(pki::load_dock_identity(cfg.trust_dir));
    unsigned max_slot = 0;
    for (const auto& s : cfg.slots) max_slot = std::max(max_slot, s.slot);
    dc.slots = max_slot;
    dc.reads_in_flight = cfg.reads_in_flight;
    dc.request_timeout = cfg.request_timeout;
    dc.upload_concurrency = cfg.upload_concurrency;
    dc.upload_retry_cap = cfg.upload_retry_max;
    dc.upload_hold_probe = cfg.upload_hold_probe;
    dc.spool_limit_bytes = cfg.spool_limit_mib << 20;
    dc.spool_reserve_bytes = cfg.spool_reserve_mib << 20;
    dc.purged_retention = std::chrono::hours(24) * cfg.purged_retention_days;
    sink_pool = std::make_unique<asio::thread_pool>(2);
    if (cfg.store.starts_with("s3://")) {
      auto endpoint = s3::Endpoint::parse(cfg.s3_endpoint, cfg.s3_region);
      endpoint.path_style = !cfg.s3_virtual_host;
      if (!cfg.s3_ca_file.empty()) endpoint.ca_file = cfg.s3_ca_file.string();
      s3_client = std::make_unique<s3::Client>(ioc.get_executor(), endpoint, s3::Credentials{cfg.s3_access_key_id, cfg.s3_secret_access_key, {}},
                                               cfg.s3_timeout);
      // One limiter for the dock's life: a reload changes its schedule in place.
      limiter = std::make_shared<s3::RateLimiter>(s3::RateSchedule::parse(cfg.upload_mbps, cfg.upload_schedule));
      s3_client->set_rate_limiter(limiter);
      sink = std::make_unique<S3Sink>(*s3_client, S3Location::parse(cfg.store), *sink_pool, std::size_t{cfg.s3_part_mib} << 20,
                                      Retention::make(cfg.retention_mode, cfg.retention_days));
    } else {
      sink = std::make_unique<LocalDirSink>(cfg.store, *sink_pool);
    }
    dock = std::make_unique<Dock>(ioc, dc, *sink);
    lights = std::make_unique<SlotLights>(*dock, hw::make_led_backend(cfg.leds, ioc.get_executor(), log_led_errors()));

    usb = std::make_unique<usb::UsbContext>(ioc.get_executor(), [](usb::UsbContext::LogLevel l, std::string_view line) {
      log(l == usb::UsbContext::LogLevel::error ? Level::error : l == usb::UsbContext::LogLevel::warning ? Level::warning : Level::debug, line);
    });
    std::map<std::string, unsigned> board;
    for (const auto& s : cfg.slots) board[s.port] = s.slot;
    usb::CameraMatch match;
    match.vid_pid = cfg.usb_ids;
    slots = std::make_unique<UsbSlots>(*dock, *usb, board, match, usb::UsbLinkOptions{std::size_t{cfg.usb_transfer_kib} * 1024, cfg.usb_in_flight});
    if (cfg.port_power == "hub") power = std::make_unique<hw::HubPortPower>(usb->get());
    else if (cfg.port_power == "sysfs") power = std::make_unique<hw::SysfsPortPower>();
    if (power) slots->set_port_power(power.get(), UsbSlots::PowerPolicy{});

    {
      // The web page when configured; the control socket for dockctl unless turned off.
      web::WebOptions o;
      o.listen_tcp = !cfg.web_listen.empty();
      if (!o.listen_tcp && cfg.control_socket.empty()) return;
      if (o.listen_tcp) std::tie(o.address, o.port) = web::parse_listen(cfg.web_listen);
      o.control_socket = cfg.control_socket;
      if (cfg.web_tls) {
        o.tls_cert = cfg.trust_dir / "dock.crt";
        o.tls_key = cfg.trust_dir / "dock.key";
      }
      o.accounts_file = cfg.web_accounts;
      o.status_public = cfg.web_public_status;
      web::AdminHooks hooks;
      hooks.power_cycle = [this](unsigned slot) { return slots->request_power_cycle(slot); };
      web = std::make_unique<web::WebServer>(ioc, *dock, std::move(o), std::move(hooks));
    }
  }

  /// SIGHUP: what can change without a restart changes now; the rest is named.
  void reload() {
    notifier->reloading();
    try {
      auto fresh = load_config(config_file);
      for (const auto& w : fresh.warnings) log(Level::warning, "config: ", w);
      apply_reload(fresh, limiter.get(), *dock, cfg.trust_dir);
      const auto needs_restart = [&] {
        std::vector<std::string> changed;
        if (fresh.state_dir != cfg.state_dir || fresh.trust_dir != cfg.trust_dir) changed.emplace_back("[dock] directories");
        if (fresh.store != cfg.store || fresh.s3_endpoint != cfg.s3_endpoint || fresh.s3_access_key_id != cfg.s3_access_key_id ||
            fresh.s3_secret_access_key != cfg.s3_secret_access_key)
          changed.emplace_back("[storage]");
        if (fresh.web_listen != cfg.web_listen || fresh.web_tls != cfg.web_tls) changed.emplace_back("[web]");
        if (fresh.control_socket != cfg.control_socket) changed.emplace_back("dock.control_socket");
        if (fresh.purged_retention_days != cfg.purged_retention_days) changed.emplace_back("dock.purged_retention_days");
        if (fresh.slots.size() != cfg.slots.size()) changed.emplace_back("[board]");
        return changed;
      }();
      for (const auto& what : needs_restart) log(Level::warning, "reload: ", what, " changed; it takes effect at the next restart");
      cfg.log_level = fresh.log_level;
      cfg.upload_mbps = fresh.upload_mbps;
      cfg.upload_schedule = fresh.upload_schedule;
      log(Level::notice, "reload: ", config_file.string(), " read again");
    } catch (const std::exception& e) {
      log(Level::error, "reload: ", e.what(), "; keeping the running config");
    }
    notifier->ready(summary());
  }

  [[nodiscard]] std::string summary() const {
    std::map<std::string, unsigned> by_state;
    for (const auto& s : dock->slots()) ++by_state[hw::light_name(slot_light(s))];
    std::string out;
    for (const auto& [state, n] : by_state) out += (out.empty() ? "" : ", ") + std::to_string(n) + " " + state;
    const auto& up = dock->uplink();
    char queue[96];
    std::snprintf(queue, sizeof queue, "; queue %llu (%.0f MiB), uplink %s", static_cast<unsigned long long>(up.queued),
                  static_cast<double>(up.queued_bytes) / (1 << 20), uplink_state_name(up.state));
    out += queue;
    if (!up.alert.empty()) out += ": ALERT " + up.alert.substr(0, 80);
    return out;
  }

  asio::awaitable<void> report_status() {
    asio::steady_timer timer(ioc);
    while (!stopping) {
      notifier->status(summary());
      timer.expires_after(std::chrono::seconds(5));
      co_await timer.async_wait(asio::use_awaitable);
    }
  }

  asio::awaitable<void> drain_and_stop() {
    asio::steady_timer tick(ioc);
    const auto deadline = Clock::now() + std::chrono::seconds(10);
    while (slots->active() > 0 && Clock::now() < deadline) {
      tick.expires_after(std::chrono::milliseconds(20));
      co_await tick.async_wait(asio::use_awaitable);
    }
    co_await dock->flush_records(std::chrono::seconds(5));
    ioc.stop();
  }

  void stop() {
    if (stopping) return;
    stopping = true;
    notifier->stopping();
    dock->stop();
    lights->stop();
    if (web) web->stop();
    slots->close_all();
    asio::co_spawn(ioc, drain_and_stop(), [](const std::exception_ptr& e) { log_if_failed("stop", e); });
  }
};

}  // namespace

void reload_trust(Dock& dock, const std::filesystem::path& trust_dir) {
  try {
    auto identity = std::make_shared<const pki::DockIdentity>(pki::load_dock_identity(trust_dir));
    if (auto err = dock.set_identity(std::move(identity))) log(Level::error, "reload: ", *err, "; keeping the trust in use");
    else log(Level::notice, "reload: trust directory ", trust_dir.string(), " (fleet CA and CRL) read again");
  } catch (const std::exception& e) {
    log(Level::error, "reload: ", e.what(), "; keeping the trust in use");
  }
}

void apply_reload(const Config& fresh, s3::RateLimiter* limiter, Dock& dock, const std::filesystem::path& trust_dir) {
  Log::set_level(level_of(fresh.log_level));
  if (limiter) {
    try {
      limiter->set_schedule(s3::RateSchedule::parse(fresh.upload_mbps, fresh.upload_schedule));
      log(Level::notice, "reload: upload cap now ", fresh.upload_mbps, " MB/s", fresh.upload_schedule.empty() ? "" : ", schedule ",
          fresh.upload_schedule);
    } catch (const std::invalid_argument& e) {
      log(Level::error, "reload: upload cap: ", e.what(), "; keeping the one in force");
    }
  }
  reload_trust(dock, trust_dir);
}

int run_service(const std::vector<std::string>& args) {
  Service svc;
  if (args.size() != 2 || args[0] != "--config") {
    std::cerr << kUsage << "\n";
    return config_usage;
  }
  svc.config_file = args[1];
  try {
    svc.cfg = load_config(svc.config_file);
  } catch (const ConfigError& e) {
    std::cerr << "dockd: " << e.what() << "\n";
    return e.unreadable ? config_unreadable : config_invalid;
  }
  for (const auto& w : svc.cfg.warnings) log(Level::warning, "config: ", w);
  svc.notifier = std::make_unique<SystemdNotifier>(svc.ioc.get_executor());
  try {
    svc.build();
  } catch (const std::exception& e) {
    log(Level::error, "cannot start: ", e.what());
    return 1;
  }
  auto log_failure = [](const char* what) { return [what](const std::exception_ptr& e) { log_if_failed(what, e); }; };
  asio::signal_set signals(svc.ioc, SIGINT, SIGTERM, SIGHUP);
  std::function<void(const boost::system::error_code&, int)> on_signal = [&](const boost::system::error_code& ec, int sig) {
    if (ec) return;
    if (sig == SIGHUP) {
      svc.reload();
      signals.async_wait(on_signal);
      return;
    }
    log(Level::notice, "signal ", sig, ": stopping; every state is durable");
    svc.stop();
  };
  signals.async_wait(on_signal);
  asio::co_spawn(svc.ioc, svc.dock->run_uploader(), log_failure("upload queue"));
  asio::co_spawn(svc.ioc, svc.lights->run(), log_failure("slot lights"));
  svc.slots->start();
  if (svc.web) svc.web->start();
  log(Level::notice, "dockd ", svc.dock->config().dock_id, ": serving ", svc.cfg.slots.size(), " slots into ", svc.sink->describe());
  svc.notifier->ready(svc.summary());
  asio::co_spawn(svc.ioc, svc.notifier->run_watchdog(), log_failure("watchdog"));
  asio::co_spawn(svc.ioc, svc.report_status(), log_failure("status"));
  svc.ioc.run();
  Log::flush_repeats();  // a flood's count, before the journal loses the process
  svc.lights->dark();
  svc.sink_pool->join();
  return 0;
}

}  // namespace bodydock::dock
