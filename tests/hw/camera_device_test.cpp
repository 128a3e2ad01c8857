// The emulated camera: deterministic content, realistic chained manifests, persistence, and
// protocol robustness (malformed input gets an ERROR reply and the device keeps serving).
#include "hw/camera_device.hpp"
#include "proto/messages.hpp"
#include "proto/sha256.hpp"
#include "proto/trust.hpp"
#include "support/fleet.hpp"
#include "support/sandbox.hpp"

#include <boost/test/unit_test.hpp>

using namespace bodydock;
using proto::Bytes;
using proto::MsgType;

namespace {

hw::CameraSpec small_spec(const std::string& serial = "BC-0100") {
  hw::CameraSpec s;
  s.serial = serial;
  s.segments = 7;
  s.segment_bytes = 100'000;
  s.chunk_size = 16384;
  s.seed = 42;
  s.trust = test::camera_keys(serial);
  return s;
}

/// Sends one request and returns the single reply frame.
proto::Frame ask(hw::CameraDevice& dev, MsgType type, const Bytes& payload, std::uint32_t id = 1) {
  auto frame = proto::encode_frame(type, id, payload);
  auto out = dev.handle(*frame);
  proto::FrameParser p;
  BOOST_REQUIRE(!p.feed(out));
  auto f = p.next();
  BOOST_REQUIRE(f);
  BOOST_CHECK(!p.next());
  return std::move(*f);
}

proto::errc error_of(const proto::Frame& f) {
  BOOST_REQUIRE(f.header.type == MsgType::error);
  return proto::decode_error(f.payload)->code;
}

/// The dock's half of mutual authentication (PROTOCOL.md 5.5), as `me`. Returns the camera's
/// answer to AUTH_FINISH (AUTH_FINISH_OK or an ERROR), or its ERROR to AUTH_BEGIN.
/// `finish_payload` receives what was sent as AUTH_FINISH (for replay tests).
proto::Frame authenticate(hw::CameraDevice& dev, const pki::DockIdentity& me, Bytes* finish_payload = nullptr) {
  proto::AuthBegin begin;
  const auto nonce = proto::crypto::random_bytes(32);
  std::copy(nonce.begin(), nonce.end(), begin.dock_nonce.begin());
  begin.dock_cert = me.cert;
  auto f = ask(dev, MsgType::auth_begin, proto::encode(begin), 2);
  if (f.header.type != MsgType::auth_begin_ok) return f;
  auto answer = proto::decode_auth_begin_ok(f.payload);
  BOOST_REQUIRE(answer);
  proto::AuthFinish fin;
  fin.signature = me.key.sign(proto::auth_transcript(proto::AuthRole::dock, begin.dock_nonce, answer->camera_nonce, me.cert,
                                                      answer->camera_cert, dev.spec().serial));
  const auto payload = proto::encode(fin);
  if (finish_payload) *finish_payload = payload;
  return ask(dev, MsgType::auth_finish, payload, 3);
}

void hello(hw::CameraDevice& dev) {
  auto f = ask(dev, MsgType::hello, proto::encode(proto::Hello{}));
  BOOST_REQUIRE(f.header.type == MsgType::hello_ok);
}

/// HELLO and mutual authentication as the shared fleet's dock.
void hello_auth(hw::CameraDevice& dev) {
  hello(dev);
  BOOST_REQUIRE(authenticate(dev, *test::dock_identity()).header.type == MsgType::auth_finish_ok);
  BOOST_REQUIRE(dev.authenticated());
}

/// A signed custody receipt for `m`, as `me` would issue it.
Bytes receipt_for(const proto::Manifest& m, const pki::DockIdentity& me) {
  proto::Receipt r;
  r.camera_serial = m.camera_serial;
  r.seq = m.seq;
  r.sha256 = m.sha256;
  r.manifest_sha256 = proto::manifest_hash(m);
  r.stored_at = "test-store";
  r.stored_utc_ms = 1;
  r.dock_cert = me.cert;
  return proto::encode_receipt(proto::make_receipt(r, me.key));
}

}  // namespace

BOOST_AUTO_TEST_SUITE(camera_device)

