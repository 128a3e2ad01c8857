// dockctl: the operator's and the centre's tool: the fleet PKI, the audit log and the evidence (kUsage lists
// the commands). Exit codes: 0 fine, 1 refused / verification failed / I/O error, 2 bad usage.
#include "dock/audit.hpp"
#include "dock/cli.hpp"
#include "dock/conformance.hpp"
#include "dock/evidence.hpp"
#include "dock/pki.hpp"
#include "dock/state_db.hpp"
#include "dock/web/status_text.hpp"
#include "hw/umockdev_bus.hpp"
#include "usb/usb_context.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <pwd.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <map>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <string>
#include <system_error>
#include <thread>
#include <variant>
#include <vector>

namespace {

constexpr const char* kUsage =
    "usage: dockctl <command> [options]\n"
    "\n"
    "commands:\n"
    "  pki init --dir D --name NAME [--days N]   create the fleet CA (ECDSA P-256; 3650 days)\n"
    "  pki issue-dock --dir D --id ID [--days N]  key and certificate for a dock (825 days)\n"
    "  pki provision-dock --dir D --id ID --out TRUSTDIR\n"
    "                                      the dock's trust directory: CA certificate, CRL, its key\n"
    "                                      and certificate (issued first if it has none); rerun to\n"
    "                                      carry a new CRL to the dock\n"
    "  pki enrol-camera --dir D --serial S --officer O --pubkey FILE [--days N]\n"
    "                                      certificate for a camera's secure-element key (1825 days)\n"
    "  pki revoke --dir D --name NAME --reason TEXT   revoke a dock or camera; re-signs the CRL\n"
    "  pki list --dir D                    every certificate: role, name, officer, expiry, state\n"
    "  pki check --dir D --cert FILE --role dock|camera [--name NAME]\n"
    "                                      verify a certificate against the fleet (CA, time, CRL)\n"
    "  pki device-key --out-private F --out-public F   make a P-256 key pair as a camera would\n"
    "  evidence verify STORE [--ca FILE]   check every stored segment of every camera: hashes,\n"
    "                                      manifests, camera signatures and the chain; gaps and\n"
    "                                      alterations named. --ca: also check each camera's\n"
    "                                      certificate against the fleet CA\n"
    "  evidence decrypt SEGMENT --key ORG_PRIVATE_KEY --out FILE --purpose PURPOSE\n"
    "           [--by NAME] [--reference TEXT] [--access-log FILE]\n"
    "                                      decrypt one stored segment after checking it; PURPOSE is\n"
    "                                      investigation, complaint, subject-access-request or\n"
    "                                      training; who, why and what are logged first (default\n"
    "                                      log: evidence-access.log in the store's top directory)\n"
    "  audit verify --state DIR            check the audit log's chain: edited, removed or\n"
    "                                      reordered entries are named; exit 1 if any\n"
    "  audit export --state DIR [--out F]  write the audit log as JSON lines (stdout by default),\n"
    "                                      after verifying it; exit 1 if it does not verify\n"
    "  cameras enrol ...                   the same as pki enrol-camera (at the fleet CA)\n"
    "  cameras assign --dir D --serial S --officer O\n"
    "                                      bind a camera to another officer (at the fleet CA): a new\n"
    "                                      certificate for its key, the old one revoked\n"
    "\n"
    "the running dock, over its control socket (--socket PATH; default $BODYDOCK_CONTROL_SOCKET or\n"
    "/run/bodydock/control.sock, open to root and the bodydock group):\n"
    "  status [--url URL] [--watch]        what every slot, the queue, the uplink and the spool are\n"
    "                                      doing; --url: from the dock's web page instead (public\n"
    "                                      there unless made private); --watch: every second\n"
    "  queue [list]                        what waits for storage, in the order it is sent\n"
    "  queue retry|pause|resume [--reason TEXT]\n"
    "                                      end a backoff now / start no new upload / carry on\n"
    "  cameras [list]                      every camera this dock has seen: officer, slot, last\n"
    "                                      docking, segments still on it, revocations here\n"
    "  cameras revoke SERIAL --reason TEXT     charge-only at this dock from its next docking\n"
    "  cameras reinstate SERIAL --reason TEXT  lift a revocation made at this dock\n"
    "  slots power-cycle N [--reason TEXT] switch slot N's port off and on (a hung camera)\n"
    "\n"
    "a camera against the protocol (proto/PROTOCOL.md), as the host, case by case:\n"
    "  conformance --emulator [--usb] [--junit FILE] [--case NAME]... [--emulator-fault F]...\n"
    "                                      the built-in camera emulator, over the in-process link or\n"
    "                                      with --usb over emulated USB (umockdev, real libusb);\n"
    "                                      --emulator-fault replay-auth | charger-stuck |\n"
    "                                      bad-signature=SEQ | hide=SEQ breaks it to show a failure\n"
    "  conformance --device PORTPATH (--trust DIR | --fleet DIR) [--junit FILE] [--case NAME]...\n"
    "                                      the camera on USB port PORTPATH (e.g. 1-1.3). It must trust\n"
    "                                      the dock: --trust a dock trust directory of the camera's\n"
    "                                      fleet (pki provision-dock --out DIR), or --fleet the fleet CA\n"
    "                                      directory (a dock 'conformance-dock' is issued there on\n"
    "                                      first use). ERASES FOOTAGE: erase.valid erases the camera's\n"
    "                                      oldest segment, and storage.full one more when the camera\n"
    "                                      is full. Each case starts with a USB port reset (a new docking)\n"
    "  conformance --list                  every case, the PROTOCOL.md sections it checks, and what\n"
    "                                      it checks\n"
    "    options: --timeout-ms N (reply deadline, default 5000), --stress-requests N (default 10000),\n"
    "             --seed N (random requests); a table on stdout, JUnit XML with --junit; exit 0 when\n"
    "             no case failed (not applicable is not a pass, but not a failure), 1 when one did\n"
    "exit codes: 0 done, 1 refused / not running / failed, 2 bad usage\n"
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

/// --key value pairs; every key must be one of `allowed`.
std::optional<std::map<std::string, std::string>> options(const std::vector<std::string>& a, std::initializer_list<const char*> allowed) {
  std::map<std::string, std::string> out;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const auto& k = a[i];
    const bool known = std::any_of(allowed.begin(), allowed.end(), [&](const char* x) { return k == x; });
    if (!known || i + 1 >= a.size()) {
      std::fprintf(stderr, "dockctl: %s '%s'\n", known ? "missing value for" : "unexpected argument", k.c_str());
      return std::nullopt;
    }
    out[k] = a[++i];
  }
  return out;
}

