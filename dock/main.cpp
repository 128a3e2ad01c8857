// dockd: the bodydock daemon. Subcommands: demo (emulated cameras, local store).
#include "dock/cli.hpp"
#include "dock/demo.hpp"

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

namespace {

constexpr const char* kUsage =
    "usage: dockd <command> [options]\n"
    "\n"
    "commands:\n"
    "  demo     dock emulated cameras and sync them into a local store\n"
    "           (dockd demo --help for its options)\n"
    "\n"
    "options:\n"
    "  --help     this text\n"
    "  --version  print the version\n";

}  // namespace

int main(int argc, char** argv) {
  if (auto rc = bodydock::dock::common_options(argc, argv, "dockd", kUsage, BODYDOCK_VERSION)) return *rc;
  const std::string cmd = argv[1];
  std::vector<std::string> args(argv + 2, argv + argc);
  if (cmd == "demo") return bodydock::dock::run_demo(args);
  std::fprintf(stderr, "dockd: unknown command '%s'\n\n%s", cmd.c_str(), kUsage);
  return 2;
}
