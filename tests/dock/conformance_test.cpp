// The camera conformance suite (dock/conformance): the whole suite passes against the emulator
// over the in-process link and over the umockdev lane (real libusb); the JUnit XML is well-formed
// and names every case with its section; and the cases check something: an emulated camera
// broken with one DeviceFaults knob fails exactly the case that covers it, and a device that
// stops answering fails the case it hangs in while the suite goes on.
#include "dock/conformance.hpp"
#include "hw/emulated_link.hpp"
#include "hw/umockdev_bus.hpp"
#include "support/sandbox.hpp"
#include "usb/usb_context.hpp"

#include <boost/property_tree/ptree.hpp>
#include <boost/property_tree/xml_parser.hpp>
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <set>
#include <sstream>

using namespace bodydock;
namespace asio = boost::asio;
namespace cf = dock::conformance;

namespace {

std::set<std::string> names(const cf::Report& r, cf::Outcome o) {
  std::set<std::string> out;
  for (const auto& c : r.results)
    if (c.outcome == o) out.insert(c.name);
  return out;
}

std::string joined(const std::set<std::string>& s) {
  std::string out;
  for (const auto& n : s) out += (out.empty() ? "" : ", ") + n;
  return out.empty() ? "none" : out;
}

/// The emulator with its world in a temporary directory, and an io_context to test it on.
struct EmulatorFixture {
  test::TempDir dir;
  cf::EmulatorRig rig{dir.path()};
  asio::io_context ioc;

  cf::Report run_in_process(cf::SuiteOptions options = {}) {
    cf::EmulatorTarget target(ioc.get_executor(), rig.camera(), &rig.full_camera());
    auto report = cf::run_suite_blocking(ioc, target, rig.trust(), std::move(options));
    BOOST_TEST_MESSAGE(cf::render_table(report));
    return report;
  }
};

cf::SuiteOptions quick(std::vector<std::string> only = {}) {
  cf::SuiteOptions o;
  o.only = std::move(only);
  o.stress_requests = 500;
  return o;
}

/// A well-formed XML document as far as this test can tell without a validating parser: it
/// parses, and holds only characters XML 1.0 allows (no raw control bytes, valid UTF-8).
void check_xml_characters(const std::string& text) {
  for (std::size_t i = 0; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    BOOST_REQUIRE_MESSAGE(c >= 0x20 || c == '\n' || c == '\t' || c == '\r', "raw control byte " << int(c) << " at " << i);
    if (c < 0x80) continue;
    const std::size_t n = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
    BOOST_REQUIRE_MESSAGE(c >= 0xC2 && c <= 0xF4 && i + n <= text.size(), "bad UTF-8 lead byte at " << i);
    for (std::size_t k = 1; k < n; ++k) BOOST_REQUIRE((static_cast<unsigned char>(text[i + k]) & 0xC0) == 0x80);
    i += n - 1;
  }
}

boost::property_tree::ptree parse_xml(const std::string& text) {
  check_xml_characters(text);
  std::istringstream in(text);
  boost::property_tree::ptree tree;
  BOOST_REQUIRE_NO_THROW(boost::property_tree::read_xml(in, tree));
  return tree;
}

/// An emulated camera that stops answering at one docking (by number, from 1): a device that
/// hangs in the middle of a case.
class HangingTarget final : public cf::Target {
 public:
  HangingTarget(asio::any_io_executor ex, hw::CameraDevice& camera, unsigned hang_at) : ex_(std::move(ex)), camera_(camera), hang_at_(hang_at) {}
  [[nodiscard]] std::string describe() const override { return "an emulator that hangs"; }
  asio::awaitable<std::unique_ptr<usb::CameraLink>> connect(cf::Camera) override {
    hw::LinkFaults faults;
    if (++dockings_ == hang_at_) faults.hang_after_bytes = 0;
    co_return std::make_unique<hw::EmulatedLink>(ex_, camera_, "emulated:hanging", faults);
  }
  asio::awaitable<void> disconnect(std::unique_ptr<usb::CameraLink> link) override {
    link->close();
    co_return;
  }
  std::optional<cf::UsbFacts> usb_facts() override { return std::nullopt; }

