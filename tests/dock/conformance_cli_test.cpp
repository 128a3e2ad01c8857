// `dockctl conformance` as a process: against the emulator it prints the table with the run time
// and writes JUnit XML, exit 0; a broken emulator exits 1 with the failure in both; the device
// library built broken in one rule fails exactly that rule's cases; over the umockdev lane
// (dockctl runs itself again with the preload) the USB descriptors are checked; bad usage exits 2.
#include "dock/conformance.hpp"
#include "support/daemon.hpp"
#include "support/sandbox.hpp"

#include <boost/property_tree/ptree.hpp>
#include <boost/property_tree/xml_parser.hpp>
#include <boost/test/unit_test.hpp>

#include <set>
#include <sstream>

using namespace bodydock;

namespace {

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

std::pair<int, std::string> dockctl(const test::TempDir& dir, std::vector<std::string> args) {
  args.insert(args.begin(), {DOCKCTL_PATH, "conformance"});
  return test::run_command(args, dir / "out.log", std::chrono::milliseconds(300000));
}

boost::property_tree::ptree junit(const std::filesystem::path& file) {
  std::istringstream in(test::slurp_text(file));
  boost::property_tree::ptree tree;
  BOOST_REQUIRE_NO_THROW(boost::property_tree::read_xml(in, tree));
  return tree;
}

/// The cases a run failed, as its JUnit file names them (without the sections).
std::set<std::string> failed_cases(const std::filesystem::path& xml) {
  std::set<std::string> out;
  const auto tree = junit(xml);
  for (const auto& [tag, tc] : tree.get_child("testsuites.testsuite")) {
    if (tag != "testcase" || (!tc.get_child_optional("failure") && !tc.get_child_optional("error"))) continue;
    const auto name = tc.get<std::string>("<xmlattr>.name");
    out.insert(name.substr(0, name.find(' ')));
  }
  return out;
}

std::string joined(const std::set<std::string>& s) {
  std::string out;
  for (const auto& n : s) out += (out.empty() ? "" : ", ") + n;
  return out.empty() ? "none" : out;
}

/// dockctl whose emulated camera runs the device library built with BD_DEVICE_BROKEN_<rule>.
std::string broken_dockctl(const std::string& rule) { return std::string(DOCKCTL_BROKEN_DIR) + "/dockctl_broken_" + rule; }

}  // namespace

BOOST_AUTO_TEST_SUITE(conformance_cli)

// The device library built to break one rule (proto/device/bd_device.h, "Test-only builds"), run
// as the emulated camera: the suite must fail exactly the cases that check that rule and pass
// the rest, so a pass means something and a failure points at the rule.
BOOST_AUTO_TEST_CASE(each_broken_device_build_fails_exactly_the_cases_of_its_rule) {
  struct Broken {
    std::string rule;
    std::set<std::string> fails;
  };
  const std::vector<Broken> builds = {
      {"replayed_nonce", {"auth.camera_fresh_nonce", "auth.dock_replayed"}},
      {"erase_without_receipt", {"erase.no_receipt", "erase.forged_receipt"}},
      {"ignores_offset", {"read.offsets", "read.resume", "stress.random"}},
      {"unknown_version", {"hello.future_version"}},
  };
  for (const auto& b : builds) {
    test::TempDir dir;
    const auto xml = dir / "conformance.xml";
    const auto [rc, out] = test::run_command({broken_dockctl(b.rule), "conformance", "--emulator", "--stress-requests", "2000", "--junit", xml.string()},
                                             dir / "out.log", std::chrono::milliseconds(300000));
    BOOST_TEST_MESSAGE(b.rule << ":\n" << out);
    BOOST_CHECK_MESSAGE(rc == 1, b.rule << ": exit " << rc);
    BOOST_CHECK_MESSAGE(failed_cases(xml) == b.fails, b.rule << ": failed " << joined(failed_cases(xml)) << ", expected " << joined(b.fails));
    const auto expected = std::to_string(dock::conformance::cases().size() - 1 - b.fails.size()) + " passed, " + std::to_string(b.fails.size()) + " failed";
    BOOST_CHECK_MESSAGE(contains(out, expected), b.rule << ": no '" << expected << "' in the summary");
  }
}

