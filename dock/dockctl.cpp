// dockctl: the operator's and the centre's tool: the fleet PKI, the audit log and the evidence (kUsage lists
// the commands). Exit codes: 0 fine, 1 refused / verification failed / I/O error, 2 bad usage.
#include "dock/audit.hpp"
#include "dock/cli.hpp"
#include "dock/evidence.hpp"
#include "dock/pki.hpp"
#include "dock/state_db.hpp"
#include "dock/web/status_text.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <boost/json/parse.hpp>

#include <pwd.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <string>
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
    "  status [--url URL] [--watch]        what every slot, the queue, the uplink and the spool are\n"
    "                                      doing, from the running dock's web API (default URL\n"
    "                                      http://127.0.0.1:8080); --watch redraws it every second\n"
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
    const char* user = std::getenv("SUDO_USER");
    if (!user) user = std::getenv("USER");
    if (!user)
      if (const passwd* pw = ::getpwuid(::geteuid())) user = pw->pw_name;
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

/// GET URL/api/v1/status from the running dock; the JSON, or a message saying why not.
std::variant<boost::json::object, std::string> fetch_status(const std::string& url) {
  namespace beast = boost::beast;
  namespace http = beast::http;
  namespace asio = boost::asio;
  if (!url.starts_with("http://")) return "only http:// URLs (the dock's page on this machine or the site LAN): '" + url + "'";
  auto rest = url.substr(7);
  rest = rest.substr(0, rest.find('/'));
  std::string host = rest, port = "80";
  if (const auto colon = rest.rfind(':'); colon != std::string::npos && rest.find(']') == std::string::npos) {
    host = rest.substr(0, colon);
    port = rest.substr(colon + 1);
  }
  asio::io_context ioc;
  beast::tcp_stream stream(ioc);
  boost::system::error_code ec;
  const auto found = asio::ip::tcp::resolver(ioc).resolve(host, port, ec);
  if (ec) return "cannot resolve " + host + ": " + ec.message();
  stream.expires_after(std::chrono::seconds(5));
  stream.connect(found, ec);
  if (ec) return "the dock is not answering at " + url + " (" + ec.message() + "); is dockd running with its web page on?";
  http::request<http::empty_body> req{http::verb::get, "/api/v1/status", 11};
  req.set(http::field::host, rest);
  req.set(http::field::user_agent, "dockctl");
  http::write(stream, req, ec);
  beast::flat_buffer buf;
  http::response_parser<http::string_body> parser;
  parser.body_limit(4u << 20);
  if (!ec) http::read(stream, buf, parser, ec);
  if (ec) return "no answer from " + url + ": " + ec.message();
  const auto& res = parser.get();
  if (res.result() == http::status::unauthorized) return "the dock's status needs a login (its web page is private)";
  if (res.result() != http::status::ok) return "the dock answered HTTP " + std::to_string(res.result_int());
  auto v = boost::json::parse(res.body(), ec);
  if (ec || !v.is_object()) return "the dock's answer is not a status (JSON object)";
  return std::move(v.as_object());
}

int status_command(const std::vector<std::string>& args) {
  std::string url = "http://127.0.0.1:8080";
  bool watch = false;
  for (std::size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--url" && i + 1 < args.size()) url = args[++i];
    else if (args[i] == "--watch") watch = true;
    else {
      std::fprintf(stderr, "dockctl status: unexpected argument '%s'\n", args[i].c_str());
      return 2;
    }
  }
  while (!url.empty() && url.back() == '/') url.pop_back();
  const bool tty = ::isatty(STDOUT_FILENO) == 1;
  std::size_t last_lines = 0;
  for (;;) {
    auto got = fetch_status(url);
    if (auto* why = std::get_if<std::string>(&got)) {
      std::fprintf(stderr, "dockctl status: %s\n", why->c_str());
      return 1;
    }
    const auto text = bodydock::dock::web::render_status_text(std::get<boost::json::object>(got), tty);
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