bool need(const std::map<std::string, std::string>& o, std::initializer_list<const char*> keys) {
  for (const char* k : keys)
    if (!o.contains(k)) {
      std::fprintf(stderr, "dockctl: %s is required\n", k);
      return false;
    }
  return true;
}

std::optional<bodydock::pki::Validity> validity(const std::map<std::string, std::string>& o, bodydock::pki::Validity v) {
  if (auto it = o.find("--days"); it != o.end()) {
    char* end = nullptr;
    const long days = std::strtol(it->second.c_str(), &end, 10);
    if (end == it->second.c_str() || *end != '\0' || days < 1 || days > 36500) {
      std::fprintf(stderr, "dockctl: --days must be 1..36500, not '%s'\n", it->second.c_str());
      return std::nullopt;
    }
    v.lifetime = std::chrono::hours(24 * days);
  }
  return v;
}

std::string read_all(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) throw std::runtime_error(p.string() + ": cannot read");
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

int evidence_command(const std::string& sub, const std::vector<std::string>& a) {
  if (a.empty() || a[0].starts_with("--")) {
    std::fprintf(stderr, "dockctl: evidence %s needs a %s first\n", sub.c_str(), sub == "verify" ? "STORE" : "SEGMENT");
    return 2;
  }
  const std::vector<std::string> rest(a.begin() + 1, a.end());
  if (sub == "verify") {
    auto o = options(rest, {"--ca"});
    if (!o) return 2;
    std::optional<bodydock::proto::crypto::TrustAnchor> fleet;
    if (o->contains("--ca")) fleet = bodydock::proto::crypto::TrustAnchor::from_pem(read_all(o->at("--ca")), "");
    const auto r = bodydock::dock::verify_evidence(a[0], fleet);
    for (const auto& n : r.notes) std::printf("NOTE %s\n", n.c_str());
    for (const auto& p : r.problems) std::printf("PROBLEM %s\n", p.c_str());
    std::printf("%llu camera(s), %llu segment(s): %llu intact, %zu problem(s)\n", static_cast<unsigned long long>(r.cameras),
                static_cast<unsigned long long>(r.segments), static_cast<unsigned long long>(r.intact), r.problems.size());
    return r.ok() ? 0 : 1;
  }
  if (sub == "decrypt") {
    auto o = options(rest, {"--key", "--out", "--purpose", "--by", "--reference", "--access-log"});
    if (!o || !need(*o, {"--key", "--out", "--purpose"})) return 2;
    bodydock::dock::DecryptRequest req;
    req.segment = a[0];
    req.key = o->at("--key");
    req.out = o->at("--out");
    req.purpose = o->at("--purpose");
    if (std::find(std::begin(bodydock::dock::kDecryptPurposes), std::end(bodydock::dock::kDecryptPurposes), req.purpose) ==
        std::end(bodydock::dock::kDecryptPurposes)) {
      std::fprintf(stderr, "dockctl: --purpose must be investigation, complaint, subject-access-request or training, not '%s'\n",
                   req.purpose.c_str());
      return 2;
    }
    const char* user = std::getenv("SUDO_USER");  // NOLINT(concurrency-mt-unsafe): dockctl runs no other thread here
    if (!user) user = std::getenv("USER");        // NOLINT(concurrency-mt-unsafe): dockctl runs no other thread here
    if (!user)
      if (const passwd* pw = ::getpwuid(::geteuid())) user = pw->pw_name;  // NOLINT(concurrency-mt-unsafe): dockctl runs no other thread here
    req.who = o->contains("--by") ? o->at("--by") : std::string(user ? user : "");
    if (req.who.empty()) {
      std::fputs("dockctl: say who decrypts with --by NAME\n", stderr);
      return 2;
    }
    if (o->contains("--reference")) req.reference = o->at("--reference");
    const auto store_root = std::filesystem::absolute(req.segment).parent_path().parent_path();
    req.access_log = o->contains("--access-log") ? std::filesystem::path(o->at("--access-log")) : store_root / "evidence-access.log";
    const auto n = bodydock::dock::decrypt_segment(req);
    std::printf("decrypted %llu bytes to %s (purpose %s, logged in %s)\n", static_cast<unsigned long long>(n), req.out.c_str(),
                req.purpose.c_str(), req.access_log.c_str());
    return 0;
  }
  std::fprintf(stderr, "dockctl: unknown evidence command '%s' (verify, decrypt)\n", sub.c_str());
  return 2;
}