// A device that crashes when a frame is too large takes the emulator's process with it, so each
// case runs in a process of its own. Two cases send a length over kMaxPayload: frames.oversized,
// and frames.bad_header (whose last header checks that too_large is decided before the type,
// 2.3). Those two must die; every other case passes.
BOOST_AUTO_TEST_CASE(a_device_build_that_crashes_on_an_oversized_frame_fails_only_the_cases_that_send_one) {
  test::TempDir dir;
  const std::set<std::string> oversized = {"frames.bad_header", "frames.oversized"};
  std::set<std::string> failed;
  for (const auto& c : dock::conformance::cases()) {
    const auto [rc, out] = test::run_command({broken_dockctl("oversized_frame"), "conformance", "--emulator", "--stress-requests", "2000", "--case", c.name},
                                             dir / "out.log", std::chrono::milliseconds(300000));
    if (rc != 0) failed.insert(c.name);
    if (oversized.contains(c.name)) {
      BOOST_CHECK_MESSAGE(rc != 0 && rc != 1 && rc != 2, c.name << ": exit " << rc << ", expected the process to die\n" << out);
    } else {
      BOOST_CHECK_MESSAGE(rc == 0, c.name << ": exit " << rc << "\n" << out);
    }
  }
  BOOST_CHECK_EQUAL(joined(failed), joined(oversized));
}

BOOST_AUTO_TEST_CASE(the_emulator_passes_with_a_table_and_junit_xml_and_exit_0) {
  test::TempDir dir;
  const auto xml = dir / "conformance.xml";
  const auto [rc, out] = dockctl(dir, {"--emulator", "--junit", xml.string()});
  BOOST_CHECK_EQUAL(rc, 0);
  BOOST_TEST_MESSAGE(out);
  BOOST_CHECK(contains(out, "device under test: emulator BC-0001"));
  BOOST_CHECK_MESSAGE(contains(out, "it says it is: serial BC-0001, model bodydock-emulator, firmware emu-1.0.0"), out);
  for (const auto& c : dock::conformance::cases()) BOOST_CHECK_MESSAGE(contains(out, c.name), c.name << " not in the table");
  BOOST_CHECK(contains(out, "usb.descriptors          1                      N/A"));
  BOOST_CHECK(contains(out, "27 passed, 0 failed, 1 not applicable (not counted as passed)"));
  BOOST_CHECK(contains(out, "suite run time: "));
  const auto tree = junit(xml);
  BOOST_CHECK_EQUAL(std::stoul(tree.get<std::string>("testsuites.<xmlattr>.tests")), dock::conformance::cases().size());
  BOOST_CHECK_EQUAL(std::stoul(tree.get<std::string>("testsuites.<xmlattr>.failures")), 0u);
  BOOST_CHECK_EQUAL(std::stoul(tree.get<std::string>("testsuites.<xmlattr>.skipped")), 1u);
}

BOOST_AUTO_TEST_CASE(a_broken_emulator_exits_1_naming_the_failed_case_in_the_table_and_the_xml) {
  test::TempDir dir;
  const auto xml = dir / "conformance.xml";
  const auto [rc, out] = dockctl(dir, {"--emulator", "--emulator-fault", "bad-signature=3", "--case", "list.manifests", "--case", "list.complete",
                                       "--junit", xml.string()});
  BOOST_CHECK_EQUAL(rc, 1);
  BOOST_CHECK_MESSAGE(contains(out, "list.manifests           6.1, 6.2, 4.3          FAIL") && contains(out, "seq 3: the manifest's signature"), out);
  BOOST_CHECK_MESSAGE(contains(out, "list.complete            4.4, 4.6, 6.1          PASS"), out);
  BOOST_CHECK(contains(out, "2 cases: 1 passed, 1 failed, 0 not applicable"));
  const auto tree = junit(xml);
  BOOST_CHECK_EQUAL(std::stoul(tree.get<std::string>("testsuites.<xmlattr>.failures")), 1u);
  const auto& suite = tree.get_child("testsuites.testsuite");
  std::size_t failures = 0;
  for (const auto& [tag, tc] : suite)
    if (tag == "testcase" && tc.get_child_optional("failure")) {
      ++failures;
      BOOST_CHECK_EQUAL(tc.get<std::string>("<xmlattr>.name"), "list.manifests (PROTOCOL.md 6.1, 6.2, 4.3)");
      BOOST_CHECK(contains(tc.get<std::string>("failure.<xmlattr>.message"), "PROTOCOL.md 6.1, 6.2, 4.3: seq 3"));
    }
  BOOST_CHECK_EQUAL(failures, 1u);
}

