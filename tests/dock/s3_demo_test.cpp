// `dockd demo --store s3://BUCKET/PREFIX` against the real Ceph RGW the test command starts:
// every segment (single PUT and multipart) and its manifest with the custody note land in the
// bucket, byte-exact, with the metadata the centre searches by, and every camera is emptied.
#include "dock/local_sink.hpp"
#include "dock/s3/client.hpp"
#include "hw/camera_device.hpp"
#include "proto/sha256.hpp"
#include "proto/crypto.hpp"
#include "proto/trust.hpp"
#include "support/daemon.hpp"
#include "support/rgw.hpp"
#include "support/sandbox.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/json.hpp>
#include <boost/test/unit_test.hpp>

#include <csignal>
#include <cstdlib>
#include <fstream>
#include <thread>
#include <map>
#include <random>

using namespace bodydock;
namespace asio = boost::asio;

namespace {

/// One request; "KEY?sub" or "KEY?name=value" adds one query parameter (?retention, ?prefix=).
s3::Response fetch(s3::Client& c, asio::io_context& ioc, const std::string& method, const std::string& bucket, const std::string& key_and_sub) {
  s3::Client::Result out = boost::system::error_code{};
  auto op = [](s3::Client& cl, std::string m, std::string b, std::string k, s3::Client::Result& o) -> asio::awaitable<void> {
    std::vector<s3::QueryParam> q;
    if (const auto at = k.find('?'); at != std::string::npos) {
      const auto sub = k.substr(at + 1);
      const auto eq = sub.find('=');
      q.push_back({sub.substr(0, eq), eq == std::string::npos ? "" : sub.substr(eq + 1)});
      k.resize(at);
    }
    o = co_await cl.request(std::move(m), std::move(b), std::move(k), std::move(q), {}, {});
  };
  test::run_with_watchdog(ioc, op(c, method, bucket, key_and_sub, out));
  BOOST_REQUIRE_MESSAGE(out, "transport: " << out.error().message());
  return *out;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(s3_demo)

BOOST_AUTO_TEST_CASE(demo_stores_every_segment_and_manifest_in_the_bucket) {
  test::TempDir dir;
  const auto bucket = "demo-" + std::to_string(std::random_device{}());
  // 6 MiB segments go up in two 5 MiB parts; 0.25 MiB ones in one PUT.
  for (const auto& [mib, name] : {std::pair{"6", "big"}, std::pair{"0.25", "small"}}) {
    const auto state = dir / (std::string(name) + "-state");
    auto [rc, out] = test::run_command({DOCKD_PATH, "demo", "--store", "s3://" + bucket + "/site-a/" + name, "--state", state.string(), "--no-table",
                                        "--cameras", "2", "--segments", "2", "--segment-mib", mib, "--s3-part-mib", "5", "--retention-days", "1", "--retention-mode", "governance", "--exit-when-idle"},
                                       dir / "demo.log", std::chrono::milliseconds(300'000));
    BOOST_REQUIRE_MESSAGE(rc == 0, out);
    asio::io_context ioc;
    s3::Client client(ioc.get_executor(), test::rgw_endpoint(), test::rgw_credentials());
    std::size_t checked = 0;
    for (const char* serial : {"BC-0001", "BC-0002"}) {
      hw::CameraSpec spec;
      spec.serial = serial;
      const auto cam = hw::CameraDevice::open_persistent(spec, std::filesystem::path(state.string() + ".world") / "cameras");
      BOOST_CHECK_EQUAL(cam.erased().size(), 2u);  // erased only after storage confirmed
      for (const auto& m : cam.recorded()) {
        const auto key = "site-a/" + std::string(name) + "/" + dock::LocalDirSink::object_key(m);
        const auto head = fetch(client, ioc, "HEAD", bucket, key);
        BOOST_REQUIRE_MESSAGE(head.ok(), key << ": HTTP " << head.status);
        BOOST_CHECK_EQUAL(head.header("content-length"), std::to_string(m.size));
        BOOST_CHECK_EQUAL(head.header("x-amz-meta-sha256"), proto::to_hex(m.sha256));
        BOOST_CHECK_EQUAL(head.header("x-amz-meta-recording-id"), m.recording_id);
        BOOST_CHECK_EQUAL(head.header("x-amz-meta-manifest-sha256"), proto::to_hex(proto::manifest_hash(m)));
        BOOST_CHECK(head.header("x-amz-meta-officer").starts_with("officer-01"));
        if (m.size > (5u << 20)) BOOST_CHECK(head.header("etag").ends_with("-2\""));  // multipart, two parts
        // Retention as configured, on the segment and on what lies beside it.
        // (RGW 16 does not echo the lock headers on HEAD; GetObjectRetention shows them.)
        const auto base = key.substr(0, key.size() - 4);
        for (const std::string suffix : {".seg", ".manifest.json", ".receipt"}) {
          const auto r = fetch(client, ioc, "GET", bucket, base + suffix + "?retention");
          BOOST_CHECK_MESSAGE(r.ok(), base + suffix << ": HTTP " << r.status << " " << r.body);
          BOOST_CHECK_EQUAL(s3::xml_field(r.body, "Mode"), "GOVERNANCE");
          BOOST_CHECK_MESSAGE(s3::xml_field(r.body, "RetainUntilDate") > "2026", r.body);
        }
        // The custody receipt is the dock's, names this segment and the hash storage confirmed.
        const auto receipt_obj = fetch(client, ioc, "GET", bucket, base + ".receipt");
        const auto receipt = proto::decode_receipt(proto::ByteView(reinterpret_cast<const std::uint8_t*>(receipt_obj.body.data()), receipt_obj.body.size()));
        BOOST_REQUIRE_MESSAGE(receipt, "receipt does not decode");
        BOOST_CHECK_EQUAL(receipt->camera_serial, m.camera_serial);
        BOOST_CHECK_EQUAL(receipt->seq, m.seq);
        BOOST_CHECK(receipt->sha256 == m.sha256);
        BOOST_CHECK(proto::crypto::cert_public_key(receipt->dock_cert).verify(proto::receipt_signing_input(*receipt), receipt->signature));
        const auto got = fetch(client, ioc, "GET", bucket, key);
        BOOST_CHECK(proto::Sha256::of(proto::ByteView(reinterpret_cast<const std::uint8_t*>(got.body.data()), got.body.size())) == m.sha256);
        const auto manifest = fetch(client, ioc, "GET", bucket, key.substr(0, key.size() - 4) + ".manifest.json");
        BOOST_REQUIRE(manifest.ok());
        const auto j = boost::json::parse(manifest.body).as_object();
        BOOST_CHECK_EQUAL(j.at("manifest_sha256").as_string(), proto::to_hex(proto::manifest_hash(m)));
        BOOST_CHECK_EQUAL(j.at("custody").as_object().at("dock_id").as_string(), "demo-dock");
        ++checked;
      }
    }
    BOOST_CHECK_EQUAL(checked, 4u);
    // A complete-marker for every recording whose last segment is stored, listing its segments.
    std::size_t markers = 0;
    for (const char* serial : {"BC-0001", "BC-0002"}) {
      hw::CameraSpec spec;
      spec.serial = serial;
      const auto cam = hw::CameraDevice::open_persistent(spec, std::filesystem::path(state.string() + ".world") / "cameras");
      std::map<std::string, std::vector<proto::Manifest>> recordings;
      for (const auto& m : cam.recorded()) recordings[m.recording_id].push_back(m);
      for (const auto& [id, segs] : recordings) {
        const bool complete = segs.back().last_in_recording && segs.front().segment_index == 0;
        const auto marker = fetch(client, ioc, "GET", bucket, "site-a/" + std::string(name) + "/" + serial + "/recording-" + id + ".json");
        BOOST_CHECK_MESSAGE(marker.ok() == complete, serial << " recording " << id << ": marker HTTP " << marker.status);
        if (!marker.ok()) continue;
        ++markers;
        const auto j = boost::json::parse(marker.body).as_object();
        BOOST_CHECK_EQUAL(j.at("recording_id").as_string(), id);
        BOOST_REQUIRE_EQUAL(j.at("segments").as_array().size(), segs.size());
        for (std::size_t i = 0; i < segs.size(); ++i) {
          const auto& o = j.at("segments").as_array()[i].as_object();
          BOOST_CHECK_EQUAL(o.at("key").as_string(), dock::LocalDirSink::object_key(segs[i]));
          BOOST_CHECK_EQUAL(o.at("sha256").as_string(), proto::to_hex(segs[i].sha256));
        }
      }
    }
    BOOST_CHECK_GE(markers, 1u);
    // The audit log is in the bucket too: its chunks, in order, are the dock's log line for line.
    const auto listing = fetch(client, ioc, "GET", bucket, "?prefix=site-a/" + std::string(name) + "/audit/demo-dock/");
    BOOST_REQUIRE(listing.ok());
    std::string shipped;
    for (std::size_t at = listing.body.find("<Key>"); at != std::string::npos; at = listing.body.find("<Key>", at + 1)) {
      const auto key = s3::xml_field(listing.body.substr(at), "Key");
      const auto chunk = fetch(client, ioc, "GET", bucket, key);
      BOOST_REQUIRE(chunk.ok());
      shipped += chunk.body;
    }
    BOOST_CHECK(!shipped.empty());
    BOOST_CHECK_MESSAGE(shipped == test::slurp(state / "audit" / "audit.log"), "the audit chunks in the bucket differ from the dock's audit log");
  }
  // Bad usage names what is missing.
  auto [rc, out] = test::run_command({"/usr/bin/env", "-u", "AWS_ENDPOINT_URL", DOCKD_PATH, "demo", "--store", "s3://" + bucket, "--state",
                                      (dir / "x").string(), "--cameras", "1", "--segments", "1", "--segment-mib", "1"},
                                     dir / "bad.log");
  BOOST_CHECK_EQUAL(rc, 2);
  BOOST_CHECK_MESSAGE(out.find("needs AWS_ENDPOINT_URL") != std::string::npos, out);
}

BOOST_AUTO_TEST_CASE(demo_over_the_usb_lane_stores_into_the_bucket) {
  // The umockdev lane's bus watch is on the event loop from the start: creating the bucket
  // must wait for its answer, not for the loop to run dry (it once hung there for ever).
  test::TempDir dir;
  const auto bucket = "usb-" + std::to_string(std::random_device{}());
  const auto state = dir / "state";
  auto [rc, out] = test::run_command({DOCKD_PATH, "demo", "--usb", "emulated-libusb", "--store", "s3://" + bucket, "--state", state.string(), "--no-table",
                                      "--cameras", "2", "--segments", "2", "--segment-mib", "0.5", "--exit-when-idle"},
                                     dir / "demo.log", std::chrono::milliseconds(120'000));
  BOOST_REQUIRE_MESSAGE(rc == 0, "exit " << rc << "\n" << out);
  asio::io_context ioc;
  s3::Client client(ioc.get_executor(), test::rgw_endpoint(), test::rgw_credentials());
  for (const char* serial : {"BC-0001", "BC-0002"}) {
    hw::CameraSpec spec;
    spec.serial = serial;
    const auto cam = hw::CameraDevice::open_persistent(spec, std::filesystem::path(state.string() + ".world") / "cameras");
    BOOST_CHECK_EQUAL(cam.erased().size(), 2u);
    for (const auto& m : cam.recorded()) {
      const auto got = fetch(client, ioc, "GET", bucket, dock::LocalDirSink::object_key(m));
      BOOST_REQUIRE_MESSAGE(got.ok(), serial << " seq " << m.seq << ": HTTP " << got.status);
      BOOST_CHECK(proto::Sha256::of(proto::ByteView(reinterpret_cast<const std::uint8_t*>(got.body.data()), got.body.size())) == m.sha256);
    }
  }
}

BOOST_AUTO_TEST_CASE(demo_over_https_with_a_private_ca_in_virtual_host_style) {
  test::TempDir dir;
  // The test RGW's certificate names localhost and this one bucket host (tests/rgw/README.md).
  const std::string bucket = test::kRgwTlsVirtualHostBucket;
  const auto prefix = "tls-" + std::to_string(std::random_device{}());
  const auto state = dir / "state";
  const std::vector<std::string> args = {"/usr/bin/env", "AWS_ENDPOINT_URL=" + test::rgw_env("RGW_TLS_ENDPOINT_URL"), "AWS_CA_BUNDLE=" + test::rgw_ca_file(),
                                         DOCKD_PATH, "demo", "--store", "s3://" + bucket + "/" + prefix, "--state", state.string(), "--no-table",
                                         "--cameras", "1", "--segments", "2", "--segment-mib", "6", "--s3-part-mib", "5", "--s3-virtual-host",
                                         "--exit-when-idle"};
  auto [rc, out] = test::run_command(args, dir / "demo.log", std::chrono::milliseconds(180'000));
  BOOST_REQUIRE_MESSAGE(rc == 0, out);
  asio::io_context ioc;
  s3::Client client(ioc.get_executor(), test::rgw_endpoint(), test::rgw_credentials());
  hw::CameraSpec spec;
  spec.serial = "BC-0001";
  const auto cam = hw::CameraDevice::open_persistent(spec, std::filesystem::path(state.string() + ".world") / "cameras");
  BOOST_REQUIRE_EQUAL(cam.recorded().size(), 2u);
  for (const auto& m : cam.recorded()) {
    const auto got = fetch(client, ioc, "GET", bucket, prefix + "/" + dock::LocalDirSink::object_key(m));
    BOOST_REQUIRE(got.ok());
    BOOST_CHECK(proto::Sha256::of(proto::ByteView(reinterpret_cast<const std::uint8_t*>(got.body.data()), got.body.size())) == m.sha256);
  }
  // Without the private CA the dock does not trust the endpoint: nothing leaves it, the queue retries.
  const std::vector<std::string> untrusted = {"/usr/bin/env", "-u", "AWS_CA_BUNDLE", "AWS_ENDPOINT_URL=" + test::rgw_env("RGW_TLS_ENDPOINT_URL"),
                                              DOCKD_PATH, "demo", "--store", "s3://" + bucket + "/" + prefix + "-x", "--state", (dir / "x").string(),
                                              "--no-table", "--cameras", "1", "--segments", "1", "--segment-mib", "1", "--upload-retry-max-ms", "300"};
  test::Daemon d(untrusted, dir / "untrusted.log");
  BOOST_CHECK_EQUAL(d.wait_exit(std::chrono::milliseconds(6000)), -1);  // still serving the camera
  d.terminate();
  d.wait_exit(std::chrono::milliseconds(20000));
  const auto log = test::slurp(dir / "untrusted.log");
  BOOST_CHECK_MESSAGE(log.find("certificate") != std::string::npos, log);
  BOOST_CHECK(log.find("stored as") == std::string::npos);
}

// SIGHUP re-reads the config's upload cap and applies it to the transfer under way: a segment
// crawling at 0.25 MB/s finishes at full speed once the cap is lifted, in the same upload, with
// no failed attempt.
BOOST_AUTO_TEST_CASE(sighup_lifts_the_upload_cap_of_a_running_transfer) {
  test::TempDir dir;
  const auto bucket = "hup-" + std::to_string(std::random_device{}());
  const auto cfg = dir / "dockd.toml";
  const auto sock = (dir / "control.sock").string();
  auto write_config = [&](const char* mbps) {
    std::ofstream(cfg) << "[board]\nport_power = \"none\"\n[[board.slot]]\nslot = 1\nport = \"1-1\"\n[queue]\nupload_mbps = " << mbps << "\n";
  };
  write_config("0.25");
  const auto log = dir / "demo.log";
  test::Daemon demo({DOCKD_PATH, "demo", "--store", "s3://" + bucket + "/hup", "--state", (dir / "state").string(), "--no-table", "--cameras", "1",
                     "--segments", "1", "--segment-mib", "6", "--s3-part-mib", "5", "--retention-days", "1", "--control", sock, "--config",
                     cfg.string(), "--exit-when-idle"},
                    log);
  // Under way at the old cap: uploading, nothing stored yet.
  std::string out;
  int rc = 0;
  for (int i = 0; i < 600; ++i) {
    std::tie(rc, out) = test::run_command({DOCKCTL_PATH, "status", "--socket", sock}, dir / "out.log");
    if (rc == 0 && out.find("uplink: uploading") != std::string::npos) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  BOOST_REQUIRE_MESSAGE(out.find("uplink: uploading") != std::string::npos, out << test::slurp(log));
  BOOST_REQUIRE_MESSAGE(out.find("stored 0 segments") != std::string::npos, out);
  write_config("0");
  const auto hup = std::chrono::steady_clock::now();
  ::kill(demo.pid(), SIGHUP);
  // At 0.25 MB/s the 6 MiB would need over 20 s more; without the cap it is done in moments.
  BOOST_REQUIRE_EQUAL(demo.wait_exit(std::chrono::seconds(120)), 0);
  const auto after = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - hup).count();
  BOOST_TEST_MESSAGE("stored " << after << " ms after SIGHUP");
  BOOST_CHECK_LT(after, 12'000);
  const auto text = test::slurp(log);
  BOOST_CHECK_MESSAGE(text.find("reload: upload cap now 0 MB/s") != std::string::npos, text);
  BOOST_CHECK_MESSAGE(text.find(cfg.string() + " read again") != std::string::npos, text);
  BOOST_CHECK_MESSAGE(text.find("store attempt") == std::string::npos, "no upload failed or started over: " << text);
  hw::CameraSpec spec;
  spec.serial = "BC-0001";
  const auto cam = hw::CameraDevice::open_persistent(spec, dir / "state.world" / "cameras");
  BOOST_CHECK_EQUAL(cam.erased().size(), 1u);
}

BOOST_AUTO_TEST_SUITE_END()
