// Typed messages: round trips of every message, and a fail matrix that truncates each encoded
// payload at every byte and appends a trailing byte: every variant must be a typed error.
#include "proto/messages.hpp"

#include <boost/test/unit_test.hpp>

#include <functional>

using namespace bodydock::proto;

namespace {

Manifest sample_manifest(std::uint64_t seq) {
  Manifest m;
  m.camera_serial = "BC-0042";
  m.seq = seq;
  m.recording_id = "REC-0001";
  m.segment_index = 1;
  m.last_in_recording = true;
  m.start_utc_ms = 1'795'000'000'000;
  m.end_utc_ms = m.start_utc_ms + 60'000;
  m.pre_record_s = 0;
  m.trigger_on = "segment-rollover";
  m.trigger_off = "button";
  m.firmware = "1.2.3";
  m.size = 10'000;
  m.chunk_size = 4096;
  m.chunk_sha256.resize(3);
  for (std::size_t i = 0; i < 3; ++i) m.chunk_sha256[i].fill(static_cast<std::uint8_t>(i + 1));
  m.sha256.fill(0xAB);
  m.key_wrap.assign(114, 0x5A);
  m.signature.assign(70, 0x30);
  m.prev_manifest_sha256.fill(0xCD);
  return m;
}

/// Every strict prefix and a one-byte extension of `good` must fail to decode.
void fail_matrix(const Bytes& good, const std::function<bool(ByteView)>& decodes) {
  BOOST_REQUIRE(decodes(good));
  for (std::size_t n = 0; n < good.size(); ++n) BOOST_CHECK_MESSAGE(!decodes(ByteView(good).first(n)), "prefix of " << n << " bytes decoded");
  Bytes longer = good;
  longer.push_back(0);
  BOOST_CHECK_MESSAGE(!decodes(longer), "trailing byte accepted");
}

}  // namespace

BOOST_AUTO_TEST_SUITE(messages)

BOOST_AUTO_TEST_CASE(hello_round_trip_and_matrix) {
  Hello h{1, 3, "dock-7"};
  auto d = decode_hello(encode(h));
  BOOST_REQUIRE(d);
  BOOST_CHECK_EQUAL(d->min_version, 1);
  BOOST_CHECK_EQUAL(d->max_version, 3);
  BOOST_CHECK_EQUAL(d->host_id, "dock-7");
  fail_matrix(encode(h), [](ByteView b) { return bool(decode_hello(b)); });
  BOOST_CHECK(decode_hello(encode(Hello{3, 1, ""})).error() == make_error_code(errc::bad_request));
  BOOST_CHECK(decode_hello(encode(Hello{0, 1, ""})).error() == make_error_code(errc::bad_request));
}

BOOST_AUTO_TEST_CASE(hello_ok_round_trip_and_matrix) {
  HelloOk h;
  h.serial = "BC-1";
  h.model = "M";
  h.firmware = "F";
  h.max_read = 65536;
  h.max_inflight = 4;
  auto d = decode_hello_ok(encode(h));
  BOOST_REQUIRE(d);
  BOOST_CHECK_EQUAL(d->serial, "BC-1");
  BOOST_CHECK_EQUAL(d->max_read, 65536u);
  fail_matrix(encode(h), [](ByteView b) { return bool(decode_hello_ok(b)); });
  h.max_read = kMaxReadLength + 1;
  BOOST_CHECK(!decode_hello_ok(encode(h)));
  h.max_read = 65536;
  h.serial.clear();
  BOOST_CHECK(!decode_hello_ok(encode(h)));
}

BOOST_AUTO_TEST_CASE(status_round_trip_and_limits) {
  Status s{87, true, -45, 100, 200, 1'795'000'000'123, 9};
  auto d = decode_status(encode(s));
  BOOST_REQUIRE(d);
  BOOST_CHECK_EQUAL(d->battery_pct, 87);
  BOOST_CHECK(d->charging);
  BOOST_CHECK_EQUAL(d->temperature_dc, -45);
  BOOST_CHECK_EQUAL(d->clock_utc_ms, 1'795'000'000'123);
  fail_matrix(encode(s), [](ByteView b) { return bool(decode_status(b)); });
  s.battery_pct = 101;
  BOOST_CHECK(decode_status(encode(s)).error() == make_error_code(errc::bad_request));
  s.battery_pct = 50;
  s.storage_used = 300;
  BOOST_CHECK(!decode_status(encode(s)));
}

