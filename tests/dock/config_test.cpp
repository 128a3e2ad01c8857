// dockd.toml as a site technician writes it: the commented example is valid as shipped, and
// every kind of mistake is refused with the file, line, key and value named (or warned about,
// for unknown keys); the S3 credentials file must be private.
#include "dock/config.hpp"
#include "support/sandbox.hpp"

#include <boost/test/unit_test.hpp>

#include <fstream>

using namespace bodydock;

namespace {

const std::string kBoard = "[board]\n[[board.slot]]\nslot = 1\nport = \"1-1.1\"\n";

std::string refusal(const std::string& text) {
  try {
    dock::parse_config(text, "dockd.toml");
  } catch (const dock::ConfigError& e) {
    return e.what();
  }
  return "(accepted)";
}

void write(const std::filesystem::path& p, const std::string& text, std::filesystem::perms mode = std::filesystem::perms(0640)) {
  std::ofstream(p) << text;
  std::filesystem::permissions(p, mode);
}

}  // namespace

BOOST_AUTO_TEST_SUITE(config)

BOOST_AUTO_TEST_CASE(the_shipped_example_is_valid) {
  const auto c = dock::load_config(std::filesystem::path(SOURCE_DIR) / "systemd" / "dockd.toml.example");
  BOOST_TEST(c.warnings.empty(), (c.warnings.empty() ? "" : c.warnings.front()));
  BOOST_TEST(c.slots.size() == 4u);
  BOOST_TEST(c.slots.at(2).port == "1-1.3");
  BOOST_TEST(c.state_dir == "/var/lib/bodydock");
  BOOST_TEST(c.port_power == "hub");
  BOOST_TEST(c.usb_ids.size() == 1u);
  BOOST_TEST(c.usb_ids[0].first == 0x1d50);
  BOOST_TEST(c.web_listen == "127.0.0.1:8080");
  BOOST_TEST((c.leds.backend == hw::LedBackendKind::sysfs));
  BOOST_TEST(c.leds.sysfs_slots.size() == 1u);
  BOOST_TEST(c.upload_retry_max.count() == 60000);
  BOOST_TEST(c.purged_retention_days == 30u);
}

BOOST_AUTO_TEST_CASE(defaults_need_only_the_board) {
  const auto c = dock::parse_config(kBoard, "dockd.toml");
  BOOST_TEST(c.store == "/var/lib/bodydock/store");
  BOOST_TEST(c.web_listen.empty());
  BOOST_TEST(c.upload_concurrency == 2u);
  BOOST_TEST(c.control_socket == "/run/bodydock/control.sock");
  BOOST_TEST(c.warnings.empty());
  BOOST_TEST(c.purged_retention_days == 30u);
  BOOST_TEST(dock::parse_config("[dock]\npurged_retention_days = 0\n" + kBoard, "dockd.toml").purged_retention_days == 0u);
  // The control socket elsewhere, or none.
  BOOST_TEST(dock::parse_config("[dock]\ncontrol_socket = \"/run/dock-2/control.sock\"\n" + kBoard, "dockd.toml").control_socket ==
             "/run/dock-2/control.sock");
  BOOST_TEST(dock::parse_config("[dock]\ncontrol_socket = \"\"\n" + kBoard, "dockd.toml").control_socket.empty());
}

