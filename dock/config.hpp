#pragma once
/// The dock's one config file, /etc/bodydock/dockd.toml (documented key by key in
/// systemd/dockd.toml.example). Read at start and by `dockd --check-config FILE`; on SIGHUP
/// the parts that can change at run time are read again (Config::reloadable).
///
/// Every refusal names the file, the line, the key and the value it refuses
/// ("dockd.toml:12: queue.upload_mbps = -3: must be 0 or more"); unknown keys are warnings,
/// so a newer file still starts an older dock (and a typo is pointed at).

#include "hw/leds.hpp"

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace bodydock::dock {

/// A config file the dock cannot use. `unreadable`: the file, or a file it names, cannot be
/// read (exit 3); otherwise its contents are wrong (exit 1).
struct ConfigError : std::runtime_error {
  ConfigError(const std::string& what, bool unreadable_file = false) : std::runtime_error(what), unreadable(unreadable_file) {}
  bool unreadable = false;
};

/// `dockd --check-config` exit codes (also `dockd run` when the config is bad).
enum ConfigExit { config_ok = 0, config_invalid = 1, config_usage = 2, config_unreadable = 3 };

struct Config {
  // [dock]
  std::filesystem::path state_dir = "/var/lib/bodydock";
  std::filesystem::path trust_dir = "/etc/bodydock/trust";
  std::string log_level = "info";      ///< error, warning, notice, info, debug
  std::string log_format = "journal";  ///< journal (priority prefixes) or json
  /// dockctl's way in (dock/web/server.hpp): a Unix socket, 0660, in a directory only root and
  /// the service group may enter. Empty: none.
  std::filesystem::path control_socket = "/run/bodydock/control.sock";
  /// How long the state database keeps the rows of segments that are stored and erased from
  /// their camera (each camera's newest stays as the anchor of its chain). The audit log keeps
  /// their history either way.
  unsigned purged_retention_days = 30;
  // [board]
  struct Slot {
    unsigned slot = 0;
    std::string port;  ///< USB port path, e.g. "1-1.3"
  };
  std::vector<Slot> slots;
  std::string port_power = "hub";  ///< hub (class requests, as uhubctl), sysfs (port<N>/disable), none
  hw::LedBoard leds;               ///< [leds] of the same file (hw/leds.hpp)
  // [cameras]
  std::vector<std::pair<std::uint16_t, std::uint16_t>> usb_ids = {{0x1d50, 0x6160}};
  unsigned reads_in_flight = 4;
  std::chrono::milliseconds request_timeout{5000};
  unsigned usb_transfer_kib = 256;
  unsigned usb_in_flight = 4;
  // [storage]
  std::string store = "/var/lib/bodydock/store";  ///< a directory, or s3://BUCKET[/PREFIX]
  std::string s3_endpoint;                        ///< https://host[:port] (or http:// on a trusted network)
  std::string s3_region = "us-east-1";
  std::filesystem::path s3_credentials_file;      ///< access_key_id = ... / secret_access_key = ...
  std::string s3_access_key_id, s3_secret_access_key;  ///< read from the credentials file, never from dockd.toml
  std::filesystem::path s3_ca_file;
  bool s3_virtual_host = false;
  unsigned s3_part_mib = 16;
  std::chrono::milliseconds s3_timeout{30000};
  unsigned retention_days = 0;
  std::string retention_mode = "compliance";
  // [queue]
  unsigned upload_concurrency = 2;
  std::chrono::milliseconds upload_retry_max{60000};
  std::chrono::milliseconds upload_hold_probe{300000};
  std::string upload_mbps = "0";
  std::string upload_schedule;
  // [spool]
  std::uint64_t spool_limit_mib = 0;
  std::uint64_t spool_reserve_mib = 64;
  // [web]
  std::string web_listen;  ///< empty: no web page
  bool web_tls = false;
  std::filesystem::path web_accounts = "/etc/bodydock/web-accounts";
  bool web_public_status = true;

  std::vector<std::string> warnings;  ///< "<file>:<line>: unknown key ..."

  /// The keys SIGHUP applies without a restart (everything else needs one, and a reload that
  /// changes it says so): log level, bandwidth cap and schedule. Revocations are re-read from
  /// the trust directory's CRL and the dock's own list.
  struct Reloadable {
    std::string log_level;
    std::string upload_mbps, upload_schedule;
  };
  [[nodiscard]] Reloadable reloadable() const { return {log_level, upload_mbps, upload_schedule}; }
};

/// Parses config text; `source` names it in messages. Does not read other files.
Config parse_config(std::string_view text, std::string_view source);
/// Reads and parses the file, then reads the files it names that must be readable at start
/// (the S3 credentials file, which must not be readable by others). Throws ConfigError.
Config load_config(const std::filesystem::path& file);

}  // namespace bodydock::dock
