// `dockctl audit` as an operator uses it on a dock's state: verify says the log is intact after a
// demo, names an edited entry and exits 1, export writes the JSON lines; bad usage exits 2.
// `dockctl evidence verify` on the demo's store: intact, then a flipped byte named.
#include "support/daemon.hpp"
#include "support/sandbox.hpp"

#include <boost/test/unit_test.hpp>

#include <fstream>

using namespace bodydock;

namespace {

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

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
  auto run = [&](std::vector<std::string> args) {
    args.insert(args.begin(), DOCKCTL_PATH);
    return test::run_command(args, dir / "out.log");
  };
  auto [rc, out] = run({"pki", "init", "--dir", fleet, "--name", "Gemeente Testdam"});
  BOOST_REQUIRE_MESSAGE(rc == 0, out);
  std::tie(rc, out) = run({"pki", "issue-dock", "--dir", fleet, "--id", "dock-01"});
  BOOST_REQUIRE_MESSAGE(rc == 0, out);
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

BOOST_AUTO_TEST_SUITE_END()