BOOST_AUTO_TEST_CASE(every_kind_of_mistake_is_refused_naming_line_key_and_value) {
  struct Case {
    std::string text;
    std::string says;
  };
  const std::vector<Case> cases = {
      {"[dock]\nlog_level = 3\n" + kBoard, "dockd.toml:2: dock.log_level = 3: expected a string"},
      {"[dock]\nlog_level = \"loud\"\n" + kBoard, "dockd.toml:2: dock.log_level = 'loud': must be one of error, warning, notice, info, debug"},
      {"[dock]\nlog_format = \"xml\"\n" + kBoard, "dock.log_format = 'xml': must be one of journal, json"},
      {"[dock]\nstate_dir = \"\"\n" + kBoard, "dockd.toml:2: dock.state_dir = '': expected a path"},
      {"[dock]\npurged_retention_days = 4000\n" + kBoard, "dockd.toml:2: dock.purged_retention_days = 4000: must be 0..3650"},
      {"[dock]\n", "[board] missing"},
      {"[board]\nport_power = \"magic\"\n[[board.slot]]\nslot = 1\nport = \"1-1.1\"\n", "dockd.toml:2: board.port_power = 'magic': must be one of hub, sysfs, none"},
      {"[board]\n", "board.slot missing"},
      {"[board]\n[[board.slot]]\nslot = 0\nport = \"1-1.1\"\n", "dockd.toml:3: board.slot.slot = 0: must be 1..64"},
      {"[board]\n[[board.slot]]\nslot = 1\n", "board.slot.port missing"},
      {"[board]\n[[board.slot]]\nslot = 1\nport = \"usb1\"\n", "dockd.toml:4: board.slot.port = 'usb1': a USB port path is BUS-PORT[.PORT...]"},
      {kBoard + "[[board.slot]]\nslot = 1\nport = \"1-1.2\"\n", "dockd.toml:6: board.slot.slot = 1: slot 1 is already described at line 3"},
      {kBoard + "[[board.slot]]\nslot = 2\nport = \"1-1.1\"\n", "dockd.toml:7: board.slot.port = '1-1.1': port 1-1.1 is already slot of line 4"},
      {kBoard + "[cameras]\nusb_ids = [\"1d50-6160\"]\n", "dockd.toml:6: cameras.usb_ids = '1d50-6160': each is \"VID:PID\" in hex"},
      {kBoard + "[cameras]\nreads_in_flight = 0\n", "dockd.toml:6: cameras.reads_in_flight = 0: must be 1..64"},
      {kBoard + "[cameras]\nrequest_timeout_ms = 2.5\n", "dockd.toml:6: cameras.request_timeout_ms = 2.5: expected a whole number"},
      {kBoard + "[storage]\nstore = \"s3://footage\"\n", "storage.endpoint missing"},
      {kBoard + "[storage]\nstore = \"s3://footage\"\nendpoint = \"https://s3.example\"\n", "storage.credentials_file missing"},
      {kBoard + "[storage]\nendpoint = \"ftp://x\"\n", "dockd.toml:6: storage.endpoint = 'ftp://x': expected https://HOST[:PORT]"},
      {kBoard + "[storage]\npart_mib = 4\n", "dockd.toml:6: storage.part_mib = 4: must be 5..1024"},
      {kBoard + "[storage]\nretention_mode = \"forever\"\n", "storage.retention_mode = 'forever': must be one of compliance, governance"},
      {kBoard + "[queue]\nupload_mbps = -3\n", "dockd.toml:6: queue.upload_mbps = -3"},
      {kBoard + "[queue]\nschedule = \"25:00-26:00=2\"\n", "dockd.toml:6: queue.schedule = '25:00-26:00=2'"},
      {kBoard + "[queue]\nconcurrency = 100\n", "dockd.toml:6: queue.concurrency = 100: must be 1..16"},
      {kBoard + "[spool]\nlimit_mib = -1\n", "dockd.toml:6: spool.limit_mib = -1: must be 0.."},
      {kBoard + "[web]\nlisten = \"localhost:8080\"\n", "dockd.toml:6: web.listen = 'localhost:8080': 'localhost' is not an IP address"},
      {kBoard + "[web]\ntls = \"yes\"\n", "dockd.toml:6: web.tls = 'yes': expected true or false"},
      {kBoard + "[leds]\nbackend = \"laser\"\n", "dockd.toml:6: leds.backend = 'laser'"},
      {kBoard + "[web\n", "dockd.toml:5:"},
      {"board = 3\n", "dockd.toml:1: board = 3: expected a table [board]"},
      // A damaged file: control bytes are refused by line before TOML parsing (tests/fuzz/config_fuzz.cpp).
      {kBoard + "[web]\nlisten = \"127.0.0.1:80\x01\"\n", "dockd.toml:6: control character 0x01"},
      {kBoard + std::string("[\0", 2), "dockd.toml:5: control character 0x00"},
      {kBoard + "# \x7f\n", "dockd.toml:5: control character 0x7F"},
      // Table headers the fuzzer found toml++ 3.3 asserting on in its header-only debug builds.
      {kBoard + "[;\n", "dockd.toml:5:"},
      {kBoard + "[[[1]]]\n", "dockd.toml:5:"},
  };
  for (const auto& c : cases) {
    BOOST_TEST_CONTEXT(c.says) {
      const auto what = refusal(c.text);
      BOOST_TEST(what.find(c.says) != std::string::npos, "got: " << what);
    }
  }
}