int pki_command(const std::string& sub, const std::vector<std::string>& rest) {
  using namespace bodydock::pki;
  if (sub == "init") {
    auto o = options(rest, {"--dir", "--name", "--days"});
    if (!o || !need(*o, {"--dir", "--name"})) return 2;
    auto v = validity(*o, {std::chrono::seconds(0), std::chrono::hours(24 * 3650)});
    if (!v) return 2;
    Fleet::create(o->at("--dir"), o->at("--name"), *v);
    std::printf("fleet CA '%s' created in %s\n", o->at("--name").c_str(), o->at("--dir").c_str());
    return 0;
  }
  if (sub == "issue-dock") {
    auto o = options(rest, {"--dir", "--id", "--days"});
    if (!o || !need(*o, {"--dir", "--id"})) return 2;
    auto v = validity(*o, {});
    if (!v) return 2;
    Fleet::open(o->at("--dir")).issue_dock(o->at("--id"), *v);
    std::printf("dock '%s': key and certificate in %s/docks\n", o->at("--id").c_str(), o->at("--dir").c_str());
    return 0;
  }
  if (sub == "provision-dock") {
    auto o = options(rest, {"--dir", "--id", "--out"});
    if (!o || !need(*o, {"--dir", "--id", "--out"})) return 2;
    auto fleet = Fleet::open(o->at("--dir"));
    provision_dock(fleet, o->at("--id"), o->at("--out"));
    const auto id = load_dock_identity(o->at("--out"));  // proves the directory works as written
    std::printf("dock '%s': trust directory %s (ca.crt, crl.pem, dock.key, dock.crt)\n", id.id.c_str(), o->at("--out").c_str());
    return 0;
  }
  if (sub == "enrol-camera") {
    auto o = options(rest, {"--dir", "--serial", "--officer", "--pubkey", "--days"});
    if (!o || !need(*o, {"--dir", "--serial", "--officer", "--pubkey"})) return 2;
    auto v = validity(*o, {std::chrono::seconds(0), std::chrono::hours(24 * 1825)});
    if (!v) return 2;
    Fleet::open(o->at("--dir")).enrol_camera(o->at("--serial"), o->at("--officer"), o->at("--pubkey"), *v);
    std::printf("camera '%s' enrolled for officer '%s'\n", o->at("--serial").c_str(), o->at("--officer").c_str());
    return 0;
  }
  if (sub == "revoke") {
    auto o = options(rest, {"--dir", "--name", "--reason"});
    if (!o || !need(*o, {"--dir", "--name", "--reason"})) return 2;
    Fleet::open(o->at("--dir")).revoke(o->at("--name"), o->at("--reason"));
    std::printf("'%s' revoked; CRL re-signed\n", o->at("--name").c_str());
    return 0;
  }
  if (sub == "list") {
    auto o = options(rest, {"--dir"});
    if (!o || !need(*o, {"--dir"})) return 2;
    std::printf("%-7s %-20s %-12s %-20s %-8s %s\n", "role", "name", "officer", "valid until (UTC)", "state", "serial");
    for (const auto& i : Fleet::open(o->at("--dir")).list())
      std::printf("%-7s %-20s %-12s %-20s %-8s %s\n", role_name(i.role), i.name.c_str(), i.officer.empty() ? "-" : i.officer.c_str(),
                  i.not_after.c_str(), i.revoked ? "revoked" : i.expired ? "expired" : "valid", i.serial_hex.c_str());
    return 0;
  }
  if (sub == "check") {
    auto o = options(rest, {"--dir", "--cert", "--role", "--name"});
    if (!o || !need(*o, {"--dir", "--cert", "--role"})) return 2;
    const auto& r = o->at("--role");
    if (r != "dock" && r != "camera") {
      std::fputs("dockctl: --role must be dock or camera\n", stderr);
      return 2;
    }
    const auto name = o->contains("--name") ? o->at("--name") : std::string();
    if (auto why = Fleet::open(o->at("--dir")).check(o->at("--cert"), r == "dock" ? Role::dock : Role::camera, name)) {
      std::printf("REFUSED: %s\n", why->c_str());
      return 1;
    }
    std::puts("certificate OK");
    return 0;
  }
  if (sub == "device-key") {
    auto o = options(rest, {"--out-private", "--out-public"});
    if (!o || !need(*o, {"--out-private", "--out-public"})) return 2;
    make_device_key(o->at("--out-private"), o->at("--out-public"));
    return 0;
  }
  std::fprintf(stderr, "dockctl: unknown pki command '%s'\n", sub.c_str());
  return 2;
}