BOOST_AUTO_TEST_CASE(over_the_umockdev_lane_the_usb_descriptors_are_checked) {
  test::TempDir dir;
  const auto [rc, out] = dockctl(dir, {"--emulator", "--usb", "--case", "usb.descriptors", "--case", "hello.negotiation", "--case", "read.resume"});
  BOOST_CHECK_EQUAL(rc, 0);
  BOOST_CHECK_MESSAGE(contains(out, "on the umockdev lane, real libusb, port 1-1.1"), out);
  BOOST_CHECK_MESSAGE(contains(out, "usb.descriptors          1                      PASS"), out);
  BOOST_CHECK(contains(out, "3 cases: 3 passed, 0 failed, 0 not applicable"));
}

BOOST_AUTO_TEST_CASE(list_prints_every_case_with_its_sections) {
  test::TempDir dir;
  const auto [rc, out] = dockctl(dir, {"--list"});
  BOOST_CHECK_EQUAL(rc, 0);
  for (const auto& c : dock::conformance::cases()) BOOST_CHECK_MESSAGE(contains(out, c.name) && contains(out, c.sections), c.name);
}

BOOST_AUTO_TEST_CASE(bad_usage_exits_2_with_the_reason) {
  test::TempDir dir;
  struct Bad {
    std::vector<std::string> args;
    const char* says;
  };
  const std::vector<Bad> bad = {
      {{}, "say what to test"},
      {{"--emulator", "--device", "1-1.3"}, "say what to test"},
      {{"--emulator", "--case", "no.such.case"}, "no case 'no.such.case'"},
      {{"--device", "1-1.3"}, "--device needs the camera's fleet"},
      {{"--device", "1-1.3", "--trust", "a", "--fleet", "b"}, "--device needs the camera's fleet"},
      {{"--emulator", "--trust", "a"}, "--trust and --fleet are for --device"},
      {{"--device", "1-1.3", "--trust", "a", "--usb"}, "--usb and --emulator-fault are for --emulator"},
      {{"--emulator", "--emulator-fault", "melt"}, "not one of replay-auth"},
      {{"--emulator", "--timeout-ms", "soon"}, "--timeout-ms must be a whole number"},
      {{"--emulator", "--junit"}, "missing value for '--junit'"},
      {{"--emulator", "--frobnicate"}, "unexpected argument '--frobnicate'"},
  };
  for (const auto& b : bad) {
    const auto [rc, out] = dockctl(dir, b.args);
    BOOST_CHECK_EQUAL(rc, 2);
    BOOST_CHECK_MESSAGE(contains(out, b.says), out);
  }
}

BOOST_AUTO_TEST_CASE(a_device_that_is_not_on_the_bus_exits_1_naming_the_port) {
  test::TempDir dir;
  // A trust directory to get past the usage checks: an emulated fleet's dock.
  dock::conformance::EmulatorRig rig(dir / "rig");
  const auto [rc, out] = dockctl(dir, {"--device", "9-9.9", "--trust", (dir / "rig" / "dock-trust").string()});
  BOOST_CHECK_EQUAL(rc, 1);
  BOOST_CHECK_MESSAGE(contains(out, "no USB device on port 9-9.9"), out);
}

BOOST_AUTO_TEST_SUITE_END()