BOOST_AUTO_TEST_CASE(unknown_keys_and_tables_are_warnings_naming_the_line) {
  const auto c = dock::parse_config(kBoard + "[web]\nlisten = \"127.0.0.1:80\"\nlisen = \"x\"\n[extra]\nx = 1\n", "dockd.toml");
  BOOST_REQUIRE_EQUAL(c.warnings.size(), 2u);
  BOOST_TEST(c.warnings[0].find("dockd.toml:8: unknown table [extra]") != std::string::npos, c.warnings[0]);
  BOOST_TEST(c.warnings[1].find("dockd.toml:7: unknown key web.lisen") != std::string::npos, c.warnings[1]);
}

BOOST_AUTO_TEST_CASE(files_the_config_names_must_be_readable_and_private) {
  test::TempDir dir;
  const auto cfg = dir / "dockd.toml";
  try {
    dock::load_config(dir / "missing.toml");
    BOOST_ERROR("a missing file was accepted");
  } catch (const dock::ConfigError& e) {
    BOOST_TEST(e.unreadable);
    BOOST_TEST(std::string(e.what()).find("missing.toml") != std::string::npos);
  }
  const std::string s3 = kBoard + "[storage]\nstore = \"s3://footage/dock-7\"\nendpoint = \"https://s3.example\"\ncredentials_file = \"" +
                         (dir / "creds").string() + "\"\n";
  write(cfg, s3);
  try {
    dock::load_config(cfg);
    BOOST_ERROR("missing credentials were accepted");
  } catch (const dock::ConfigError& e) {
    BOOST_TEST(e.unreadable);
    BOOST_TEST(std::string(e.what()).find("cannot read the S3 credentials file") != std::string::npos, e.what());
  }
  write(dir / "creds", "access_key_id = AKIDEXAMPLE\nsecret_access_key = wJalrXUtnFEMI\n", std::filesystem::perms(0644));
  try {
    dock::load_config(cfg);
    BOOST_ERROR("world-readable credentials were accepted");
  } catch (const dock::ConfigError& e) {
    BOOST_TEST(e.unreadable);
    BOOST_TEST(std::string(e.what()).find("readable by others") != std::string::npos, e.what());
    BOOST_TEST(std::string(e.what()).find("wJalrXUtnFEMI") == std::string::npos);
  }
  write(dir / "creds", "[default]\naccess_key_id = AKIDEXAMPLE\nsecret = wJalrXUtnFEMI\n", std::filesystem::perms(0600));
  try {
    dock::load_config(cfg);
    BOOST_ERROR("a bad credentials file was accepted");
  } catch (const dock::ConfigError& e) {
    BOOST_TEST(!e.unreadable);
    BOOST_TEST(std::string(e.what()).find("creds:3: unknown key 'secret'") != std::string::npos, e.what());
    BOOST_TEST(std::string(e.what()).find("wJalrXUtnFEMI") == std::string::npos);
  }
  write(dir / "creds", "# the dock's keys\naws_access_key_id = AKIDEXAMPLE\naws_secret_access_key = wJalrXUtnFEMI\n", std::filesystem::perms(0640));
  const auto c = dock::load_config(cfg);
  BOOST_TEST(c.s3_access_key_id == "AKIDEXAMPLE");
  BOOST_TEST(c.s3_secret_access_key == "wJalrXUtnFEMI");
  BOOST_TEST(c.store == "s3://footage/dock-7");
}

BOOST_AUTO_TEST_SUITE_END()
