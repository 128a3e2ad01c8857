// Frame layer: round trips, and a corpus of malformed, truncated and oversized input that must
// each give a typed error, never a crash or an allocation beyond the announced limit.
#include "proto/frame.hpp"

#include <boost/test/unit_test.hpp>

#include <random>

using namespace bodydock::proto;

namespace {

Bytes header(std::uint16_t magic, std::uint8_t version, std::uint8_t type, std::uint32_t id, std::uint32_t len, std::uint32_t reserved = 0) {
  Bytes b;
  Writer w(b);
  w.u16(magic);
  w.u8(version);
  w.u8(type);
  w.u32(id);
  w.u32(len);
  w.u32(reserved);
  return b;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(frame)

BOOST_AUTO_TEST_CASE(round_trip_every_type_and_size) {
  const MsgType types[] = {MsgType::hello, MsgType::status_get, MsgType::set_time, MsgType::list, MsgType::read, MsgType::erase,
                           MsgType::hello_ok, MsgType::status, MsgType::set_time_ok, MsgType::list_ok, MsgType::data,
                           MsgType::erase_ok, MsgType::set_charging, MsgType::set_charging_ok, MsgType::auth_begin,
                           MsgType::auth_begin_ok, MsgType::auth_finish, MsgType::auth_finish_ok, MsgType::error};
  const std::size_t sizes[] = {0, 1, 15, 16, 17, 4096, kMaxPayload};
  std::uint32_t id = 1;
  for (auto t : types) {
    for (auto n : sizes) {
      Bytes payload(n);
      for (std::size_t i = 0; i < n; ++i) payload[i] = static_cast<std::uint8_t>(i * 7 + id);
      auto f = encode_frame(t, id, payload);
      BOOST_REQUIRE(f);
      BOOST_CHECK_EQUAL(f->size(), kHeaderSize + n);
      FrameParser p;
      BOOST_REQUIRE(!p.feed(*f));
      auto out = p.next();
      BOOST_REQUIRE(out);
      BOOST_CHECK(out->header.type == t);
      BOOST_CHECK_EQUAL(out->header.request_id, id);
      BOOST_CHECK(out->payload == payload);
      BOOST_CHECK(!p.next());
      BOOST_CHECK_EQUAL(p.buffered(), 0u);
      ++id;
    }
  }
}

BOOST_AUTO_TEST_CASE(stream_split_at_every_byte) {
  // Three frames back to back, delivered in pieces of every size from 1 byte up.
  Bytes stream;
  for (std::uint32_t i = 1; i <= 3; ++i) {
    Bytes payload(i * 10, static_cast<std::uint8_t>(i));
    auto f = encode_frame(MsgType::data, i, payload);
    stream.insert(stream.end(), f->begin(), f->end());
  }
  for (std::size_t piece = 1; piece <= stream.size(); ++piece) {
    FrameParser p;
    std::vector<Frame> got;
    for (std::size_t at = 0; at < stream.size(); at += piece) {
      const auto n = std::min(piece, stream.size() - at);
      BOOST_REQUIRE(!p.feed(ByteView(stream).subspan(at, n)));
      while (auto f = p.next()) got.push_back(std::move(*f));
    }
    BOOST_REQUIRE_EQUAL(got.size(), 3u);
    for (std::uint32_t i = 0; i < 3; ++i) {
      BOOST_CHECK_EQUAL(got[i].header.request_id, i + 1);
      BOOST_CHECK_EQUAL(got[i].payload.size(), (i + 1) * 10u);
    }
  }
}

BOOST_AUTO_TEST_CASE(malformed_headers_give_typed_errors) {
  struct Case {
    const char* name;
    Bytes bytes;
    errc expect;
  };
  const Case cases[] = {
      {"bad magic", header(0xDEAD, 1, 0x01, 7, 0), errc::malformed_frame},
      {"byte-swapped magic", header(0xDCB0, 1, 0x01, 7, 0), errc::malformed_frame},
      {"reserved bits set", header(kMagic, 1, 0x01, 7, 0, 1), errc::malformed_frame},
      {"future frame version", header(kMagic, 2, 0x01, 7, 0), errc::unsupported_version},
      {"frame version zero", header(kMagic, 0, 0x01, 7, 0), errc::unsupported_version},
      {"unknown type", header(kMagic, 1, 0x42, 7, 0), errc::unknown_type},
      {"type zero", header(kMagic, 1, 0x00, 7, 0), errc::unknown_type},
      {"one byte over the limit", header(kMagic, 1, 0x85, 7, kMaxPayload + 1), errc::too_large},
      {"4 GiB length", header(kMagic, 1, 0x85, 7, 0xFFFFFFFF), errc::too_large},
  };
  for (const auto& c : cases) {
    BOOST_TEST_CONTEXT(c.name) {
      FrameParser p;
      auto ec = p.feed(c.bytes);
      BOOST_CHECK(ec == make_error_code(c.expect));
      BOOST_CHECK(!p.next());
      BOOST_CHECK(p.error() == make_error_code(c.expect));
      BOOST_CHECK_EQUAL(p.failed_request_id(), 7u);
      // Sticky: more input never resurrects a desynchronised stream.
      auto good = encode_frame(MsgType::hello, 1, {});
      BOOST_CHECK(p.feed(*good) == make_error_code(c.expect));
      BOOST_CHECK(!p.next());
      auto h = parse_header(c.bytes);
      BOOST_CHECK(!h && h.error() == make_error_code(c.expect));
    }
  }
}

BOOST_AUTO_TEST_CASE(oversized_frame_is_refused_before_buffering) {
  // A hostile device announces a huge frame and then streams: nothing accumulates.
  FrameParser p;
  BOOST_CHECK(p.feed(header(kMagic, 1, 0x85, 1, 0x7FFFFFFF)) == make_error_code(errc::too_large));
  Bytes flood(1 << 16, 0xAA);
  for (int i = 0; i < 64; ++i) BOOST_CHECK(p.feed(flood));
  BOOST_CHECK_LE(p.buffered(), kHeaderSize);
}

BOOST_AUTO_TEST_CASE(custom_limit_applies) {
  FrameParser p(100);
  BOOST_CHECK(p.feed(header(kMagic, 1, 0x85, 1, 101)) == make_error_code(errc::too_large));
  FrameParser q(100);
  BOOST_CHECK(!q.feed(header(kMagic, 1, 0x85, 1, 100)));
}

BOOST_AUTO_TEST_CASE(truncated_frames_wait_for_more) {
  auto f = encode_frame(MsgType::read, 9, Bytes(20, 1));
  for (std::size_t n = 0; n < f->size(); ++n) {
    FrameParser p;
    BOOST_CHECK(!p.feed(ByteView(*f).first(n)));
    BOOST_CHECK(!p.next());
    BOOST_CHECK(!p.error());
  }
  BOOST_CHECK(parse_header(ByteView(*f).first(kHeaderSize - 1)).error() == make_error_code(errc::truncated));
}

BOOST_AUTO_TEST_CASE(encoder_refuses_oversized_payload) {
  Bytes big(kMaxPayload + 1);
  auto f = encode_frame(MsgType::data, 1, big);
  BOOST_CHECK(!f && f.error() == make_error_code(errc::too_large));
}

BOOST_AUTO_TEST_CASE(random_garbage_never_crashes) {
  std::mt19937 rng(1234);
  for (int round = 0; round < 2000; ++round) {
    Bytes junk(rng() % 64);
    for (auto& b : junk) b = static_cast<std::uint8_t>(rng());
    if (round % 3 == 0 && junk.size() >= 4) {  // keep the magic now and then to go deeper
      junk[0] = 0xDC;
      junk[1] = 0xB0;
      junk[2] = 1;
    }
    FrameParser p(4096);
    (void)p.feed(junk);
    while (p.next()) {
    }
    BOOST_CHECK_LE(p.buffered(), junk.size());
  }
}

BOOST_AUTO_TEST_SUITE_END()