/// Where the running dock answers: its control socket (the default), or its web page's URL.
struct Target {
  std::string socket;
  std::string url;  ///< http://HOST:PORT, when given instead
  [[nodiscard]] std::string where() const { return url.empty() ? socket : url; }
};

Target default_target() {
  const char* env = std::getenv("BODYDOCK_CONTROL_SOCKET");  // NOLINT(concurrency-mt-unsafe): dockctl runs no other thread here
  return {env && *env ? env : "/run/bodydock/control.sock", {}};
}

/// The name dockctl runs as, for the dock's audit log.
std::string operator_name() {
  const char* user = std::getenv("SUDO_USER");      // NOLINT(concurrency-mt-unsafe): dockctl runs no other thread here
  if (!user || !*user) user = std::getenv("USER");  // NOLINT(concurrency-mt-unsafe): dockctl runs no other thread here
  if (!user || !*user)
    if (const passwd* pw = ::getpwuid(::geteuid())) user = pw->pw_name;  // NOLINT(concurrency-mt-unsafe): dockctl runs no other thread here
  return user ? user : "";
}

struct Answer {
  unsigned status = 0;
  boost::json::object body;
};

namespace beast = boost::beast;
namespace http = beast::http;
namespace asio = boost::asio;

template <typename Stream>
std::variant<Answer, std::string> exchange(Stream& stream, http::request<http::string_body>& req, const std::string& where) {
  boost::system::error_code ec;
  // A dock that accepts and then says nothing must not hang the operator's terminal (the
  // blocking calls below do not honour the stream's expiry).
  const timeval limit{30, 0};
  const int fd = beast::get_lowest_layer(stream).socket().native_handle();
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof limit);
  req.set(http::field::user_agent, "dockctl");
  req.set("X-Operator", operator_name());
  req.prepare_payload();
  http::write(stream, req, ec);
  beast::flat_buffer buf;
  http::response_parser<http::string_body> parser;
  parser.body_limit(16u << 20);
  if (!ec) http::read(stream, buf, parser, ec);
  if (ec) return "no answer from " + where + ": " + ec.message();
  const auto& res = parser.get();
  if (res.result() == http::status::service_unavailable) return Answer{503, {}};
  if (res.result() == http::status::unauthorized) return "the dock's status needs a login (its web page is private); use its control socket";
  auto v = boost::json::parse(res.body(), ec);
  if (ec || !v.is_object()) return "the dock answered HTTP " + std::to_string(res.result_int()) + " without a JSON object";
  return Answer{static_cast<unsigned>(res.result_int()), std::move(v.as_object())};
}

/// One request to the running dock; its answer, or why there is none, in words.
std::variant<Answer, std::string> call_dock(const Target& t, http::verb verb, const std::string& path, const boost::json::object* body = nullptr) {
  asio::io_context ioc;
  boost::system::error_code ec;
  http::request<http::string_body> req{verb, path, 11};
  if (body) {
    req.set(http::field::content_type, "application/json");
    req.body() = boost::json::serialize(*body);
  }
  if (t.url.empty()) {
    using local = asio::local::stream_protocol;
    beast::basic_stream<local> stream(ioc);
    stream.socket().connect(local::endpoint(t.socket), ec);
    if (ec == boost::system::errc::no_such_file_or_directory || ec == boost::system::errc::connection_refused)
      return "dockd is not running (nothing answers at " + t.socket + ")";
    if (ec == boost::system::errc::permission_denied)
      return "no permission to use " + t.socket + ": run dockctl as root or as a member of the bodydock group";
    if (ec) return "cannot reach dockd at " + t.socket + ": " + ec.message();
    req.set(http::field::host, "localhost");
    return exchange(stream, req, t.socket);
  }
  if (!t.url.starts_with("http://")) return "only http:// URLs (the dock's page on this machine or the site LAN): '" + t.url + "'";
  auto rest = t.url.substr(7);
  rest = rest.substr(0, rest.find('/'));
  std::string host = rest, port = "80";
  if (const auto colon = rest.rfind(':'); colon != std::string::npos && rest.find(']') == std::string::npos) {
    host = rest.substr(0, colon);
    port = rest.substr(colon + 1);
  }
  beast::tcp_stream stream(ioc);
  const auto found = asio::ip::tcp::resolver(ioc).resolve(host, port, ec);
  if (ec) return "cannot resolve " + host + ": " + ec.message();
  stream.expires_after(std::chrono::seconds(5));
  stream.connect(found, ec);
  if (ec) return "the dock is not answering at " + t.url + " (" + ec.message() + "); is dockd running with its web page on?";
  req.set(http::field::host, rest);
  return exchange(stream, req, t.url);
}