 private:
  asio::any_io_executor ex_;
  hw::CameraDevice& camera_;
  unsigned hang_at_;
  unsigned dockings_ = 0;
};

}  // namespace

BOOST_FIXTURE_TEST_SUITE(conformance, EmulatorFixture)

BOOST_AUTO_TEST_CASE(the_emulator_passes_every_case_over_the_in_process_link) {
  const auto report = run_in_process();
  BOOST_CHECK_EQUAL(report.results.size(), cf::cases().size());
  BOOST_CHECK_MESSAGE(!report.failed(), "failed: " << joined(names(report, cf::Outcome::fail)));
  // Only what the transport cannot do is not applicable, and it is not a pass.
  BOOST_CHECK_EQUAL(joined(names(report, cf::Outcome::not_applicable)), "usb.descriptors");
  BOOST_CHECK_EQUAL(report.count(cf::Outcome::pass), cf::cases().size() - 1);
  BOOST_TEST_MESSAGE("suite run time, in-process: " << report.took.count() << " s");
  // The valid erases took one segment of each camera, and nothing else was erased.
  BOOST_CHECK_EQUAL(rig.camera().erased().size(), 1u);
  BOOST_CHECK_EQUAL(rig.full_camera().erased().size(), 1u);
}

BOOST_AUTO_TEST_CASE(the_emulator_passes_every_case_over_the_umockdev_lane) {
  test::TempDir world;
  cf::EmulatorRig usb_rig(world.path());
  hw::UmockdevBus bus;  // before libusb starts: it points the process at the emulated sysfs
  asio::io_context usb_ioc;
  usb::UsbContext usb(usb_ioc.get_executor(), {});
  usb.add_readiness_source(bus.readiness_fd());
  cf::Report report;
  {
    cf::UmockdevTarget target(usb_ioc.get_executor(), bus, usb, usb_rig.camera(), &usb_rig.full_camera());
    report = cf::run_suite_blocking(usb_ioc, target, usb_rig.trust(), {});
  }
  BOOST_TEST_MESSAGE(cf::render_table(report));
  BOOST_CHECK_EQUAL(report.results.size(), cf::cases().size());
  BOOST_CHECK_MESSAGE(!report.failed(), "failed: " << joined(names(report, cf::Outcome::fail)));
  BOOST_CHECK_EQUAL(report.count(cf::Outcome::pass), cf::cases().size());  // descriptors included
  BOOST_TEST_MESSAGE("suite run time, umockdev lane: " << report.took.count() << " s");
}

BOOST_AUTO_TEST_CASE(the_junit_xml_is_well_formed_and_names_every_case_with_its_section) {
  auto report = run_in_process(quick());
  // A device's words reach the file: make them as hostile as they come.
  BOOST_REQUIRE(report.results[1].outcome == cf::Outcome::pass);
  report.results[1].outcome = cf::Outcome::fail;
  report.results[1].message = "sent <READ> & got \"ERROR\" 'x' \x01\x1f\x7f bad UTF-8 \xC0\xAF\xED\xA0\x80\xFF, good UTF-8 \xC3\xA9 \xE2\x82\xAC";
  const auto text = cf::render_junit(report);
  const auto tree = parse_xml(text);
  const auto& suites = tree.get_child("testsuites");
  BOOST_CHECK_EQUAL(std::stoul(suites.get<std::string>("<xmlattr>.tests")), cf::cases().size());
  BOOST_CHECK_EQUAL(std::stoul(suites.get<std::string>("<xmlattr>.failures")), 1u);
  BOOST_CHECK_EQUAL(std::stoul(suites.get<std::string>("<xmlattr>.skipped")), 1u);
  const auto& suite = suites.get_child("testsuite");
  std::vector<std::pair<std::string, std::string>> seen;  // case, section
  std::size_t failures = 0, skipped = 0;
  for (const auto& [tag, tc] : suite) {
    if (tag != "testcase") continue;
    std::string name, section;
    for (const auto& [ptag, prop] : tc.get_child("properties"))
      if (ptag == "property") {
        const auto key = prop.get<std::string>("<xmlattr>.name");
        if (key == "case") name = prop.get<std::string>("<xmlattr>.value");
        if (key == "section") section = prop.get<std::string>("<xmlattr>.value");
      }
    const auto title = tc.get<std::string>("<xmlattr>.name");
    BOOST_CHECK_EQUAL(title, name + " (PROTOCOL.md " + section + ")");
    BOOST_CHECK(tc.get_optional<std::string>("<xmlattr>.time"));
    if (tc.get_child_optional("failure")) {
      ++failures;
      BOOST_CHECK(tc.get<std::string>("failure").find("sent <READ> & got \"ERROR\" 'x' \\x01\\x1f\\x7f") != std::string::npos);
      BOOST_CHECK(tc.get<std::string>("failure").find("\xC3\xA9 \xE2\x82\xAC") != std::string::npos);
    }
    if (tc.get_child_optional("skipped")) ++skipped;
    seen.emplace_back(name, section);
  }
  BOOST_CHECK_EQUAL(failures, 1u);
  BOOST_CHECK_EQUAL(skipped, 1u);
  const auto all = cf::cases();
  BOOST_REQUIRE_EQUAL(seen.size(), all.size());
  for (std::size_t i = 0; i < all.size(); ++i) {
    BOOST_CHECK_EQUAL(seen[i].first, all[i].name);
    BOOST_CHECK_EQUAL(seen[i].second, all[i].sections);
    BOOST_CHECK(!all[i].sections.empty());
  }
}

