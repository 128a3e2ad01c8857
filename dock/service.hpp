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

#include <string>
#include <vector>

namespace bodydock::dock {

/// Runs the service with its arguments (after "run"); returns the exit code (0 after a clean
/// stop, 1 when it cannot start, or dockd --check-config's codes for a bad config).
int run_service(const std::vector<std::string>& args);

}  // namespace bodydock::dock