/// Takes --socket PATH / --url URL (when `url_ok`) out of `args`.
void take_target(std::vector<std::string>& args, Target& t, bool url_ok) {
  t = default_target();
  std::vector<std::string> rest;
  for (std::size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--socket" && i + 1 < args.size()) t.socket = args[++i];
    else if (url_ok && args[i] == "--url" && i + 1 < args.size()) t.url = args[++i];
    else rest.push_back(args[i]);
  }
  while (!t.url.empty() && t.url.back() == '/') t.url.pop_back();
  args = std::move(rest);
}

/// The dock's answer as JSON, or nullopt after printing why there is none (exit 1).
std::optional<boost::json::object> ask(const Target& t, http::verb verb, const std::string& path, const boost::json::object* body = nullptr) {
  auto got = call_dock(t, verb, path, body);
  if (auto* why = std::get_if<std::string>(&got)) {
    std::fprintf(stderr, "dockctl: %s\n", why->c_str());
    return std::nullopt;
  }
  auto& a = std::get<Answer>(got);
  if (a.status == 503) {
    std::fputs("dockctl: the dock is busy (too many connections); try again in a moment\n", stderr);
    return std::nullopt;
  }
  if (a.status != 200) {
    const auto* err = a.body.if_contains("error");
    std::fprintf(stderr, "dockctl: the dock refused: %s\n",
                 err && err->is_string() ? std::string(err->as_string()).c_str() : ("HTTP " + std::to_string(a.status)).c_str());
    return std::nullopt;
  }
  return std::move(a.body);
}

/// POST an admin action; prints the dock's message. Exit code.
int act(const Target& t, const std::string& name, const boost::json::object& body) {
  auto r = ask(t, http::verb::post, "/api/v1/actions/" + name, &body);
  if (!r) return 1;
  const auto* msg = r->if_contains("message");
  std::printf("%s\n", msg && msg->is_string() ? std::string(msg->as_string()).c_str() : "done");
  return 0;
}

/// --reason TEXT (optional unless `required`) and positional words out of `args`.
bool reason_and_words(const std::vector<std::string>& args, std::string& reason, std::vector<std::string>& words, bool required) {
  for (std::size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--reason" && i + 1 < args.size()) reason = args[++i];
    else if (args[i].starts_with("--")) {
      std::fprintf(stderr, "dockctl: unexpected argument '%s'\n", args[i].c_str());
      return false;
    } else words.push_back(args[i]);
  }
  if (required && reason.empty()) {
    std::fputs("dockctl: say why with --reason TEXT (it goes into the audit log)\n", stderr);
    return false;
  }
  return true;
}

std::string json_text(const boost::json::object& o, std::string_view key) {
  const auto* v = o.if_contains(key);
  if (!v) return "";
  if (v->is_string()) return std::string(v->as_string());
  if (v->is_null()) return "";
  return boost::json::serialize(*v);
}

int queue_command(std::vector<std::string> args) {
  Target t;
  take_target(args, t, false);
  const std::string sub = args.empty() ? "list" : args[0];
  if (!args.empty()) args.erase(args.begin());
  if (sub == "list") {
    if (!args.empty()) {
      std::fprintf(stderr, "dockctl queue list: unexpected argument '%s'\n", args[0].c_str());
      return 2;
    }
    auto q = ask(t, http::verb::get, "/api/v1/queue");
    if (!q) return 1;
    const auto& items = q->at("items").as_array();
    std::printf("uplink %s%s%s%s\n", json_text(*q, "uplink").c_str(), q->at("paused").as_bool() ? ", PAUSED by an operator" : "",
                json_text(*q, "alert").empty() ? "" : ": ", json_text(*q, "alert").c_str());
    if (!items.empty()) std::printf("%-4s %-16s %8s %10s  %-9s %-8s %s\n", "#", "camera", "segment", "MiB", "state", "attempts", "last error");
    std::size_t n = 0;
    for (const auto& v : items) {
      const auto& i = v.as_object();
      const auto size = i.at("bytes").to_number<std::uint64_t>();
      const char* state = i.at("uploading").as_bool() ? "sending" : "waiting";
      std::printf("%-4zu %-16s %8s %10.1f  %-9s %-8s %s%s\n", ++n, json_text(i, "serial").c_str(), json_text(i, "segment").c_str(),
                  static_cast<double>(size) / (1 << 20), state, json_text(i, "attempts").c_str(), i.at("priority").as_bool() ? "[priority] " : "",
                  json_text(i, "last_error").c_str());
    }
    if (q->at("truncated").as_bool()) std::printf("... and more: the list shows the first %zu\n", items.size());
    std::printf("%llu segment(s), %.1f MiB waiting for storage\n", static_cast<unsigned long long>(q->at("total_segments").to_number<std::uint64_t>()),
                q->at("total_bytes").to_number<double>() / (1 << 20));
    return 0;
  }
  std::string reason;
  std::vector<std::string> words;
  if (sub == "retry" || sub == "pause" || sub == "resume") {
    if (!reason_and_words(args, reason, words, false) || !words.empty()) {
      if (!words.empty()) std::fprintf(stderr, "dockctl queue %s: unexpected argument '%s'\n", sub.c_str(), words[0].c_str());
      return 2;
    }
    boost::json::object body;
    if (!reason.empty()) body["reason"] = reason;
    return act(t, sub, body);
  }
  std::fprintf(stderr, "dockctl: unknown queue command '%s' (list, retry, pause, resume)\n", sub.c_str());
  return 2;
}

