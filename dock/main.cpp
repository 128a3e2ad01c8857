// dockd: the bodydock daemon. Subcommands: demo (emulated cameras, local store).
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
  if (argc < 2) {
    std::fputs(kUsage, stderr);
    return 2;
  }
  const std::string cmd = argv[1];
  if (cmd == "--help" || cmd == "-h") {
    std::fputs(kUsage, stdout);
    return 0;
  }
  if (cmd == "--version") {
    std::puts("dockd " BODYDOCK_VERSION);
    return 0;
  }
  std::vector<std::string> args(argv + 2, argv + argc);
  if (cmd == "demo") return bodydock::dock::run_demo(args);
  std::fprintf(stderr, "dockd: unknown command '%s'\n\n%s", cmd.c_str(), kUsage);
  return 2;
}