BOOST_AUTO_TEST_CASE(content_is_deterministic_at_any_offset) {
  Bytes whole(10'000);
  hw::emulated_content(77, 0, whole);
  for (std::uint64_t off : {0ull, 1ull, 7ull, 8ull, 9ull, 4095ull, 9990ull}) {
    Bytes part(std::min<std::uint64_t>(10, whole.size() - off));
    hw::emulated_content(77, off, part);
    BOOST_CHECK(std::equal(part.begin(), part.end(), whole.begin() + static_cast<std::ptrdiff_t>(off)));
  }
  Bytes other(100);
  hw::emulated_content(78, 0, other);
  BOOST_CHECK(!std::equal(other.begin(), other.end(), whole.begin()));
  BOOST_CHECK_NE(hw::content_key(1, "A", 1), hw::content_key(1, "A", 2));
  BOOST_CHECK_NE(hw::content_key(1, "A", 1), hw::content_key(1, "B", 1));
}

BOOST_AUTO_TEST_CASE(manifests_are_realistic_and_chained) {
  hw::CameraDevice dev(small_spec());
  const auto& ms = dev.recorded();
  BOOST_REQUIRE_EQUAL(ms.size(), 7u);
  proto::Digest prev{};
  for (const auto& m : ms) {
    BOOST_CHECK(m.prev_manifest_sha256 == prev);
    prev = proto::manifest_hash(m);
    BOOST_CHECK_EQUAL(m.chunk_sha256.size(), m.chunk_count());
    BOOST_CHECK(m.end_utc_ms > m.start_utc_ms);
    BOOST_CHECK(!m.recording_id.empty());
    // The first segment of a recording carries the pre-record buffer and the real trigger.
    if (m.segment_index == 0) {
      BOOST_CHECK_EQUAL(m.pre_record_s, 60);
      BOOST_CHECK_NE(m.trigger_on, "segment-rollover");
    } else {
      BOOST_CHECK_EQUAL(m.pre_record_s, 0);
    }
    if (m.last_in_recording) BOOST_CHECK_NE(m.trigger_off, "segment-rollover");
    // Hashes match the ciphertext; the signature verifies with the camera's key; the footage
    // decrypts (only) with the organisation's recording key.
    Bytes content(m.size);
    dev.content(m.seq, 0, content);
    BOOST_CHECK(proto::Sha256::of(content) == m.sha256);
    BOOST_CHECK(proto::Sha256::of(proto::ByteView(content).first(m.chunk_size)) == m.chunk_sha256[0]);
    BOOST_CHECK(proto::manifest_signature_valid(m, dev.spec().trust->device_key.public_key()));
    BOOST_CHECK_EQUAL(m.encryption, 1);
    const auto org = proto::crypto::PrivateKey::from_pem(test::slurp_text(test::fleet().recording_key_file()));
    const auto key = proto::unwrap_segment_key(m.key_wrap, org, m.camera_serial, m.seq);
    BOOST_CHECK(key == dev.segment_key(m.seq));
    Bytes plain(m.chunk_length(0) - 16);
    BOOST_CHECK(proto::open_chunk(key, m.camera_serial, m.seq, 0, m.chunk_count() == 1, proto::ByteView(content).first(m.chunk_length(0)), plain));
    Bytes expect(plain.size());
    dev.plaintext(m.seq, 0, expect);
    BOOST_CHECK(plain == expect);
    BOOST_CHECK(!std::equal(expect.begin(), expect.end(), content.begin()));  // not stored in the clear
    const auto other = proto::crypto::PrivateKey::generate();
    BOOST_CHECK_THROW(proto::unwrap_segment_key(m.key_wrap, other, m.camera_serial, m.seq), proto::crypto::CryptoError);
    BOOST_CHECK_THROW(proto::unwrap_segment_key(m.key_wrap, org, m.camera_serial, m.seq + 1), proto::crypto::CryptoError);
  }
  BOOST_CHECK(ms.back().last_in_recording);
}

// The officer flagged segment 3 (and 6): their manifests carry the priority flag, signed and
// chained like the rest; LIST serves it; a power cycle keeps it whatever the spec says then.
BOOST_AUTO_TEST_CASE(flagged_segments_carry_the_signed_priority_flag) {
  test::TempDir dir;
  auto spec = small_spec();
  spec.priority_segments = {3, 6};
  {
    auto dev = hw::CameraDevice::open_persistent(spec, dir / "cam");
    proto::Digest prev{};
    for (const auto& m : dev.recorded()) {
      BOOST_TEST_CONTEXT("seq " << m.seq) {
        BOOST_CHECK_EQUAL(m.version, proto::kManifestVersion);
        BOOST_CHECK_EQUAL(m.priority(), m.seq == 3 || m.seq == 6);
        BOOST_CHECK(m.prev_manifest_sha256 == prev);
        BOOST_CHECK(proto::manifest_signature_valid(m, dev.spec().trust->device_key.public_key()));
        prev = proto::manifest_hash(m);
      }
    }
    hello_auth(dev);
    auto l = proto::decode_list_ok(ask(dev, MsgType::list, proto::encode(proto::List{3, 1})).payload);
    BOOST_REQUIRE(l);
    BOOST_REQUIRE_EQUAL(l->manifests.size(), 1u);
    BOOST_CHECK(l->manifests[0].priority());
    BOOST_CHECK(proto::encode_manifest(l->manifests[0]) == proto::encode_manifest(dev.recorded()[2]));
    // The flag is signed: a camera (or anyone) that drops it afterwards breaks the signature.
    auto demoted = l->manifests[0];
    demoted.flags = 0;
    BOOST_CHECK(!proto::manifest_signature_valid(demoted, dev.spec().trust->device_key.public_key()));
  }
  auto again = hw::CameraDevice::open_persistent(small_spec(), dir / "cam");  // no flags in this spec
  const std::set<std::uint64_t> expect = {3, 6};
  BOOST_CHECK(again.spec().priority_segments == expect);
  BOOST_CHECK(again.recorded()[2].priority());
  BOOST_CHECK(!again.recorded()[1].priority());
  // A segment the camera never records cannot be flagged: a mistake in the test, not a camera.
  auto wrong = small_spec();
  wrong.priority_segments = {8};
  BOOST_CHECK_THROW(hw::CameraDevice{wrong}, std::invalid_argument);
}

BOOST_AUTO_TEST_CASE(requests_before_hello_and_authentication_are_refused) {
  hw::CameraDevice dev(small_spec());
  BOOST_CHECK(error_of(ask(dev, MsgType::list, proto::encode(proto::List{}))) == proto::errc::bad_state);
  hello(dev);
  // Charge-only requests work without authentication; footage, clock and flash do not.
  BOOST_CHECK(ask(dev, MsgType::status_get, {}).header.type == MsgType::status);
  BOOST_CHECK(ask(dev, MsgType::set_charging, proto::encode(proto::SetCharging{true})).header.type == MsgType::set_charging_ok);
  const auto& m = dev.recorded()[0];
  BOOST_CHECK(error_of(ask(dev, MsgType::list, proto::encode(proto::List{}))) == proto::errc::not_authenticated);
  BOOST_CHECK(error_of(ask(dev, MsgType::read, proto::encode(proto::Read{1, 0, 4096}))) == proto::errc::not_authenticated);
  BOOST_CHECK(error_of(ask(dev, MsgType::set_time, proto::encode(proto::SetTime{1}))) == proto::errc::not_authenticated);
  BOOST_CHECK(error_of(ask(dev, MsgType::erase, proto::encode(proto::Erase{1, receipt_for(m, *test::dock_identity())}))) ==
              proto::errc::not_authenticated);
  BOOST_CHECK(error_of(ask(dev, MsgType::auth_finish, proto::encode(proto::AuthFinish{Bytes(70, 1)}))) == proto::errc::bad_state);
  BOOST_CHECK_EQUAL(dev.bytes_served(), 0u);
  BOOST_CHECK(authenticate(dev, *test::dock_identity()).header.type == MsgType::auth_finish_ok);
  BOOST_CHECK(ask(dev, MsgType::list, proto::encode(proto::List{})).header.type == MsgType::list_ok);
  // A new HELLO (or docking) needs a new authentication.
  hello(dev);
  BOOST_CHECK(error_of(ask(dev, MsgType::list, proto::encode(proto::List{}))) == proto::errc::not_authenticated);
}

BOOST_AUTO_TEST_CASE(version_2_only) {
  hw::CameraDevice dev(small_spec());
  BOOST_CHECK(error_of(ask(dev, MsgType::hello, proto::encode(proto::Hello{1, 1, "x"}))) == proto::errc::unsupported_version);
  BOOST_CHECK(error_of(ask(dev, MsgType::hello, proto::encode(proto::Hello{3, 9, "x"}))) == proto::errc::unsupported_version);
  auto ok = ask(dev, MsgType::hello, proto::encode(proto::Hello{1, 9, "x"}));
  BOOST_CHECK_EQUAL(proto::decode_hello_ok(ok.payload)->version, 2);
}

// The camera's half of mutual authentication: a dock from another CA, a dock whose signature
// is replayed from an earlier docking, and a dock certificate in a camera's place all fail,
// and nothing can then be listed, read or erased.
BOOST_AUTO_TEST_CASE(rogue_dock_cannot_authenticate_or_erase) {
  test::TempDir dir;
  dock::EmulatedFleet other(dir / "other");
  const auto rogue = other.dock("rogue-dock", dir / "rogue-trust");
  hw::CameraDevice dev(small_spec());
  hello(dev);
  auto f = authenticate(dev, *rogue);
  BOOST_CHECK(error_of(f) == proto::errc::auth_failed);
  BOOST_CHECK(!dev.authenticated());
  const auto& m = dev.recorded()[0];
  // Its receipt is refused before it is even looked at: the session never authenticated.
  BOOST_CHECK(error_of(ask(dev, MsgType::erase, proto::encode(proto::Erase{m.seq, receipt_for(m, *rogue)}))) == proto::errc::not_authenticated);
  BOOST_CHECK(error_of(ask(dev, MsgType::read, proto::encode(proto::Read{m.seq, 0, 4096}))) == proto::errc::not_authenticated);

  // A genuine dock's AUTH_FINISH replayed into a later docking does not verify (new nonces).
  Bytes recorded;
  hello(dev);
  BOOST_REQUIRE(authenticate(dev, *test::dock_identity(), &recorded).header.type == MsgType::auth_finish_ok);
  dev.reset_session();
  hello(dev);
  proto::AuthBegin begin;
  begin.dock_cert = test::dock_identity()->cert;
  BOOST_REQUIRE(ask(dev, MsgType::auth_begin, proto::encode(begin)).header.type == MsgType::auth_begin_ok);
  BOOST_CHECK(error_of(ask(dev, MsgType::auth_finish, recorded)) == proto::errc::auth_failed);
  BOOST_CHECK(!dev.authenticated());
  BOOST_CHECK(dev.erased().empty());
  BOOST_CHECK_EQUAL(dev.bytes_served(), 0u);
}

BOOST_AUTO_TEST_CASE(reads_serve_exact_bytes_and_bounds) {
  hw::CameraDevice dev(small_spec());
  hello_auth(dev);
  const auto& m = dev.recorded()[2];
  auto f = ask(dev, MsgType::read, proto::encode(proto::Read{m.seq, m.size - 10, 4096}), 5);
  BOOST_REQUIRE(f.header.type == MsgType::data);
  BOOST_CHECK_EQUAL(f.header.request_id, 5u);
  auto d = proto::decode_data(f.payload);
  BOOST_REQUIRE(d);
  BOOST_CHECK_EQUAL(d->bytes.size(), 10u);  // short at the end of the segment
  Bytes expect(10);
  dev.content(m.seq, m.size - 10, expect);
  BOOST_CHECK(std::equal(expect.begin(), expect.end(), d->bytes.begin()));
  BOOST_CHECK(error_of(ask(dev, MsgType::read, proto::encode(proto::Read{m.seq, m.size, 1}))) == proto::errc::out_of_range);
  BOOST_CHECK(error_of(ask(dev, MsgType::read, proto::encode(proto::Read{999, 0, 1}))) == proto::errc::not_found);
}

BOOST_AUTO_TEST_CASE(list_pages_from_a_cursor) {
  hw::CameraDevice dev(small_spec());
  hello_auth(dev);
  auto f = ask(dev, MsgType::list, proto::encode(proto::List{3, 2}));
  auto l = proto::decode_list_ok(f.payload);
  BOOST_REQUIRE(l);
  BOOST_REQUIRE_EQUAL(l->manifests.size(), 2u);
  BOOST_CHECK_EQUAL(l->manifests[0].seq, 3u);
  BOOST_CHECK(l->more);
  BOOST_CHECK_EQUAL(l->next_cursor, 5u);
}

BOOST_AUTO_TEST_CASE(erase_needs_a_valid_signed_receipt_and_persists) {
  bodydock::test::TempDir dir;
  dock::EmulatedFleet other(dir / "other");
  const auto rogue = other.dock("rogue-dock", dir / "rogue-trust");
  const auto& me = *test::dock_identity();
  {
    auto dev = hw::CameraDevice::open_persistent(small_spec(), dir / "cam");
    hello_auth(dev);
    const auto m = dev.recorded()[0];
    auto refused = [&](const Bytes& receipt) {
      return error_of(ask(dev, MsgType::erase, proto::encode(proto::Erase{m.seq, receipt}))) == proto::errc::receipt_rejected;
    };
    BOOST_CHECK(refused({}));
    BOOST_CHECK(refused(Bytes(m.sha256.begin(), m.sha256.end())));  // the unsigned v1 receipt
    // Signed by a dock of another fleet, even inside an authenticated session.
    BOOST_CHECK(refused(receipt_for(m, *rogue)));
    // A receipt of ours, altered after signing: another segment, another hash, a broken signature.
    auto other_seg = dev.recorded()[1];
    BOOST_CHECK(refused(receipt_for(other_seg, me)));
    auto r = *proto::decode_receipt(receipt_for(m, me));
    r.stored_at = "elsewhere";
    BOOST_CHECK(refused(proto::encode_receipt(r)));
    auto wrong = m;
    wrong.sha256[31] ^= 1;
    BOOST_CHECK(refused(receipt_for(wrong, me)));
    BOOST_CHECK_EQUAL(dev.receipts_rejected(), 6u);
    BOOST_CHECK(!dev.is_erased(m.seq));
    auto ok = ask(dev, MsgType::erase, proto::encode(proto::Erase{m.seq, receipt_for(m, me)}));
    BOOST_CHECK(ok.header.type == MsgType::erase_ok);
    BOOST_CHECK(dev.is_erased(m.seq));
    BOOST_CHECK(error_of(ask(dev, MsgType::erase, proto::encode(proto::Erase{m.seq, receipt_for(m, me)}))) == proto::errc::not_found);
  }
  // A power cycle keeps both the recordings and the erasure.
  auto again = hw::CameraDevice::open_persistent(small_spec(), dir / "cam");
  BOOST_CHECK(again.is_erased(1));
  BOOST_CHECK_EQUAL(again.recorded().size(), 7u);
  BOOST_CHECK_EQUAL(hw::CameraDevice::read_erase_log(dir / "cam", "BC-0100").size(), 1u);
}

BOOST_AUTO_TEST_CASE(a_new_shift_chains_on_and_erased_segments_are_forgotten) {
  const auto& me = *test::dock_identity();
  hw::CameraDevice dev(small_spec());
  hello_auth(dev);
  const auto first = dev.recorded();
  BOOST_REQUIRE_EQUAL(first.size(), 7u);
  for (const std::uint64_t seq : {1u, 2u, 7u}) {  // 7, the newest, is erased too
    const auto ok = ask(dev, MsgType::erase, proto::encode(proto::Erase{seq, receipt_for(first[seq - 1], me)}));
    BOOST_REQUIRE(ok.header.type == MsgType::erase_ok);
  }
  dev.record_shift(3);
  const auto& now = dev.recorded();
  // 3..6 still to hand over, 7 as the anchor, then 8..10.
  std::vector<std::uint64_t> seqs;
  for (const auto& m : now) seqs.push_back(m.seq);
  BOOST_CHECK((seqs == std::vector<std::uint64_t>{3, 4, 5, 6, 7, 8, 9, 10}));
  BOOST_CHECK(dev.is_erased(1) && dev.is_erased(7));
  BOOST_CHECK(now[5].prev_manifest_sha256 == proto::manifest_hash(first[6]));
  BOOST_CHECK(now[6].prev_manifest_sha256 == proto::manifest_hash(now[5]));
  BOOST_CHECK_GT(now[5].start_utc_ms, first[6].end_utc_ms);
  BOOST_CHECK(proto::encode_manifest(now[0]) == proto::encode_manifest(first[2]));  // unchanged
}

BOOST_AUTO_TEST_CASE(malformed_input_gets_an_error_and_the_device_recovers) {
  hw::CameraDevice dev(small_spec());
  hello_auth(dev);
  struct Case {
    const char* name;
    Bytes bytes;
    proto::errc expect;
  };
  Bytes bad_magic = *proto::encode_frame(MsgType::status_get, 3, {});
  bad_magic[0] ^= 0xFF;
  Bytes huge;
  proto::append_frame_header(huge, MsgType::read, 4, 0x7FFFFFFF);
  Bytes unknown = *proto::encode_frame(MsgType::status_get, 5, {});
  unknown[3] = 0x42;
  const Case cases[] = {
      {"bad magic", bad_magic, proto::errc::malformed_frame},
      {"oversized", huge, proto::errc::too_large},
      {"unknown type", unknown, proto::errc::unknown_type},
      {"truncated READ payload", *proto::encode_frame(MsgType::read, 6, Bytes(5, 0)), proto::errc::truncated},
      {"READ of zero bytes", *proto::encode_frame(MsgType::read, 7, proto::encode(proto::Read{1, 0, 0})), proto::errc::bad_request},
      {"reply type as request", *proto::encode_frame(MsgType::data, 8, Bytes(16, 0)), proto::errc::bad_request},
  };
  for (const auto& c : cases) {
    BOOST_TEST_CONTEXT(c.name) {
      auto out = dev.handle(c.bytes);
      proto::FrameParser p;
      BOOST_REQUIRE(!p.feed(out));
      auto f = p.next();
      BOOST_REQUIRE(f);
      BOOST_CHECK(error_of(*f) == c.expect);
      // Still serving afterwards.
      BOOST_CHECK(ask(dev, MsgType::status_get, {}, 99).header.type == MsgType::status);
    }
  }
}

BOOST_AUTO_TEST_CASE(status_reports_storage_and_battery) {
  auto spec = small_spec();
  spec.battery_pct = 55;
  hw::CameraDevice dev(spec);
  hello(dev);
  auto st = proto::decode_status(ask(dev, MsgType::status_get, {}).payload);
  BOOST_REQUIRE(st);
  BOOST_CHECK_EQUAL(st->battery_pct, 55);
  BOOST_CHECK(st->charging);
  BOOST_CHECK_EQUAL(st->storage_used, 7u * dev.recorded()[0].size);
  BOOST_CHECK_EQUAL(st->segment_count, 7u);
}

// Charging (PROTOCOL.md 4.10): status shows charge and temperature, SET_CHARGING stops and resumes
// it, a hot-when-charging battery cools when charging stops, and a new docking allows charging.
BOOST_AUTO_TEST_CASE(set_charging_stops_and_resumes_the_charger) {
  auto spec = small_spec();
  spec.battery_pct = 50;
  spec.temperature_dc = 300;
  hw::CameraDevice dev(spec);
  dev.faults().charge_heat_dc = 200;
  hello(dev);
  auto st = proto::decode_status(ask(dev, MsgType::status_get, {}).payload);
  BOOST_REQUIRE(st);
  BOOST_CHECK(st->charging);
  BOOST_CHECK_EQUAL(st->temperature_dc, 500);
  BOOST_CHECK_EQUAL(st->battery_pct, 50);

  auto ok = ask(dev, MsgType::set_charging, proto::encode(proto::SetCharging{false}));
  BOOST_REQUIRE(ok.header.type == MsgType::set_charging_ok);
  BOOST_CHECK(!proto::decode_set_charging_ok(ok.payload)->charging);
  st = proto::decode_status(ask(dev, MsgType::status_get, {}).payload);
  BOOST_CHECK(!st->charging);
  BOOST_CHECK_EQUAL(st->temperature_dc, 300);
  BOOST_CHECK_EQUAL(st->battery_pct, 51);

  ok = ask(dev, MsgType::set_charging, proto::encode(proto::SetCharging{true}));
  BOOST_CHECK(proto::decode_set_charging_ok(ok.payload)->charging);
  BOOST_CHECK(error_of(ask(dev, MsgType::set_charging, Bytes{7})) == proto::errc::bad_request);

  ask(dev, MsgType::set_charging, proto::encode(proto::SetCharging{false}));
  dev.reset_session();  // undocked and docked again
  BOOST_CHECK(dev.charging());

  dev.faults().charger_uncontrollable = true;
  hello(dev);
  ok = ask(dev, MsgType::set_charging, proto::encode(proto::SetCharging{false}));
  BOOST_CHECK(proto::decode_set_charging_ok(ok.payload)->charging);  // says so honestly
}

BOOST_AUTO_TEST_SUITE_END()