std::string when_text(std::int64_t unix_ms) {
  if (unix_ms <= 0) return "-";
  const std::time_t t = unix_ms / 1000;
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char out[32];
  std::strftime(out, sizeof out, "%Y-%m-%d %H:%M", &tm);
  return out;
}

int cameras_command(std::vector<std::string> args) {
  Target t;
  take_target(args, t, false);
  const std::string sub = args.empty() || args[0].starts_with("--") ? "list" : args[0];
  if (!args.empty() && !args[0].starts_with("--")) args.erase(args.begin());
  // At the fleet CA (the centre): certificates bind a camera's key to its officer.
  if (sub == "enrol") {
    return pki_command("enrol-camera", args);
  }
  if (sub == "assign") {
    auto o = options(args, {"--dir", "--serial", "--officer"});
    if (!o || !need(*o, {"--dir", "--serial", "--officer"})) return 2;
    auto fleet = bodydock::pki::Fleet::open(o->at("--dir"));
    fleet.reassign_camera(o->at("--serial"), o->at("--officer"));
    std::printf("camera '%s' now belongs to officer '%s': new certificate %s; the old one is revoked (CRL re-signed).\n"
                "Load the new certificate into the camera and carry the CRL to the docks (pki provision-dock, then reload dockd).\n",
                o->at("--serial").c_str(), o->at("--officer").c_str(), (fleet.dir() / "cameras" / (o->at("--serial") + ".crt")).c_str());
    return 0;
  }
  // At the running dock.
  if (sub == "list") {
    if (!args.empty()) {
      std::fprintf(stderr, "dockctl cameras list: unexpected argument '%s'\n", args[0].c_str());
      return 2;
    }
    auto r = ask(t, http::verb::get, "/api/v1/cameras");
    if (!r) return 1;
    const auto& list = r->at("cameras").as_array();
    std::printf("%-16s %-12s %-14s %-10s %-5s %-17s %-8s %s\n", "camera", "officer", "model", "firmware", "slot", "last docked (UTC)", "waiting",
                "state");
    for (const auto& v : list) {
      const auto& c = v.as_object();
      std::uint64_t waiting = 0;
      for (const auto& [st, n] : c.at("segments").as_object())
        if (st != "ERASED") waiting += n.to_number<std::uint64_t>();
      const auto slot = json_text(c, "slot");
      const auto revoked = json_text(c, "revoked");
      std::printf("%-16s %-12s %-14s %-10s %-5s %-17s %-8llu %s\n", json_text(c, "serial").c_str(),
                  json_text(c, "officer").empty() ? "-" : json_text(c, "officer").c_str(), json_text(c, "model").c_str(),
                  json_text(c, "firmware").c_str(), slot.empty() ? "-" : slot.c_str(),
                  when_text(c.at("last_seen_ms").to_number<std::int64_t>()).c_str(), static_cast<unsigned long long>(waiting),
                  revoked.empty() ? "ok" : ("REVOKED at this dock by " + revoked).c_str());
    }
    std::printf("%zu camera(s)\n", list.size());
    return 0;
  }
  if (sub == "revoke" || sub == "reinstate") {
    std::string reason;
    std::vector<std::string> words;
    if (!reason_and_words(args, reason, words, true)) return 2;
    if (words.size() != 1) {
      std::fprintf(stderr, "dockctl cameras %s: name one camera serial\n", sub.c_str());
      return 2;
    }
    return act(t, sub, boost::json::object{{"serial", words[0]}, {"reason", reason}});
  }
  std::fprintf(stderr, "dockctl: unknown cameras command '%s' (list, revoke, reinstate, enrol, assign)\n", sub.c_str());
  return 2;
}

int slots_command(std::vector<std::string> args) {
  Target t;
  take_target(args, t, false);
  const std::string sub = args.empty() ? "" : args[0];
  if (!args.empty()) args.erase(args.begin());
  if (sub == "power-cycle") {
    std::string reason;
    std::vector<std::string> words;
    if (!reason_and_words(args, reason, words, false)) return 2;
    char* end = nullptr;
    const long n = words.size() == 1 ? std::strtol(words[0].c_str(), &end, 10) : 0;
    if (end == nullptr || *end != '\0' || n < 1 || n > 64) {  // end is set exactly when there is one word
      std::fputs("dockctl slots power-cycle: name one slot number, as printed on the dock\n", stderr);
      return 2;
    }
    boost::json::object body{{"slot", n}};
    if (!reason.empty()) body["reason"] = reason;
    return act(t, "power-cycle", body);
  }
  std::fprintf(stderr, "dockctl: unknown slots command '%s' (power-cycle)\n", sub.c_str());
  return 2;
}

