// dockctl: the operator's and the centre's tool. Commands:
//   audit verify --state DIR          checks the audit log's hash chain and its anchor
//   audit export --state DIR [--out FILE]   writes the log as JSON lines (after verifying it)
// Exit codes: 0 fine, 1 verification failed or I/O error, 2 bad usage.
#include "dock/audit.hpp"
#include "dock/state_db.hpp"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

namespace {

constexpr const char* kUsage =
    "usage: dockctl <command> [options]\n"
    "\n"
    "commands:\n"
    "  audit verify --state DIR            check the audit log's chain: edited, removed or\n"
    "                                      reordered entries are named; exit 1 if any\n"
    "  audit export --state DIR [--out F]  write the audit log as JSON lines (stdout by default),\n"
    "                                      after verifying it; exit 1 if it does not verify\n"
    "\n"
    "options:\n"
    "  --help     this text\n"
    "  --version  print the version\n";

using bodydock::dock::AuditLog;

struct Args {
  std::filesystem::path state;
  std::optional<std::filesystem::path> out;
};

std::optional<Args> parse(const std::vector<std::string>& a, bool allow_out) {
  Args r;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (a[i] == "--state" && i + 1 < a.size()) r.state = a[++i];
    else if (allow_out && a[i] == "--out" && i + 1 < a.size()) r.out = a[++i];
    else {
      std::fprintf(stderr, "dockctl: unexpected argument '%s'\n", a[i].c_str());
      return std::nullopt;
    }
  }
  if (r.state.empty()) {
    std::fputs("dockctl: --state DIR is required\n", stderr);
    return std::nullopt;
  }
  return r;
}

/// Verifies the log in `state`; prints problems to stderr. nullopt when it cannot be read at all.
std::optional<AuditLog::Report> verify(const std::filesystem::path& state) {
  const auto db = state / "dock.sqlite";
  if (!std::filesystem::exists(db)) {
    std::fprintf(stderr, "dockctl: %s holds no dock state (no dock.sqlite)\n", state.c_str());
    return std::nullopt;
  }
  bodydock::dock::StateDb s(db);
  auto report = AuditLog::verify(state / "audit" / "audit.log", s.audit_anchor());
  for (const auto& p : report.problems) std::fprintf(stderr, "audit: %s\n", p.c_str());
  return report;
}

int audit(const std::string& sub, const std::vector<std::string>& rest) {
  if (sub == "verify") {
    auto a = parse(rest, false);
    if (!a) return 2;
    auto r = verify(a->state);
    if (!r) return 1;
    if (!r->ok()) {
      std::printf("audit log does NOT verify: %zu problem(s) in %llu entries\n", r->problems.size(), static_cast<unsigned long long>(r->entries));
      return 1;
    }
    std::printf("audit log verifies: %llu entries, chain and anchor intact\n", static_cast<unsigned long long>(r->entries));
    return 0;
  }
  if (sub == "export") {
    auto a = parse(rest, true);
    if (!a) return 2;
    auto r = verify(a->state);
    if (!r) return 1;
    std::ifstream in(a->state / "audit" / "audit.log", std::ios::binary);
    if (a->out) {
      std::ofstream out(*a->out, std::ios::binary | std::ios::trunc);
      out << in.rdbuf();
      if (!out) {
        std::fprintf(stderr, "dockctl: cannot write %s\n", a->out->c_str());
        return 1;
      }
    } else {
      std::cout << in.rdbuf();
    }
    if (!r->ok()) std::fputs("dockctl: exported, but the log does NOT verify (see above)\n", stderr);
    return r->ok() ? 0 : 1;
  }
  std::fprintf(stderr, "dockctl: unknown audit command '%s' (verify, export)\n", sub.c_str());
  return 2;
}

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
    std::puts("dockctl " BODYDOCK_VERSION);
    return 0;
  }
  try {
    if (cmd == "audit" && argc >= 3) return audit(argv[2], std::vector<std::string>(argv + 3, argv + argc));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "dockctl: %s\n", e.what());
    return 1;
  }
  std::fprintf(stderr, "dockctl: unknown command '%s'\n\n%s", cmd.c_str(), kUsage);
  return 2;
}
