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

#include <cstdlib>
#include <random>

using namespace bodydock;
namespace asio = boost::asio;

namespace {

/// One request; "KEY?sub" asks for a subresource (e.g. ?retention).
s3::Response fetch(s3::Client& c, asio::io_context& ioc, const std::string& method, const std::string& bucket, const std::string& key_and_sub) {
  s3::Client::Result out = boost::system::error_code{};
  auto op = [](s3::Client& cl, std::string m, std::string b, std::string k, s3::Client::Result& o) -> asio::awaitable<void> {
    std::vector<s3::QueryParam> q;
    if (const auto at = k.find('?'); at != std::string::npos) {
      q.push_back({k.substr(at + 1), ""});
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
  }
  // Bad usage names what is missing.
  auto [rc, out] = test::run_command({"/usr/bin/env", "-u", "AWS_ENDPOINT_URL", DOCKD_PATH, "demo", "--store", "s3://" + bucket, "--state",
                                      (dir / "x").string(), "--cameras", "1", "--segments", "1", "--segment-mib", "1"},
                                     dir / "bad.log");
  BOOST_CHECK_EQUAL(rc, 2);
  BOOST_CHECK_MESSAGE(out.find("needs AWS_ENDPOINT_URL") != std::string::npos, out);
}

BOOST_AUTO_TEST_SUITE_END()