BOOST_AUTO_TEST_CASE(the_table_has_a_row_per_case_and_the_run_time_in_its_footer) {
  const auto report = run_in_process(quick({"hello.first", "usb.descriptors", "read.errors"}));
  const auto table = cf::render_table(report);
  BOOST_CHECK(table.find("usb.descriptors          1                      N/A") != std::string::npos);
  BOOST_CHECK(table.find("hello.first              5.1, 4.1               PASS") != std::string::npos);
  BOOST_CHECK(table.find("3 cases: 2 passed, 0 failed, 1 not applicable (not counted as passed)") != std::string::npos);
  BOOST_CHECK(table.find("suite run time: ") != std::string::npos);
}

// A cloned or replaying camera answers AUTH_BEGIN with an earlier answer. Its first
// authentication is genuine, so the case that authenticates first in a run is the one to see it.
BOOST_AUTO_TEST_CASE(a_camera_replaying_its_auth_answer_fails_the_fresh_nonce_case) {
  rig.camera().faults().replay_auth = true;
  const auto report = run_in_process(quick({"hello.first", "hello.negotiation", "auth.camera_fresh_nonce", "status.charging", "frames.bad_header"}));
  BOOST_CHECK_EQUAL(joined(names(report, cf::Outcome::fail)), "auth.camera_fresh_nonce");
  const auto& r = *std::find_if(report.results.begin(), report.results.end(), [](const auto& c) { return c.name == "auth.camera_fresh_nonce"; });
  BOOST_CHECK_MESSAGE(r.message.find("same camera nonce") != std::string::npos, r.message);
}

// Over a whole run the replaying camera fails exactly the cases about fresh authentication: its
// proof covers an earlier docking's nonces, its nonce repeats, and a dock exchange recorded at
// an earlier docking gets in again. (A genuine dock still authenticates with it: the other cases
// run.)
BOOST_AUTO_TEST_CASE(a_camera_replaying_its_auth_answer_fails_exactly_the_freshness_cases) {
  rig.camera().faults().replay_auth = true;
  const auto report = run_in_process(quick());
  BOOST_CHECK_EQUAL(joined(names(report, cf::Outcome::fail)), "auth.camera_fresh_nonce, auth.camera_proof, auth.dock_replayed");
  const auto& r = *std::find_if(report.results.begin(), report.results.end(), [](const auto& c) { return c.name == "auth.dock_replayed"; });
  BOOST_CHECK_MESSAGE(r.message.find("got AUTH_FINISH_OK") != std::string::npos, r.message);
}

