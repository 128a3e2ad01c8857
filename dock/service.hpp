#pragma once
/// `dockd run --config FILE`: the dock as a service (systemd/dockd.service). Everything comes
/// from dockd.toml (dock/config.hpp): the board's slots on real USB through libusb hotplug,
/// port power, slot LEDs, the sink (the embedded store or S3 with keys from the credentials
/// file), the upload queue's limits and schedule, the spool's high-water mark, the web page.
///
/// Under systemd (Type=notify): READY once serving, a one-line STATUS every few seconds,
/// WATCHDOG pings from the event loop, STOPPING on the way out. SIGTERM/SIGINT stop it
/// gracefully (transfers handed back, records flushed; every state is durable anyway);
/// SIGHUP reloads the config: log level, bandwidth cap and schedule change at once, without
/// dropping a transfer; anything else that changed is named in a warning (it needs a restart).

#include <filesystem>
#include <string>
#include <vector>

namespace bodydock::s3 {
class RateLimiter;
}

namespace bodydock::dock {

class Dock;
struct Config;

/// Reads the trust directory again for the dockings that start from now (Dock::set_identity).
void reload_trust(Dock& dock, const std::filesystem::path& trust_dir);

/// What SIGHUP changes at once (dockd run and the demo's --config): the log level and the
/// upload cap and schedule from `fresh`, and the trust directory read again (a new CRL refuses
/// the cameras it revokes from their next docking). Transfers under way go on, at the new cap
/// from their next slice. Problems are logged; what is in use stays.
void apply_reload(const Config& fresh, s3::RateLimiter* limiter, Dock& dock, const std::filesystem::path& trust_dir);

/// Runs the service with its arguments (after "run"); returns the exit code (0 after a clean
/// stop, 1 when it cannot start, or dockd --check-config's codes for a bad config).
int run_service(const std::vector<std::string>& args);

}  // namespace bodydock::dock