/// A private temporary directory, removed with everything in it.
struct ScratchDir {
  std::filesystem::path path;
  ScratchDir() {
    std::string templ = (std::filesystem::temp_directory_path() / "dockctl-conformance-XXXXXX").string();
    if (::mkdtemp(templ.data()) == nullptr) throw std::runtime_error("cannot make a temporary directory: " + std::generic_category().message(errno));
    path = templ;
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
};

std::optional<unsigned long long> whole_number(const std::string& option, const std::string& text, unsigned long long low, unsigned long long high) {
  const auto v = bodydock::dock::whole_number(text);
  if (!v || *v < low || *v > high) {
    std::fprintf(stderr, "dockctl conformance: %s must be a whole number %llu..%llu, not '%s'\n", option.c_str(), low, high, text.c_str());
    return std::nullopt;
  }
  return v;
}

int conformance_command(const std::vector<std::string>& args) {
  namespace cf = bodydock::dock::conformance;
  bool emulator = false, over_usb = false, list = false;
  std::string device, trust_dir, fleet_dir, junit;
  std::vector<std::string> faults;
  cf::SuiteOptions options;
  const auto known = cf::cases();
  for (std::size_t i = 0; i < args.size(); ++i) {
    const auto& a = args[i];
    const bool has_value = i + 1 < args.size();
    if (a == "--emulator") emulator = true;
    else if (a == "--usb") over_usb = true;
    else if (a == "--list") list = true;
    else if (a == "--device" && has_value) device = args[++i];
    else if (a == "--trust" && has_value) trust_dir = args[++i];
    else if (a == "--fleet" && has_value) fleet_dir = args[++i];
    else if (a == "--junit" && has_value) junit = args[++i];
    else if (a == "--emulator-fault" && has_value) faults.push_back(args[++i]);
    else if (a == "--case" && has_value) {
      const auto& name = args[++i];
      if (std::none_of(known.begin(), known.end(), [&](const cf::CaseInfo& c) { return c.name == name; })) {
        std::fprintf(stderr, "dockctl conformance: no case '%s' (dockctl conformance --list shows them)\n", name.c_str());
        return 2;
      }
      options.only.push_back(name);
    } else if ((a == "--timeout-ms" || a == "--stress-requests" || a == "--seed") && has_value) {
      const auto v = a == "--timeout-ms" ? whole_number(a, args[i + 1], 10, 600000)
                     : a == "--stress-requests" ? whole_number(a, args[i + 1], 1, 10000000)
                                                 : whole_number(a, args[i + 1], 0, ~0ull);
      ++i;
      if (!v) return 2;
      if (a == "--timeout-ms") options.request_timeout = std::chrono::milliseconds(*v);
      else if (a == "--stress-requests") options.stress_requests = static_cast<unsigned>(*v);
      else options.seed = *v;
    } else {
      static const char* const kWithValue[] = {"--device", "--trust", "--fleet", "--junit", "--emulator-fault", "--case", "--timeout-ms", "--stress-requests", "--seed"};
      const bool wants_value = std::find(std::begin(kWithValue), std::end(kWithValue), a) != std::end(kWithValue);
      std::fprintf(stderr, "dockctl conformance: %s '%s'\n", wants_value ? "missing value for" : "unexpected argument", a.c_str());
      return 2;
    }
  }
  if (list) {
    for (const auto& c : known) std::printf("%-24s %-22s %s\n", c.name.c_str(), c.sections.c_str(), c.checks.c_str());
    return 0;
  }
  if (emulator == !device.empty()) {
    std::fputs("dockctl conformance: say what to test: --emulator, or --device PORTPATH\n", stderr);
    return 2;
  }
  if (emulator && (!trust_dir.empty() || !fleet_dir.empty())) {
    std::fputs("dockctl conformance: --trust and --fleet are for --device (the emulator brings its own fleet)\n", stderr);
    return 2;
  }
  if (!emulator && (over_usb || !faults.empty())) {
    std::fputs("dockctl conformance: --usb and --emulator-fault are for --emulator\n", stderr);
    return 2;
  }
  if (!device.empty() && trust_dir.empty() == fleet_dir.empty()) {
    std::fputs("dockctl conformance: --device needs the camera's fleet: --trust DIR (a dock trust directory) or --fleet DIR (the fleet CA)\n", stderr);
    return 2;
  }
  if (over_usb) {
    std::vector<std::string> argv = {"dockctl", "conformance"};
    argv.insert(argv.end(), args.begin(), args.end());
    if (!bodydock::hw::ensure_umockdev_preload(argv)) {
      const std::string why = std::generic_category().message(errno);
      std::fprintf(stderr, "dockctl conformance: cannot run again with the USB emulation preload: %s\n", why.c_str());
      return 1;
    }
  }

  ScratchDir scratch;
  boost::asio::io_context ioc;
  std::optional<cf::Report> report;
  auto log_usb = [](bodydock::usb::UsbContext::LogLevel level, std::string_view line) {
    if (level == bodydock::usb::UsbContext::LogLevel::error || level == bodydock::usb::UsbContext::LogLevel::warning)
      std::fprintf(stderr, "libusb: %.*s\n", static_cast<int>(line.size()), line.data());
  };
  if (emulator) {
    cf::EmulatorRig rig(scratch.path);
    for (const auto& f : faults) {
      try {
        rig.apply_fault(f);
      } catch (const std::invalid_argument& e) {
        std::fprintf(stderr, "dockctl conformance: %s\n", e.what());
        return 2;
      }
    }
    if (over_usb) {
      // The bus first: it points libusb at the emulated sysfs and /dev before libusb starts.
      bodydock::hw::UmockdevBus bus;
      bodydock::usb::UsbContext usb(ioc.get_executor(), log_usb);
      usb.add_readiness_source(bus.readiness_fd());
      cf::UmockdevTarget target(ioc.get_executor(), bus, usb, rig.camera(), &rig.full_camera());
      report = cf::run_suite_blocking(ioc, target, rig.trust(), options);
    } else {
      cf::EmulatorTarget target(ioc.get_executor(), rig.camera(), &rig.full_camera());
      report = cf::run_suite_blocking(ioc, target, rig.trust(), options);
    }
  } else {
    std::shared_ptr<const bodydock::pki::DockIdentity> identity;
    if (!trust_dir.empty()) {
      identity = std::make_shared<const bodydock::pki::DockIdentity>(bodydock::pki::load_dock_identity(trust_dir));
    } else {
      auto fleet = bodydock::pki::Fleet::open(fleet_dir);
      bodydock::pki::provision_dock(fleet, "conformance-dock", scratch.path / "trust");
      identity = std::make_shared<const bodydock::pki::DockIdentity>(bodydock::pki::load_dock_identity(scratch.path / "trust"));
    }
    bodydock::usb::UsbContext usb(ioc.get_executor(), log_usb);
    cf::UsbTarget target(ioc.get_executor(), usb, device);
    bool present = false;
    bool finished = false;
    boost::asio::co_spawn(ioc, target.wait_present(std::chrono::seconds(3)), [&](const std::exception_ptr& e, bool there) {
      if (e) std::rethrow_exception(e);
      present = there;
      finished = true;
    });
    while (!finished) ioc.run_one();
    if (!present) {
      std::string seen;
      for (const auto& p : target.ports_seen()) seen += (seen.empty() ? "" : ", ") + p;
      std::fprintf(stderr, "dockctl conformance: no USB device on port %s (devices on: %s)\n", device.c_str(), seen.empty() ? "none" : seen.c_str());
      return 1;
    }
    report = cf::run_suite_blocking(ioc, target, {identity}, options);
  }
  std::fputs(cf::render_table(*report).c_str(), stdout);
  std::fflush(stdout);
  if (!junit.empty()) {
    std::ofstream out(junit, std::ios::binary | std::ios::trunc);
    out << cf::render_junit(*report);
    out.close();
    if (!out) {
      std::fprintf(stderr, "dockctl conformance: cannot write %s\n", junit.c_str());
      return 1;
    }
  }
  return report->failed() ? 1 : 0;
}

int status_command(std::vector<std::string> args) {
  Target t;
  take_target(args, t, true);
  bool watch = false;
  for (const auto& a : args) {
    if (a == "--watch") watch = true;
    else {
      std::fprintf(stderr, "dockctl status: unexpected argument '%s'\n", a.c_str());
      return 2;
    }
  }
  const bool tty = ::isatty(STDOUT_FILENO) == 1;
  std::size_t last_lines = 0;
  for (;;) {
    auto st = ask(t, http::verb::get, "/api/v1/status");
    if (!st) return 1;
    const auto text = bodydock::dock::web::render_status_text(*st, tty);
    if (watch && tty && last_lines) std::printf("\x1b[%zuF\x1b[J", last_lines);
    std::fputs(text.c_str(), stdout);
    std::fflush(stdout);
    if (!watch) return 0;
    last_lines = static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n'));
    std::this_thread::sleep_for(std::chrono::seconds(1));
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (auto rc = bodydock::dock::common_options(argc, argv, "dockctl", kUsage, BODYDOCK_VERSION)) return *rc;
  const std::string cmd = argv[1];
  try {
    if (cmd == "status") return status_command(std::vector<std::string>(argv + 2, argv + argc));
    if (cmd == "conformance") return conformance_command(std::vector<std::string>(argv + 2, argv + argc));
    if (cmd == "queue") return queue_command(std::vector<std::string>(argv + 2, argv + argc));
    if (cmd == "cameras") return cameras_command(std::vector<std::string>(argv + 2, argv + argc));
    if (cmd == "slots") return slots_command(std::vector<std::string>(argv + 2, argv + argc));
    if (cmd == "audit" && argc >= 3) return audit(argv[2], std::vector<std::string>(argv + 3, argv + argc));
    if (cmd == "evidence" && argc >= 3) return evidence_command(argv[2], std::vector<std::string>(argv + 3, argv + argc));
    if (cmd == "pki" && argc >= 3) return pki_command(argv[2], std::vector<std::string>(argv + 3, argv + argc));
  } catch (const bodydock::pki::PkiError& e) {
    std::fprintf(stderr, "dockctl: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "dockctl: %s\n", e.what());
    return 1;
  }
  std::fprintf(stderr, "dockctl: unknown command '%s'\n\n%s", cmd.c_str(), kUsage);
  return 2;
}