BOOST_AUTO_TEST_CASE(a_manifest_with_a_bad_signature_fails_only_the_manifest_case) {
  rig.camera().faults().bad_signature.insert(2);
  const auto report = run_in_process(quick());
  BOOST_CHECK_EQUAL(joined(names(report, cf::Outcome::fail)), "list.manifests");
  const auto& r = *std::find_if(report.results.begin(), report.results.end(), [](const auto& c) { return c.name == "list.manifests"; });
  BOOST_CHECK_MESSAGE(r.message.find("seq 2: the manifest's signature does not verify") != std::string::npos, r.message);
}

BOOST_AUTO_TEST_CASE(a_segment_held_but_not_listed_fails_only_the_completeness_case) {
  rig.camera().faults().hide_from_list.insert(3);
  const auto report = run_in_process(quick());
  BOOST_CHECK_EQUAL(joined(names(report, cf::Outcome::fail)), "list.complete");
  const auto& r = *std::find_if(report.results.begin(), report.results.end(), [](const auto& c) { return c.name == "list.complete"; });
  BOOST_CHECK_MESSAGE(r.message.find("segment_count is 6 but LIST returns 5") != std::string::npos, r.message);
}

BOOST_AUTO_TEST_CASE(a_charger_that_cannot_be_switched_off_fails_only_the_charging_case) {
  rig.camera().faults().charger_uncontrollable = true;
  const auto report = run_in_process(quick());
  BOOST_CHECK_EQUAL(joined(names(report, cf::Outcome::fail)), "status.charging");
}

BOOST_AUTO_TEST_CASE(the_emulator_faults_can_be_named_on_the_command_line) {
  rig.apply_fault("hide=4");
  rig.apply_fault("bad-signature=1");
  rig.apply_fault("replay-auth");
  rig.apply_fault("charger-stuck");
  BOOST_CHECK(rig.camera().faults().hide_from_list.contains(4));
  BOOST_CHECK(rig.camera().faults().bad_signature.contains(1));
  BOOST_CHECK(rig.camera().faults().replay_auth);
  BOOST_CHECK(rig.camera().faults().charger_uncontrollable);
  BOOST_CHECK_THROW(rig.apply_fault("hide=x"), std::invalid_argument);
  BOOST_CHECK_THROW(rig.apply_fault("melt"), std::invalid_argument);
}

// A device that goes silent fails the case it hangs in, on the reply deadline, and the next case
// runs on a fresh docking.
BOOST_AUTO_TEST_CASE(a_device_that_stops_answering_fails_that_case_and_the_suite_goes_on) {
  HangingTarget target(ioc.get_executor(), rig.camera(), 2);  // the second docking: hello.negotiation
  auto options = quick({"hello.first", "hello.negotiation", "status.report"});
  options.request_timeout = std::chrono::milliseconds(300);
  const auto report = cf::run_suite_blocking(ioc, target, rig.trust(), options);
  BOOST_TEST_MESSAGE(cf::render_table(report));
  BOOST_CHECK_EQUAL(joined(names(report, cf::Outcome::fail)), "hello.negotiation");
  BOOST_CHECK_EQUAL(joined(names(report, cf::Outcome::pass)), "hello.first, status.report");
  BOOST_CHECK_MESSAGE(report.results[1].message.find("no reply within 300 ms") != std::string::npos, report.results[1].message);
}

// The case deadline holds even when a reply deadline is longer than it.
BOOST_AUTO_TEST_CASE(a_case_that_runs_past_its_deadline_is_cut_off) {
  HangingTarget target(ioc.get_executor(), rig.camera(), 1);
  auto options = quick({"hello.first", "hello.negotiation"});
  options.request_timeout = std::chrono::seconds(30);
  options.case_deadline = std::chrono::milliseconds(400);
  const auto t0 = std::chrono::steady_clock::now();
  const auto report = cf::run_suite_blocking(ioc, target, rig.trust(), options);
  BOOST_CHECK_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(10));
  BOOST_CHECK_EQUAL(joined(names(report, cf::Outcome::fail)), "hello.first");
  BOOST_CHECK_MESSAGE(report.results[0].message.find("no result within 400.0 ms") != std::string::npos, report.results[0].message);
  BOOST_CHECK(report.results[1].outcome == cf::Outcome::pass);
}

BOOST_AUTO_TEST_SUITE_END()
