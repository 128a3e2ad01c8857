// The daemon's files and sockets have the modes the design gives them, whatever umask it was
// started with: `dockd demo` (emulated cameras, the web page, the control socket) runs under
// umask 000, and every file, directory and socket it made is walked, while it runs (the
// database's -wal and -shm, footage in the spool, the socket) and after it stopped (the
// store, the shipped audit log). Rules, from DESIGN section 4 ("secrets live in files readable
// only by the service user"), systemd/bodydock.tmpfiles (state and spool 0750, dock.key and
// web-accounts 0600) and dockd.service (UMask=0027, control socket 0660):
//   - nothing writable by group or others, no setuid/setgid/sticky bit, no executable file,
//     nothing but files, directories and sockets;
//   - directories 0750 or 0700; the ones holding private keys (the trust directory, the
//     emulated world and its fleet CA) 0700;
//   - secrets (*.key, web-accounts, web-admin-password) and footage in the spool exactly 0600;
//   - public certificates and keys (*.crt, *.pem, *.pub) at most 0644; everything else (the
//     database, the audit log, stored segments and their records) nothing for others;
//   - the control socket exactly 0660.
// The rules go by kind, not by a list of names, so a new file with a wrong mode fails too.
#include "support/daemon.hpp"
#include "support/sandbox.hpp"

#include <boost/test/unit_test.hpp>

#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <memory>
#include <thread>

using namespace bodydock;
namespace fs = std::filesystem;

namespace {

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

std::string octal(unsigned mode) {
  char out[8];
  std::snprintf(out, sizeof out, "%04o", mode);
  return out;
}

bool ends_with(const std::string& s, std::string_view tail) { return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0; }

/// What is wrong with the mode of `p` (under `state`, the dock's state directory, or the world,
/// the store or the socket's directory beside it); empty when nothing is.
std::string mode_problem(const fs::path& p, const struct stat& st, const fs::path& state, const fs::path& world) {
  const unsigned mode = st.st_mode & 07777;
  const auto name = p.filename().string();
  if (mode & 07000) return "setuid, setgid or sticky bit";
  // Connecting takes write permission: the group (dockctl's users) needs it, nobody else.
  if (S_ISSOCK(st.st_mode)) return mode == 0660 ? "" : "a socket must be 0660 (owner and the bodydock group connect)";
  if (mode & 0022) return "writable by group or others";
  if (S_ISDIR(st.st_mode)) {
    const bool keys = p == state / "trust" || p == world || p == world / "fleet";
    if (keys) return mode == 0700 ? "" : "a directory holding private keys must be 0700";
    return mode == 0750 || mode == 0700 ? "" : "a directory must be 0750 or 0700";
  }
  if (!S_ISREG(st.st_mode)) return "neither a file, a directory nor a socket";
  if (mode & 0111) return "an executable file";
  const bool secret = ends_with(name, ".key") || name == "web-accounts" || name == "web-admin-password";
  if (secret) return mode == 0600 ? "" : "a secret must be 0600";
  const auto rel = p.lexically_relative(state);
  if (!rel.empty() && *rel.begin() == "spool") return mode == 0600 ? "" : "footage in the spool must be 0600";
  if (ends_with(name, ".crt") || ends_with(name, ".pem") || ends_with(name, ".pub")) return "";  // public; not writable, checked above
  return mode & 0007 ? "readable by others" : "";
}

/// Walks `roots` (and the roots themselves): every problem, and the paths seen.
std::map<fs::path, std::string> walk(const std::vector<fs::path>& roots, const fs::path& state, const fs::path& world, std::vector<fs::path>& seen) {
  std::map<fs::path, std::string> problems;
  const auto check = [&](const fs::path& p) {
    struct stat st {};
    if (::lstat(p.c_str(), &st) != 0) return;  // gone meanwhile (a temporary the dock renamed)
    seen.push_back(p);
    if (auto why = mode_problem(p, st, state, world); !why.empty()) problems[p] = octal(st.st_mode & 07777) + ": " + why;
  };
  for (const auto& root : roots) {
    if (!fs::exists(root)) continue;
    check(root);
    std::error_code ec;
    for (fs::recursive_directory_iterator it(root, fs::directory_options::skip_permission_denied, ec), end; it != end; it.increment(ec)) {
      if (ec) break;
      check(it->path());
    }
  }
  return problems;
}

bool saw(const std::vector<fs::path>& seen, const fs::path& p) { return std::find(seen.begin(), seen.end(), p) != seen.end(); }

}  // namespace