BOOST_AUTO_TEST_CASE(small_messages_round_trip) {
  BOOST_CHECK(decode_status_get(encode(StatusGet{})));
  BOOST_CHECK(!decode_status_get(Bytes{0}));
  BOOST_CHECK_EQUAL(decode_set_time(encode(SetTime{-5}))->utc_ms, -5);
  fail_matrix(encode(SetTime{42}), [](ByteView b) { return bool(decode_set_time(b)); });
  BOOST_CHECK_EQUAL(decode_set_time_ok(encode(SetTimeOk{77}))->adjusted_by_ms, 77);
  BOOST_CHECK_EQUAL(decode_erase_ok(encode(EraseOk{12}))->seq, 12u);
  fail_matrix(encode(EraseOk{12}), [](ByteView b) { return bool(decode_erase_ok(b)); });
  for (bool v : {false, true}) {
    BOOST_CHECK_EQUAL(decode_set_charging(encode(SetCharging{v}))->allow, v);
    BOOST_CHECK_EQUAL(decode_set_charging_ok(encode(SetChargingOk{v}))->charging, v);
  }
  fail_matrix(encode(SetCharging{true}), [](ByteView b) { return bool(decode_set_charging(b)); });
  fail_matrix(encode(SetChargingOk{false}), [](ByteView b) { return bool(decode_set_charging_ok(b)); });
  BOOST_CHECK(decode_set_charging(Bytes{2}).error() == errc::bad_request);  // a bool is 0 or 1 (section 3)
  BOOST_CHECK(decode_set_charging_ok(Bytes{0xFF}).error() == errc::bad_request);
}

BOOST_AUTO_TEST_CASE(list_round_trip_and_limits) {
  List l{5, 10};
  auto d = decode_list(encode(l));
  BOOST_REQUIRE(d);
  BOOST_CHECK_EQUAL(d->cursor, 5u);
  fail_matrix(encode(l), [](ByteView b) { return bool(decode_list(b)); });
  BOOST_CHECK(!decode_list(encode(List{0, 0})));
  BOOST_CHECK(!decode_list(encode(List{0, kMaxListCount + 1})));

  ListOk ok;
  ok.manifests = {sample_manifest(3), sample_manifest(4)};
  ok.next_cursor = 5;
  ok.more = true;
  auto dd = decode_list_ok(encode(ok));
  BOOST_REQUIRE(dd);
  BOOST_REQUIRE_EQUAL(dd->manifests.size(), 2u);
  BOOST_CHECK_EQUAL(dd->manifests[1].seq, 4u);
  BOOST_CHECK(dd->more);
  fail_matrix(encode(ok), [](ByteView b) { return bool(decode_list_ok(b)); });
  // Out of order or repeated sequence numbers are refused.
  ok.manifests = {sample_manifest(4), sample_manifest(3)};
  BOOST_CHECK(decode_list_ok(encode(ok)).error() == make_error_code(errc::bad_request));
  ok.manifests = {sample_manifest(4), sample_manifest(4)};
  BOOST_CHECK(!decode_list_ok(encode(ok)));
}

BOOST_AUTO_TEST_CASE(read_and_data) {
  Read r{7, 1 << 20, 65536};
  auto d = decode_read(encode(r));
  BOOST_REQUIRE(d);
  BOOST_CHECK_EQUAL(d->offset, 1u << 20);
  fail_matrix(encode(r), [](ByteView b) { return bool(decode_read(b)); });
  BOOST_CHECK(decode_read(encode(Read{7, 0, 0})).error() == make_error_code(errc::bad_request));
  BOOST_CHECK(decode_read(encode(Read{7, 0, kMaxReadLength + 1})).error() == make_error_code(errc::too_large));
  // 64-bit offsets survive (segments above 4 GiB).
  BOOST_CHECK_EQUAL(decode_read(encode(Read{1, 0x1'0000'0001ull, 1}))->offset, 0x1'0000'0001ull);

  Bytes payload = encode_data_header(7, 4096);
  payload.insert(payload.end(), {1, 2, 3});
  auto data = decode_data(payload);
  BOOST_REQUIRE(data);
  BOOST_CHECK_EQUAL(data->offset, 4096u);
  BOOST_CHECK_EQUAL(data->bytes.size(), 3u);
  for (std::size_t n = 0; n < 16; ++n) BOOST_CHECK(!decode_data(ByteView(payload).first(n)));
}

