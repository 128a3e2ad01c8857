// dockd: the bodydock daemon. Subcommands: run (the service), demo (emulated cameras, local
// store); --check-config FILE.
#include "dock/cli.hpp"
#include "dock/config.hpp"
#include "dock/demo.hpp"
#include "dock/service.hpp"

#include <sys/stat.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

namespace {

constexpr const char* kUsage =
    "usage: dockd <command> [options]\n"
    "\n"
    "commands:\n"
    "  run --config FILE\n"
    "           the dock as a service: cameras on real USB, everything from the config\n"
    "           file (dockd.toml; systemd/dockd.service starts it)\n"
    "  demo     dock emulated cameras and sync them into a local store\n"
    "           (dockd demo --help for its options)\n"
    "  --check-config FILE\n"
    "           check a config file (dockd.toml) and say what is wrong with it: exit 0\n"
    "           usable (warnings printed), 1 a value is wrong, 2 bad usage, 3 the file or a\n"
    "           file it names cannot be read (or is readable by others)\n"
    "\n"
    "options:\n"
    "  --help     this text\n"
    "  --version  print the version\n";

}  // namespace

int main(int argc, char** argv) {
  // What the dock makes (the state directory with footage, the database, the audit log; the
  // store; the demo's world) must not depend on the umask it was started with: a shell's 0022
  // leaves footage readable by every user, a wrapper's 0000 writable. Tighten the inherited
  // umask to at least dockd.service's UMask=0027 (never loosen it): directories 0750 at most,
  // files 0640 at most; secrets are made 0600 where they are written. SQLite gives the -wal and
  // -shm files the database's mode, so they follow.
  ::umask(::umask(0) | 027);
  if (auto rc = bodydock::dock::common_options(argc, argv, "dockd", kUsage, BODYDOCK_VERSION)) return *rc;
  const std::string cmd = argv[1];
  std::vector<std::string> args(argv + 2, argv + argc);
  if (cmd == "demo") return bodydock::dock::run_demo(args);
  if (cmd == "run") return bodydock::dock::run_service(args);
  if (cmd == "--check-config") {
    if (args.size() != 1) {
      std::fputs("usage: dockd --check-config FILE\n", stderr);
      return bodydock::dock::config_usage;
    }
    try {
      const auto c = bodydock::dock::load_config(args[0]);
      for (const auto& w : c.warnings) std::fprintf(stderr, "warning: %s\n", w.c_str());
      std::printf("%s: OK (%zu slots, store %s%s)\n", args[0].c_str(), c.slots.size(), c.store.c_str(),
                  c.web_listen.empty() ? "" : (", web page on " + c.web_listen).c_str());
      return bodydock::dock::config_ok;
    } catch (const bodydock::dock::ConfigError& e) {
      std::fprintf(stderr, "dockd: %s\n", e.what());
      return e.unreadable ? bodydock::dock::config_unreadable : bodydock::dock::config_invalid;
    }
  }
  std::fprintf(stderr, "dockd: unknown command '%s'\n\n%s", cmd.c_str(), kUsage);
  return 2;
}