BOOST_AUTO_TEST_SUITE(file_modes)

BOOST_AUTO_TEST_CASE(every_file_directory_and_socket_has_its_designed_mode_even_under_umask_000) {
  test::TempDir dir;
  const auto state = dir / "state", world = dir / "state.world", store = dir / "store", run = dir / "run";
  const auto sock = run / "control.sock";
  // The socket's directory stands for /run/bodydock (RuntimeDirectoryMode=0750).
  fs::create_directory(run);
  fs::permissions(run, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec, fs::perm_options::replace);
  const auto roots = std::vector<fs::path>{state, world, store, run};

  // The web page (so the accounts file and the admin's password are made) and the control
  // socket, uploads held so footage waits in the spool while the files are walked.
  const mode_t before = ::umask(0);
  auto demo = std::make_unique<test::Daemon>(
      std::vector<std::string>{DOCKD_PATH, "demo", "--cameras", "2", "--segments", "2", "--segment-mib", "0.5", "--store", store.string(), "--state",
                               state.string(), "--no-table", "--web", "127.0.0.1:0", "--control", sock.string(), "--pause-uploads"},
      dir / "demo.log");
  ::umask(before);
  const auto ctl = [&](std::vector<std::string> args) {
    args.insert(args.begin(), DOCKCTL_PATH);
    args.push_back("--socket");
    args.push_back(sock.string());
    return test::run_command(args, dir / "ctl.log");
  };
  for (int i = 0; i < 600 && !fs::exists(sock); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  BOOST_REQUIRE_MESSAGE(fs::exists(sock), test::slurp(dir / "demo.log"));
  std::string out;
  for (int i = 0; i < 600; ++i) {
    int rc = 0;
    std::tie(rc, out) = ctl({"queue"});
    BOOST_REQUIRE_MESSAGE(rc == 0, out);
    if (contains(out, "4 segment(s), 2.0 MiB waiting for storage")) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  BOOST_REQUIRE_MESSAGE(contains(out, "4 segment(s), 2.0 MiB waiting for storage"), out);

  // While it runs: the live database, footage in the spool, the socket.
  std::vector<fs::path> seen;
  auto problems = walk(roots, state, world, seen);
  for (const auto& [p, why] : problems) BOOST_ERROR("while running: " << p.string() << " has mode " << why);
  BOOST_TEST_MESSAGE("while running: " << seen.size() << " paths checked");
  for (const auto& p : {state / "dock.sqlite", state / "dock.sqlite-wal", state / "dock.sqlite-shm", state / "audit" / "audit.log",
                        state / "trust" / "dock.key", state / "web-accounts", state / "web-admin-password", sock})
    BOOST_CHECK_MESSAGE(saw(seen, p), p.string() << " was not there to check");
  const auto spooled = std::count_if(seen.begin(), seen.end(), [&](const fs::path& p) {
    const auto rel = p.lexically_relative(state / "spool");
    return !rel.empty() && *rel.begin() != ".." && fs::is_regular_file(p);
  });
  BOOST_CHECK_MESSAGE(spooled >= 4, "only " << spooled << " files in the spool to check");

  // Then uploads run, and after the dock stopped: the store and the audit log shipped to it.
  auto [rc, said] = ctl({"queue", "resume"});
  BOOST_REQUIRE_MESSAGE(rc == 0, said);
  for (int i = 0; i < 600; ++i) {
    std::tie(rc, out) = ctl({"status"});
    BOOST_REQUIRE_MESSAGE(rc == 0, out);
    if (contains(out, "stored 4 segments")) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  BOOST_REQUIRE_MESSAGE(contains(out, "stored 4 segments"), out);
  demo->terminate();
  BOOST_CHECK_EQUAL(demo->wait_exit(std::chrono::milliseconds(20000)), 0);
  seen.clear();
  problems = walk(roots, state, world, seen);
  for (const auto& [p, why] : problems) BOOST_ERROR("after stopping: " << p.string() << " has mode " << why);
  BOOST_TEST_MESSAGE("after stopping: " << seen.size() << " paths checked");
  const auto stored = std::count_if(seen.begin(), seen.end(), [](const fs::path& p) { return p.extension() == ".seg"; });
  BOOST_CHECK_MESSAGE(stored >= 4, "only " << stored << " stored segments to check");
}

BOOST_AUTO_TEST_SUITE_END()