BOOST_AUTO_TEST_CASE(erase_and_error) {
  Erase e{9, Bytes(32, 0x11)};
  auto d = decode_erase(encode(e));
  BOOST_REQUIRE(d);
  BOOST_CHECK(d->receipt == e.receipt);
  fail_matrix(encode(e), [](ByteView b) { return bool(decode_erase(b)); });
  Erase huge{9, Bytes(kMaxReceipt + 1, 0)};
  BOOST_CHECK(decode_erase(encode(huge)).error() == make_error_code(errc::too_large));

  ErrorReply er{errc::out_of_range, "past the end"};
  auto de = decode_error(encode(er));
  BOOST_REQUIRE(de);
  BOOST_CHECK(de->code == errc::out_of_range);
  BOOST_CHECK_EQUAL(de->message, "past the end");
  fail_matrix(encode(er), [](ByteView b) { return bool(decode_error(b)); });
  // A code this dock does not know is reported as internal, not trusted blindly.
  Bytes odd;
  Writer w(odd);
  w.u16(999);
  w.str("?");
  BOOST_CHECK(decode_error(odd)->code == errc::internal);
}

BOOST_AUTO_TEST_CASE(auth_messages_round_trip_and_matrix) {
  AuthBegin b;
  b.dock_nonce.fill(7);
  b.dock_cert = Bytes(600, 0x30);
  auto db = decode_auth_begin(encode(b));
  BOOST_REQUIRE(db);
  BOOST_CHECK(db->dock_nonce == b.dock_nonce);
  BOOST_CHECK(db->dock_cert == b.dock_cert);
  fail_matrix(encode(b), [](ByteView x) { return bool(decode_auth_begin(x)); });
  AuthBeginOk o;
  o.camera_nonce.fill(8);
  o.camera_cert = Bytes(500, 0x31);
  o.signature = Bytes(71, 0x32);
  auto dob = decode_auth_begin_ok(encode(o));
  BOOST_REQUIRE(dob);
  BOOST_CHECK(dob->signature == o.signature);
  fail_matrix(encode(o), [](ByteView x) { return bool(decode_auth_begin_ok(x)); });
  AuthFinish f{Bytes(70, 1)};
  BOOST_CHECK(decode_auth_finish(encode(f))->signature == f.signature);
  fail_matrix(encode(f), [](ByteView x) { return bool(decode_auth_finish(x)); });
  BOOST_CHECK(decode_auth_finish_ok(encode(AuthFinishOk{})));
  BOOST_CHECK(decode_auth_finish_ok(Bytes{0}).error() == make_error_code(errc::malformed_frame));
  // Certificates and signatures over their limits are refused before they are copied.
  b.dock_cert = Bytes(kMaxCertificate + 1, 0);
  BOOST_CHECK(decode_auth_begin(encode(b)).error() == make_error_code(errc::too_large));
  f.signature = Bytes(kMaxAuthSignature + 1, 0);
  BOOST_CHECK(decode_auth_finish(encode(f)).error() == make_error_code(errc::too_large));
}

BOOST_AUTO_TEST_CASE(version_negotiation) {
  BOOST_CHECK_EQUAL(negotiate_version(1, 1, 1, 1), 1);
  BOOST_CHECK_EQUAL(negotiate_version(1, 5, 1, 3), 3);
  BOOST_CHECK_EQUAL(negotiate_version(2, 5, 1, 1), 0);
  BOOST_CHECK_EQUAL(negotiate_version(4, 9, 1, 5), 5);
}

BOOST_AUTO_TEST_CASE(error_codes_have_names) {
  for (int c = 1; c <= static_cast<int>(errc::auth_failed); ++c)
    BOOST_CHECK(make_error_code(static_cast<errc>(c)).message() != "unknown protocol error");
}

BOOST_AUTO_TEST_SUITE_END()
