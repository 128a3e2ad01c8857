// `dockctl audit` as an operator uses it on a dock's state: verify says the log is intact after a
// demo, names an edited entry and exits 1, export writes the JSON lines; bad usage exits 2.
// `dockctl evidence verify` on the demo's store: intact, then a flipped byte named.
// `dockctl evidence decrypt`: the demo's footage back, only with the organisation's key and a purpose.
#include "dock/audit.hpp"
#include "dock/local_sink.hpp"
#include "hw/camera_device.hpp"
#include "support/daemon.hpp"
#include "support/sandbox.hpp"

#include <boost/test/unit_test.hpp>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <thread>

using namespace bodydock;

namespace {

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

/// Runs dockctl with `args`; its exit code and output.
std::pair<int, std::string> dockctl(const test::TempDir& dir, std::vector<std::string> args) {
  args.insert(args.begin(), DOCKCTL_PATH);
  return test::run_command(args, dir / "out.log");
}

/// The 32-byte private scalar of a P-256 key in PEM: the bytes that would decrypt, however stored.
proto::Bytes private_scalar(const std::string& pem) {
  BIO* b = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  EVP_PKEY* k = PEM_read_bio_PrivateKey(b, nullptr, nullptr, nullptr);
  BIO_free(b);
  BOOST_REQUIRE(k);
  BIGNUM* d = nullptr;
  BOOST_REQUIRE(EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_PRIV_KEY, &d) == 1);
  proto::Bytes out(32);
  BN_bn2binpad(d, out.data(), 32);
  BN_clear_free(d);
  EVP_PKEY_free(k);
  return out;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(dockctl_cli)

BOOST_AUTO_TEST_CASE(audit_verify_and_export_after_a_demo) {
  test::TempDir dir;
  const auto state = (dir / "state").string();
  auto [rc, out] = test::run_command({DOCKD_PATH, "demo", "--store", (dir / "store").string(), "--state", state, "--no-table", "--cameras", "2",
                                      "--segments", "2", "--segment-mib", "0.25", "--exit-when-idle"},
                                     dir / "demo.log");
  BOOST_REQUIRE_EQUAL(rc, 0);

  std::tie(rc, out) = test::run_command({DOCKCTL_PATH, "audit", "verify", "--state", state}, dir / "out.log");
  BOOST_CHECK_EQUAL(rc, 0);
  BOOST_CHECK_MESSAGE(contains(out, "audit log verifies: "), out);

  std::tie(rc, out) = test::run_command({DOCKCTL_PATH, "audit", "export", "--state", state, "--out", (dir / "audit.jsonl").string()}, dir / "out.log");
  BOOST_CHECK_EQUAL(rc, 0);
  const auto exported = test::slurp_text(dir / "audit.jsonl");
  BOOST_CHECK(contains(exported, R"("event":"erased")"));
  BOOST_CHECK(contains(exported, R"("actor":"dock demo-dock")"));

  // Someone edits why segment 1 of BC-0001 was erased.
  const auto log = dir / "state" / "audit" / "audit.log";
  auto text = test::slurp_text(log);
  const auto at = text.find("erased by camera");
  BOOST_REQUIRE(at != std::string::npos);
  text.replace(at, 6, "ERASED");
  std::ofstream(log, std::ios::trunc) << text;
  std::tie(rc, out) = test::run_command({DOCKCTL_PATH, "audit", "verify", "--state", state}, dir / "out.log");
  BOOST_CHECK_EQUAL(rc, 1);
  BOOST_CHECK_MESSAGE(contains(out, "was altered") && contains(out, "does NOT verify"), out);

  // The centre checks the store: intact, then one byte altered.
  const auto store = (dir / "store").string();
  std::tie(rc, out) = test::run_command({DOCKCTL_PATH, "evidence", "verify", store}, dir / "out.log");
  BOOST_CHECK_EQUAL(rc, 0);
  BOOST_CHECK_MESSAGE(contains(out, "2 camera(s), 4 segment(s): 4 intact, 0 problem(s)"), out);
  for (const auto& e : std::filesystem::directory_iterator(dir / "store" / "BC-0002"))
    if (e.path().extension() == ".seg" && e.path().filename().string().starts_with("00000002")) {
      std::fstream f(e.path(), std::ios::in | std::ios::out | std::ios::binary);
      f.seekp(10);
      f.put('\x5a');
    }
  std::tie(rc, out) = test::run_command({DOCKCTL_PATH, "evidence", "verify", store}, dir / "out.log");
  BOOST_CHECK_EQUAL(rc, 1);
  BOOST_CHECK_MESSAGE(contains(out, "PROBLEM BC-0002 segment 2: chunk 0") && contains(out, "3 intact, 1 problem(s)"), out);

  std::tie(rc, out) = test::run_command({DOCKCTL_PATH, "audit", "verify"}, dir / "out.log");
  BOOST_CHECK_EQUAL(rc, 2);
  BOOST_CHECK(contains(out, "--state DIR is required"));
  std::tie(rc, out) = test::run_command({DOCKCTL_PATH, "audit", "verify", "--state", (dir / "nothing").string()}, dir / "out.log");
  BOOST_CHECK_EQUAL(rc, 1);
  BOOST_CHECK(contains(out, "holds no dock state"));
  std::tie(rc, out) = test::run_command({DOCKCTL_PATH, "frobnicate"}, dir / "out.log");
  BOOST_CHECK_EQUAL(rc, 2);
}

// The fleet PKI from the command line: a site sets up its CA, a dock and a camera, lists them,
// revokes the camera, and `pki check` then refuses its certificate with the reason.
BOOST_AUTO_TEST_CASE(pki_from_the_command_line) {
  test::TempDir dir;
  const auto fleet = (dir / "fleet").string();
  auto run = [&](const std::vector<std::string>& args) { return dockctl(dir, args); };
  auto [rc, out] = run({"pki", "init", "--dir", fleet, "--name", "Gemeente Testdam"});
  BOOST_REQUIRE_MESSAGE(rc == 0, out);
  std::tie(rc, out) = run({"pki", "issue-dock", "--dir", fleet, "--id", "dock-01"});
  BOOST_REQUIRE_MESSAGE(rc == 0, out);
  // What the dock gets: everything to authenticate and sign receipts, never the CA key.
  std::tie(rc, out) = run({"pki", "provision-dock", "--dir", fleet, "--id", "dock-01", "--out", (dir / "trust").string()});
  BOOST_REQUIRE_MESSAGE(rc == 0, out);
  for (const char* f : {"ca.crt", "crl.pem", "dock.key", "dock.crt"}) BOOST_CHECK(std::filesystem::exists(dir / "trust" / f));
  BOOST_CHECK(!std::filesystem::exists(dir / "trust" / "ca.key"));
  BOOST_CHECK((std::filesystem::status(dir / "trust" / "dock.key").permissions() & std::filesystem::perms::group_all) == std::filesystem::perms::none);
  std::tie(rc, out) = run({"pki", "device-key", "--out-private", (dir / "cam.key").string(), "--out-public", (dir / "cam.pub").string()});
  BOOST_REQUIRE_MESSAGE(rc == 0, out);
  std::tie(rc, out) = run({"pki", "enrol-camera", "--dir", fleet, "--serial", "BC-0001", "--officer", "H-1234", "--pubkey", (dir / "cam.pub").string()});
  BOOST_REQUIRE_MESSAGE(rc == 0, out);
  std::tie(rc, out) = run({"pki", "list", "--dir", fleet});
  BOOST_CHECK_EQUAL(rc, 0);
  BOOST_CHECK_MESSAGE(contains(out, "camera  BC-0001") && contains(out, "H-1234") && contains(out, "dock    dock-01"), out);
  const auto cert = (dir / "fleet" / "cameras" / "BC-0001.crt").string();
  std::tie(rc, out) = run({"pki", "check", "--dir", fleet, "--cert", cert, "--role", "camera", "--name", "BC-0001"});
  BOOST_CHECK_EQUAL(rc, 0);
  std::tie(rc, out) = run({"pki", "revoke", "--dir", fleet, "--name", "BC-0001", "--reason", "lost"});
  BOOST_CHECK_EQUAL(rc, 0);
  std::tie(rc, out) = run({"pki", "check", "--dir", fleet, "--cert", cert, "--role", "camera"});
  BOOST_CHECK_EQUAL(rc, 1);
  BOOST_CHECK_MESSAGE(contains(out, "REFUSED: certificate revoked"), out);
  std::tie(rc, out) = run({"pki", "list", "--dir", fleet});
  BOOST_CHECK(contains(out, "revoked"));
  // Refusals and usage errors.
  std::tie(rc, out) = run({"pki", "enrol-camera", "--dir", fleet, "--serial", "BC-0002", "--officer", "H-1", "--pubkey", (dir / "none.pem").string()});
  BOOST_CHECK_EQUAL(rc, 1);
  BOOST_CHECK_MESSAGE(contains(out, "none.pem: cannot read"), out);
  std::tie(rc, out) = run({"pki", "issue-dock", "--dir", fleet});
  BOOST_CHECK_EQUAL(rc, 2);
  BOOST_CHECK(contains(out, "--id is required"));
  std::tie(rc, out) = run({"pki", "issue-dock", "--dir", fleet, "--id", "d2", "--days", "0"});
  BOOST_CHECK_EQUAL(rc, 2);
  BOOST_CHECK(contains(out, "--days must be 1..36500"));
}

// The promise of issue "trust": the demo runs with the fleet PKI and encryption on by default;
// every segment it stored decrypts, with the organisation's key and a stated purpose, to exactly
// what the camera recorded; every decryption is logged; and nothing in the dock's state (spool,
// database, audit log, trust directory) nor in its log output can decrypt anything.
BOOST_AUTO_TEST_CASE(demo_footage_decrypts_only_at_the_centre_and_only_with_a_purpose) {
  test::TempDir dir;
  const auto state = dir / "state";
  const auto world = dir / "state.world";
  const auto store = dir / "store";
  auto [rc, out] = test::run_command({DOCKD_PATH, "demo", "--store", store.string(), "--state", state.string(), "--no-table", "--cameras", "2",
                                      "--segments", "3", "--segment-mib", "0.3", "--chunk-kib", "64", "--exit-when-idle"},
                                     dir / "demo.log");
  BOOST_REQUIRE_MESSAGE(rc == 0, out);
  const auto demo_log = out;
  BOOST_CHECK(std::filesystem::exists(state / "trust" / "dock.crt"));
  BOOST_CHECK(!std::filesystem::exists(state / "trust" / "ca.key"));  // the dock never holds the CA key
  BOOST_CHECK(contains(demo_log, "authenticated (officer officer-0101)"));

  std::tie(rc, out) = test::run_command({DOCKCTL_PATH, "evidence", "verify", store.string(), "--ca", (world / "fleet" / "ca.crt").string()}, dir / "out.log");
  BOOST_CHECK_EQUAL(rc, 0);
  BOOST_CHECK_MESSAGE(contains(out, "2 camera(s), 6 segment(s): 6 intact, 0 problem(s)") && !contains(out, "NOTE"), out);

  const auto key = (world / "org" / "recording.key").string();
  std::vector<proto::Bytes> secrets;  // what could decrypt: every segment key, the organisation's key
  std::size_t decrypted = 0;
  for (const char* serial : {"BC-0001", "BC-0002"}) {
    hw::CameraSpec spec;
    spec.serial = serial;
    const auto cam = hw::CameraDevice::open_persistent(spec, world / "cameras");
    BOOST_REQUIRE_EQUAL(cam.recorded().size(), 3u);
    for (const auto& m : cam.recorded()) {
      secrets.push_back(cam.segment_key(m.seq));
      const auto seg = store / dock::LocalDirSink::object_key(m);
      const auto plain = dir / ("plain-" + std::string(serial) + "-" + std::to_string(m.seq));
      std::tie(rc, out) = test::run_command({DOCKCTL_PATH, "evidence", "decrypt", seg.string(), "--key", key, "--out", plain.string(), "--purpose",
                                             "investigation", "--by", "inspector-12", "--reference", "PV-2026-0042"},
                                            dir / "out.log");
      BOOST_REQUIRE_MESSAGE(rc == 0, out);
      const auto got = test::slurp(plain);
      proto::Bytes expect(cam.plaintext_size(m.seq));
      cam.plaintext(m.seq, 0, expect);
      BOOST_CHECK_MESSAGE(got.size() == expect.size() && std::equal(expect.begin(), expect.end(), reinterpret_cast<const std::uint8_t*>(got.data())),
                          serial << " seq " << m.seq << ": decryption differs from what the camera recorded");
      BOOST_CHECK((std::filesystem::status(plain).permissions() & std::filesystem::perms::others_read) == std::filesystem::perms::none);
      ++decrypted;
    }
  }
  BOOST_CHECK_EQUAL(decrypted, 6u);
  // Every decryption is on record, chained: who, why, which segment.
  const auto access = store / "evidence-access.log";
  const auto report = dock::AuditLog::verify(access, std::nullopt);
  BOOST_CHECK(report.ok());
  BOOST_CHECK_EQUAL(report.entries, 6u);
  const auto access_text = test::slurp_text(access);
  BOOST_CHECK(contains(access_text, R"("actor":"person inspector-12")") && contains(access_text, R"("purpose":"investigation")") &&
              contains(access_text, R"("reference":"PV-2026-0042")"));

  // No purpose, a purpose the law does not know, or the dock's own key: refused, nothing written.
  const auto seg1 = (store / dock::LocalDirSink::object_key(
                                 hw::CameraDevice::open_persistent([] { hw::CameraSpec s; s.serial = "BC-0001"; return s; }(), world / "cameras").recorded()[0]))
                        .string();
  std::tie(rc, out) = test::run_command({DOCKCTL_PATH, "evidence", "decrypt", seg1, "--key", key, "--out", (dir / "x").string()}, dir / "out.log");
  BOOST_CHECK_EQUAL(rc, 2);
  BOOST_CHECK(contains(out, "--purpose is required"));
  std::tie(rc, out) = test::run_command({DOCKCTL_PATH, "evidence", "decrypt", seg1, "--key", key, "--out", (dir / "x").string(), "--purpose", "curiosity"},
                                        dir / "out.log");
  BOOST_CHECK_EQUAL(rc, 2);
  BOOST_CHECK(contains(out, "--purpose must be investigation, complaint, subject-access-request or training"));
  std::tie(rc, out) = test::run_command({DOCKCTL_PATH, "evidence", "decrypt", seg1, "--key", (state / "trust" / "dock.key").string(), "--out",
                                         (dir / "x").string(), "--purpose", "training", "--by", "dock-admin"},
                                        dir / "out.log");
  BOOST_CHECK_EQUAL(rc, 1);
  BOOST_CHECK_MESSAGE(contains(out, "was not wrapped to this organisation key"), out);
  BOOST_CHECK(!std::filesystem::exists(dir / "x"));

  // The organisation's private key, raw and as PEM, must be nowhere the dock writes.
  const auto org_pem = test::slurp_text(world / "org" / "recording.key");
  secrets.emplace_back(org_pem.begin(), org_pem.end());
  secrets.push_back(private_scalar(org_pem));
  std::vector<std::filesystem::path> files;
  for (const auto& e : std::filesystem::recursive_directory_iterator(state))
    if (e.is_regular_file()) files.push_back(e.path());
  for (const auto& e : std::filesystem::recursive_directory_iterator(store))
    if (e.is_regular_file() && e.path().filename() != "evidence-access.log") files.push_back(e.path());
  BOOST_CHECK_GT(files.size(), 10u);
  std::size_t searched = 0;
  for (const auto& f : files) {
    const auto text = test::slurp(f);
    searched += text.size();
    for (const auto& s : secrets)
      BOOST_CHECK_MESSAGE(std::search(text.begin(), text.end(), s.begin(), s.end()) == text.end(), f << " holds key material");
  }
  for (const auto& s : secrets) BOOST_CHECK(std::search(demo_log.begin(), demo_log.end(), s.begin(), s.end()) == demo_log.end());
  BOOST_TEST_MESSAGE("searched " << files.size() << " files, " << searched << " bytes, for " << secrets.size() << " secrets");
}

BOOST_AUTO_TEST_SUITE_END()

// `dockctl status` against a running dock's web API: the same slots, with progress bars; and
// a clear message and exit 1 when no dock answers. The demo prints its page's address.
BOOST_AUTO_TEST_SUITE(dockctl_status)

BOOST_AUTO_TEST_CASE(status_of_a_running_demo_and_of_no_dock) {
  test::TempDir dir;
  const auto log = dir / "demo.log";
  test::Daemon demo({DOCKD_PATH, "demo", "--cameras", "2", "--segments", "2", "--segment-mib", "0.5", "--store", (dir / "store").string(),
                     "--state", (dir / "state").string(), "--no-table", "--web", "127.0.0.1:0"},
                    log);
  // The address appears once the page listens (bounded wait on the demo's own output).
  std::string url;
  for (int i = 0; i < 600 && url.empty(); ++i) {
    const auto text = test::slurp(log);
    if (const auto at = text.find("web page: http://"); at != std::string::npos && text.find('\n', at) != std::string::npos)
      url = text.substr(at + 10, text.find('\n', at) - at - 10);
    else std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  BOOST_REQUIRE_MESSAGE(!url.empty(), test::slurp(log));
  // Until both cameras are safe to take.
  std::string out;
  int rc = 0;
  for (int i = 0; i < 300; ++i) {
    std::tie(rc, out) = test::run_command({DOCKCTL_PATH, "status", "--url", url}, dir / "out.log");
    BOOST_REQUIRE_MESSAGE(rc == 0, out);
    if (contains(out, "BC-0001") && contains(out, "BC-0002") && contains(out, "stored 4 segments")) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  BOOST_TEST(contains(out, "slot LED"));
  BOOST_TEST(contains(out, "[####################]"));
  BOOST_TEST(contains(out, "stored 4 segments"));
  BOOST_TEST(contains(out, "uplink: "));
  BOOST_TEST(contains(out, "spool: "));
  BOOST_TEST(!contains(out, "\x1b["), "no colour codes when not on a terminal");
  demo.terminate();
  BOOST_TEST(demo.wait_exit(std::chrono::seconds(20)) == 0);
  // No dock: a clear message, exit 1.
  std::tie(rc, out) = test::run_command({DOCKCTL_PATH, "status", "--url", url}, dir / "out.log");
  BOOST_TEST(rc == 1);
  BOOST_TEST(contains(out, "the dock is not answering at"), out);
  std::tie(rc, out) = test::run_command({DOCKCTL_PATH, "status", "--frob"}, dir / "out.log");
  BOOST_TEST(rc == 2);
}

BOOST_AUTO_TEST_SUITE_END()

// Binding cameras to officers happens at the fleet CA: `cameras enrol` as `pki enrol-camera`,
// `cameras assign` re-issues the certificate for the same device key and revokes the old one.
BOOST_AUTO_TEST_SUITE(dockctl_cameras_at_the_fleet)

BOOST_AUTO_TEST_CASE(enrol_and_assign_to_another_officer) {
  test::TempDir dir;
  const auto fleet = (dir / "fleet").string();
  auto run = [&](const std::vector<std::string>& args) { return dockctl(dir, args); };
  auto [rc, out] = run({"pki", "init", "--dir", fleet, "--name", "Gemeente Testdam"});
  BOOST_REQUIRE_MESSAGE(rc == 0, out);
  std::tie(rc, out) = run({"pki", "device-key", "--out-private", (dir / "cam.key").string(), "--out-public", (dir / "cam.pub").string()});
  BOOST_REQUIRE_MESSAGE(rc == 0, out);
  std::tie(rc, out) = run({"cameras", "enrol", "--dir", fleet, "--serial", "BC-0009", "--officer", "H-1111", "--pubkey", (dir / "cam.pub").string()});
  BOOST_REQUIRE_MESSAGE(rc == 0, out);
  BOOST_CHECK_MESSAGE(contains(out, "camera 'BC-0009' enrolled for officer 'H-1111'"), out);
  const auto cert = dir / "fleet" / "cameras" / "BC-0009.crt";
  std::filesystem::copy_file(cert, dir / "old.crt");
  std::tie(rc, out) = run({"cameras", "assign", "--dir", fleet, "--serial", "BC-0009", "--officer", "H-2222"});
  BOOST_REQUIRE_MESSAGE(rc == 0, out);
  BOOST_CHECK_MESSAGE(contains(out, "now belongs to officer 'H-2222'") && contains(out, "the old one is revoked"), out);
  // The new binding is good for the same key; the old one is refused.
  std::tie(rc, out) = run({"pki", "check", "--dir", fleet, "--cert", cert.string(), "--role", "camera", "--name", "BC-0009"});
  BOOST_CHECK_MESSAGE(rc == 0, out);
  std::tie(rc, out) = run({"pki", "check", "--dir", fleet, "--cert", (dir / "old.crt").string(), "--role", "camera"});
  BOOST_CHECK_EQUAL(rc, 1);
  BOOST_CHECK_MESSAGE(contains(out, "REFUSED: certificate revoked"), out);
  std::tie(rc, out) = run({"pki", "list", "--dir", fleet});
  BOOST_CHECK_MESSAGE(contains(out, "BC-0009") && contains(out, "H-2222") && !contains(out, "H-1111"), out);
  BOOST_CHECK_EQUAL(test::slurp(dir / "fleet" / "cameras" / "BC-0009.crt") == test::slurp(dir / "old.crt"), false);
  // Errors: unknown camera (1), missing officer (2), an officer id that cannot be one (1).
  std::tie(rc, out) = run({"cameras", "assign", "--dir", fleet, "--serial", "BC-0404", "--officer", "H-2"});
  BOOST_CHECK_EQUAL(rc, 1);
  BOOST_CHECK_MESSAGE(contains(out, "no camera called 'BC-0404'"), out);
  std::tie(rc, out) = run({"cameras", "assign", "--dir", fleet, "--serial", "BC-0009"});
  BOOST_CHECK_EQUAL(rc, 2);
  BOOST_CHECK_MESSAGE(contains(out, "--officer is required"), out);
  std::tie(rc, out) = run({"cameras", "assign", "--dir", fleet, "--serial", "BC-0009", "--officer", "a b"});
  BOOST_CHECK_EQUAL(rc, 1);
  BOOST_CHECK_MESSAGE(contains(out, "not a valid officer id"), out);
}

BOOST_AUTO_TEST_SUITE_END()

// dockctl against a running dock over its control socket: every subcommand's output and exit
// code, the socket's permissions, the audit trail naming the operator, and a clear message
// when no dock runs or the caller may not use the socket.
BOOST_AUTO_TEST_SUITE(dockctl_control)

BOOST_AUTO_TEST_CASE(operator_commands_over_the_control_socket) {
  test::TempDir dir;
  const auto sock = (dir / "control.sock").string();
  const auto state = dir / "state";
  test::Daemon demo({DOCKD_PATH, "demo", "--cameras", "2", "--segments", "3", "--segment-mib", "2", "--store", (dir / "store").string(), "--state",
                     state.string(), "--no-table", "--control", sock, "--pause-uploads"},
                    dir / "demo.log");
  auto ctl = [&](std::vector<std::string> args) {
    args.insert(args.begin(), DOCKCTL_PATH);
    args.push_back("--socket");
    args.push_back(sock);
    return test::run_command(args, dir / "out.log");
  };
  for (int i = 0; i < 600 && !std::filesystem::exists(sock); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  BOOST_REQUIRE_MESSAGE(std::filesystem::exists(sock), test::slurp(dir / "demo.log"));

  // The demo starts with the queue held: what is pulled waits, listed in the order it will be
  // sent. Pausing again is harmless (and audited with its reason).
  auto [rc, out] = ctl({"queue", "pause", "--reason", "uplink maintenance"});
  BOOST_REQUIRE_MESSAGE(rc == 0, out);
  BOOST_CHECK_MESSAGE(contains(out, "uploads paused"), out);
  // Only the owner and the group (under systemd: root and the bodydock group) may connect.
  // Checked once the socket answers: the file exists from bind(), and the dock narrows its
  // mode before listen(), so nobody can connect while it is wider.
  BOOST_CHECK((std::filesystem::status(sock).permissions() & std::filesystem::perms::all) ==
              (std::filesystem::perms::owner_read | std::filesystem::perms::owner_write | std::filesystem::perms::group_read |
               std::filesystem::perms::group_write));
  for (int i = 0; i < 300; ++i) {
    std::tie(rc, out) = ctl({"queue"});
    BOOST_REQUIRE_MESSAGE(rc == 0, out);
    if (contains(out, "6 segment(s), 12.0 MiB waiting for storage")) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  BOOST_CHECK_MESSAGE(contains(out, "6 segment(s), 12.0 MiB waiting for storage"), out);
  BOOST_CHECK_MESSAGE(contains(out, "PAUSED by an operator"), out);
  BOOST_CHECK_MESSAGE(contains(out, "camera") && contains(out, "segment") && contains(out, "waiting ") && contains(out, "MiB waiting for storage"), out);
  std::tie(rc, out) = ctl({"queue", "list"});
  BOOST_CHECK_EQUAL(rc, 0);
  BOOST_CHECK_MESSAGE(contains(out, "2.0  waiting"), out);
  std::tie(rc, out) = ctl({"queue", "resume"});
  BOOST_CHECK_MESSAGE(rc == 0 && contains(out, "uploads resumed"), out);
  std::tie(rc, out) = ctl({"queue", "retry"});
  BOOST_CHECK_MESSAGE(rc == 0 && contains(out, "uploads retry now"), out);
  for (int i = 0; i < 600; ++i) {
    std::tie(rc, out) = ctl({"status"});
    BOOST_REQUIRE_MESSAGE(rc == 0, out);
    if (contains(out, "stored 6 segments")) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  BOOST_CHECK_MESSAGE(contains(out, "slot LED") && contains(out, "stored 6 segments"), out);
  std::tie(rc, out) = ctl({"queue"});
  BOOST_CHECK_MESSAGE(rc == 0 && contains(out, "0 segment(s), 0.0 MiB waiting for storage") && !contains(out, "PAUSED"), out);

  // Cameras: who they belong to, where they are; a revocation here and its lifting, audited.
  std::tie(rc, out) = ctl({"cameras"});
  BOOST_CHECK_EQUAL(rc, 0);
  BOOST_CHECK_MESSAGE(contains(out, "BC-0001") && contains(out, "officer-0101") && contains(out, "BC-0002") && contains(out, "2 camera(s)"), out);
  std::tie(rc, out) = ctl({"cameras", "revoke", "BC-0002", "--reason", "reported stolen"});
  BOOST_CHECK_MESSAGE(rc == 0 && contains(out, "camera BC-0002 revoked at this dock"), out);
  std::tie(rc, out) = ctl({"cameras", "list"});
  BOOST_CHECK_MESSAGE(contains(out, "REVOKED at this dock by operator") && contains(out, "reported stolen"), out);
  std::tie(rc, out) = ctl({"cameras", "reinstate", "BC-0002", "--reason", "found in the locker"});
  BOOST_CHECK_MESSAGE(rc == 0 && contains(out, "camera BC-0002 reinstated at this dock"), out);
  std::tie(rc, out) = ctl({"cameras", "reinstate", "BC-0002", "--reason", "again"});
  BOOST_CHECK_EQUAL(rc, 1);
  BOOST_CHECK_MESSAGE(contains(out, "the dock refused: camera 'BC-0002' is not revoked at this dock"), out);
  std::tie(rc, out) = ctl({"cameras", "revoke", "BC-0002"});
  BOOST_CHECK_EQUAL(rc, 2);
  BOOST_CHECK_MESSAGE(contains(out, "--reason"), out);
  std::tie(rc, out) = ctl({"cameras", "revoke", "BC-0001", "BC-0002", "--reason", "x"});
  BOOST_CHECK_EQUAL(rc, 2);

  // Slots.
  std::tie(rc, out) = ctl({"slots", "power-cycle", "1", "--reason", "camera hung"});
  BOOST_CHECK_MESSAGE(rc == 0 && contains(out, "slot 1 power-cycled"), out);
  std::tie(rc, out) = ctl({"slots", "power-cycle", "7"});
  BOOST_CHECK_EQUAL(rc, 1);
  BOOST_CHECK_MESSAGE(contains(out, "1..2"), out);
  std::tie(rc, out) = ctl({"slots", "power-cycle", "one"});
  BOOST_CHECK_EQUAL(rc, 2);
  std::tie(rc, out) = ctl({"queue", "flush"});
  BOOST_CHECK_EQUAL(rc, 2);
  std::tie(rc, out) = ctl({"slots"});
  BOOST_CHECK_EQUAL(rc, 2);

  // Someone outside the socket's group: refused by the file system, told why.
  if (::geteuid() == 0 && std::filesystem::exists("/usr/sbin/runuser")) {
    char tmpl[] = "/tmp/bodydock-ctl.XXXXXX";
    BOOST_REQUIRE(::mkdtemp(tmpl));
    const std::filesystem::path bin = std::filesystem::path(tmpl) / "dockctl";
    std::filesystem::permissions(tmpl, std::filesystem::perms::owner_all | std::filesystem::perms::group_read | std::filesystem::perms::group_exec |
                                           std::filesystem::perms::others_read | std::filesystem::perms::others_exec);
    std::filesystem::copy_file(DOCKCTL_PATH, bin);
    std::tie(rc, out) = test::run_command({"/usr/sbin/runuser", "-u", "nobody", "--", bin.string(), "status", "--socket", sock}, dir / "out.log");
    BOOST_CHECK_EQUAL(rc, 1);
    BOOST_CHECK_MESSAGE(contains(out, "no permission to use " + sock + ": run dockctl as root or as a member of the bodydock group"), out);
    std::filesystem::remove_all(tmpl);
  } else {
    BOOST_TEST_MESSAGE("not root: the refusal of a caller outside the socket's group is not checked here");
  }

  demo.terminate();
  BOOST_TEST(demo.wait_exit(std::chrono::seconds(20)) == 0);
  BOOST_CHECK_MESSAGE(!std::filesystem::exists(sock), "the socket goes with the dock");
  std::tie(rc, out) = ctl({"status"});
  BOOST_CHECK_EQUAL(rc, 1);
  BOOST_CHECK_MESSAGE(contains(out, "dockd is not running (nothing answers at " + sock + ")"), out);
  std::tie(rc, out) = ctl({"cameras"});
  BOOST_CHECK_EQUAL(rc, 1);

  // Every action is in the audit log, naming the operator and the reason.
  std::tie(rc, out) = test::run_command({DOCKCTL_PATH, "audit", "export", "--state", state.string()}, dir / "out.log");
  BOOST_REQUIRE_MESSAGE(rc == 0, out);
  for (const char* what : {"uplink maintenance", "reported stolen", "revocation lifted", "found in the locker", "camera hung"})
    BOOST_CHECK_MESSAGE(contains(out, what), what);
  // Who: the uid as the kernel gives it, then the name dockctl claims.
  BOOST_CHECK_MESSAGE(contains(out, "\"actor\":\"operator uid " + std::to_string(::geteuid())), out);
}

BOOST_AUTO_TEST_SUITE_END()
