// The firmware device library (proto/device/bd_device.h) through its C API, with the dock's own
// encoders and decoders (proto/) on the host side: the worked examples of PROTOCOL.md 10 byte
// for byte, every request type, input in any chunking, header and payload errors with the
// device still serving afterwards, mutual authentication with fresh nonces, custody receipts,
// reads at any offset streamed in small pieces, and failing callbacks.
#include "proto/device/bd_device.h"
#include "proto/messages.hpp"
#include "proto/sha256.hpp"
#include "proto/trust.hpp"

#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <limits>
#include <map>
#include <memory>
#include <set>
#include <string>

using namespace bodydock;
using proto::Bytes;
using proto::ByteView;
using proto::errc;
using proto::MsgType;

namespace {

Bytes from_hex(std::string_view h) {
  Bytes out;
  for (std::size_t i = 0; i < h.size();) {
    if (h[i] == ' ' || h[i] == '\n') {
      ++i;
      continue;
    }
    out.push_back(static_cast<std::uint8_t>(std::stoi(std::string(h.substr(i, 2)), nullptr, 16)));
    i += 2;
  }
  return out;
}

Bytes frame(MsgType type, std::uint32_t id, const Bytes& payload) { return *proto::encode_frame(type, id, payload); }

/// A dock: a key and a "certificate" the test fleet check accepts when it issued it. X.509 is
/// the callback's business (tests/proto/trust_test.cpp); here a certificate is a label and the
/// public point, which is all the library ever handles: opaque bytes to hash and pass on.
struct Dock {
  proto::crypto::PrivateKey key = proto::crypto::PrivateKey::generate();
  Bytes cert;
  explicit Dock(std::string_view name) {
    cert.assign(name.begin(), name.end());
    const auto point = key.public_key().point();
    cert.insert(cert.end(), point.begin(), point.end());
  }
};

struct Segment {
  proto::Manifest manifest;
  Bytes encoded;
  Bytes content;
};

/// The camera's side of the callbacks: flash, secure element, clock, charger, USB. Knobs let a
/// test make each callback fail.
struct Camera {
  std::string serial = "BC-0001";
  std::string model = "bodydock-emulator";
  std::string firmware = "emu-1.0.0";
  proto::crypto::PrivateKey device_key = proto::crypto::PrivateKey::generate();
  Bytes device_cert = Bytes{'C', 'A', 'M'};
  std::set<Bytes> fleet_docks;  ///< certificates the fleet CA issued to docks
  std::map<std::uint64_t, Segment> segments;
  std::set<std::uint64_t> hidden;  ///< held but left out of LIST
  std::int64_t clock_ms = 1'700'000'000'000;
  bd_power_status power{40, true, 310};
  std::uint64_t storage_total = 64ull << 30;
  bool charge_allowed = true;

  // Failure knobs.
  bool fail_erase = false;
  bool fail_write = false;
  int fail_read_after = -1;  ///< read_segment calls that succeed before one fails (-1: never)

  // What the callbacks saw.
  Bytes wire;  ///< everything written to the IN endpoint
  std::size_t writes = 0;
  std::size_t largest_write = 0;
  std::vector<std::uint64_t> erased;
  std::vector<Bytes> nonces;

  /// Records a segment; without `content` only its manifest is real (for listing tests).
  void record(std::uint64_t seq, std::uint64_t size, std::uint32_t chunk_size = 4096, bool content = true) {
    Segment s;
    auto& m = s.manifest;
    m.camera_serial = serial;
    m.seq = seq;
    m.recording_id = "REC-1";
    m.start_utc_ms = 1;
    m.end_utc_ms = 2;
    m.size = size;
    m.chunk_size = chunk_size;
    m.key_wrap = Bytes(proto::kKeyWrapSize, 0x5A);
    if (content) {
      s.content.resize(size);
      for (std::uint64_t i = 0; i < size; ++i) s.content[i] = static_cast<std::uint8_t>((i * 131 + seq * 7 + i / 251) & 0xFF);
      for (std::uint64_t c = 0; c < m.chunk_count(); ++c)
        m.chunk_sha256.push_back(proto::Sha256::of(ByteView(s.content).subspan(c * chunk_size, m.chunk_length(c))));
      m.sha256 = proto::Sha256::of(s.content);
    } else {
      // As large as a manifest gets (PROTOCOL.md 6.2): every string, the key wrap and the
      // signature at their limits; the signature is filler, nothing here verifies it.
      m.chunk_sha256.resize(m.chunk_count());
      m.recording_id = m.trigger_on = m.trigger_off = m.firmware = std::string(255, 'x');
      m.key_wrap = Bytes(proto::kMaxKeyWrap, 0x5A);
    }
    if (!segments.empty()) m.prev_manifest_sha256 = proto::manifest_hash(segments.rbegin()->second.manifest);
    proto::sign_manifest(m, device_key);
    if (!content) m.signature = Bytes(proto::kMaxSignature, 0x30);
    s.encoded = proto::encode_manifest(m);
    segments[seq] = std::move(s);
  }

  static Camera& of(void* user) { return *static_cast<Camera*>(user); }

  static void fill(const Segment& s, bd_segment_info* out) {
    out->seq = s.manifest.seq;
    out->size = s.manifest.size;
    out->manifest_length = static_cast<std::uint32_t>(s.encoded.size());
    std::memcpy(out->sha256, s.manifest.sha256.data(), 32);
    const auto h = proto::manifest_hash(s.manifest);
    std::memcpy(out->manifest_sha256, h.data(), 32);
  }

  bd_device_callbacks callbacks() {
    bd_device_callbacks cb{};
    cb.user = this;
    cb.write = [](void* u, const std::uint8_t* data, std::size_t len) {
      auto& c = of(u);
      if (c.fail_write) return false;
      c.wire.insert(c.wire.end(), data, data + len);
      ++c.writes;
      c.largest_write = std::max(c.largest_write, len);
      return true;
    };
    cb.find_segment = [](void* u, std::uint64_t seq, bd_segment_info* out) {
      auto& c = of(u);
      auto it = c.segments.find(seq);
      if (it == c.segments.end()) return false;
      fill(it->second, out);
      return true;
    };
    cb.next_listed_segment = [](void* u, std::uint64_t from, bd_segment_info* out) {
      auto& c = of(u);
      for (auto it = c.segments.lower_bound(from); it != c.segments.end(); ++it) {
        if (c.hidden.contains(it->first)) continue;
        fill(it->second, out);
        return true;
      }
      return false;
    };
    cb.read_manifest = [](void* u, std::uint64_t seq, std::uint32_t offset, std::uint8_t* out, std::size_t len) {
      const auto& e = of(u).segments.at(seq).encoded;
      if (offset + len > e.size()) {
        BOOST_ERROR("manifest read past its end");
        return false;
      }
      std::memcpy(out, e.data() + offset, len);
      return true;
    };
    cb.read_segment = [](void* u, std::uint64_t seq, std::uint64_t offset, std::uint8_t* out, std::size_t len) {
      auto& c = of(u);
      if (c.fail_read_after == 0) return false;
      if (c.fail_read_after > 0) --c.fail_read_after;
      const auto& content = c.segments.at(seq).content;
      if (offset + len > content.size() || len > BD_DEVICE_OUT_CHUNK) {
        BOOST_ERROR("segment read past its end or in a piece too large");
        return false;
      }
      std::memcpy(out, content.data() + offset, len);
      return true;
    };
    cb.erase_segment = [](void* u, std::uint64_t seq) {
      auto& c = of(u);
      if (c.fail_erase) return false;
      c.segments.erase(seq);
      c.erased.push_back(seq);
      return true;
    };
    cb.storage_usage = [](void* u, bd_storage_usage* out) {
      auto& c = of(u);
      out->used = 0;
      for (const auto& [seq, s] : c.segments) out->used += s.manifest.size;
      out->total = c.storage_total;
      out->segment_count = static_cast<std::uint32_t>(c.segments.size());
    };
    cb.random = [](void* u, std::uint8_t* out, std::size_t len) {
      const auto r = proto::crypto::random_bytes(len);
      std::memcpy(out, r.data(), len);
      of(u).nonces.push_back(r);
      return true;
    };
    cb.sha256 = [](void*, const std::uint8_t* data, std::size_t len, std::uint8_t* out) {
      const auto d = proto::Sha256::of(ByteView(data, len));
      std::memcpy(out, d.data(), d.size());
      return true;
    };
    cb.sign = [](void* u, const std::uint8_t* msg, std::size_t len, std::uint8_t* sig, std::size_t cap, std::size_t* sig_len) {
      const auto s = of(u).device_key.sign(ByteView(msg, len));
      if (s.size() > cap) return false;
      std::memcpy(sig, s.data(), s.size());
      *sig_len = s.size();
      return true;
    };
    cb.check_dock_cert = [](void* u, const std::uint8_t* der, std::size_t len, std::uint8_t* key, char* why, std::size_t why_cap) {
      const Bytes cert(der, der + len);
      if (!of(u).fleet_docks.contains(cert) || len < proto::crypto::kPointSize) {
        std::snprintf(why, why_cap, "not issued by the fleet CA");
        return false;
      }
      std::memcpy(key, der + len - proto::crypto::kPointSize, proto::crypto::kPointSize);
      return true;
    };
    cb.verify_dock = [](void*, const std::uint8_t* key, const std::uint8_t* msg, std::size_t len, const std::uint8_t* sig, std::size_t sig_len) {
      return proto::crypto::PublicKey::from_point(ByteView(key, BD_DOCK_KEY_SIZE)).verify(ByteView(msg, len), ByteView(sig, sig_len));
    };
    cb.clock_get = [](void* u) { return of(u).clock_ms; };
    cb.clock_set = [](void* u, std::int64_t ms) {
      of(u).clock_ms = ms;
      return true;
    };
    cb.power_status = [](void* u, bd_power_status* out) { *out = of(u).power; };
    cb.set_charging = [](void* u, bool allow, bool* now) {
      auto& c = of(u);
      c.charge_allowed = allow;
      *now = allow && c.power.battery_pct < 100;
      return true;
    };
    return cb;
  }
};

/// One device, its camera and the host's view of the IN endpoint.
struct Fixture {
  Camera cam;
  Dock dock{"DOCK-1"};
  std::unique_ptr<bd_device> dev = std::make_unique<bd_device>();
  std::uint32_t next_id = 100;

  Fixture() {
    cam.fleet_docks.insert(dock.cert);
    for (std::uint64_t seq = 1; seq <= 5; ++seq) cam.record(seq, 20'000 + seq * 1000);
    init();
  }

  bd_device_config config() {
    bd_device_config cfg{};
    cfg.serial = cam.serial.c_str();
    cfg.model = cam.model.c_str();
    cfg.firmware = cam.firmware.c_str();
    cfg.device_cert = cam.device_cert.data();
    cfg.device_cert_len = cam.device_cert.size();
    cfg.cb = cam.callbacks();
    return cfg;
  }

  void init(std::uint32_t max_read = 0) {
    auto cfg = config();
    cfg.max_read = max_read;
    BOOST_REQUIRE_EQUAL(bd_device_init(dev.get(), &cfg), BD_OK);
  }

  /// Feeds bytes in chunks of `step` (0: all at once); returns what the device wrote.
  Bytes feed(const Bytes& in, std::size_t step = 0) {
    cam.wire.clear();
    if (step == 0) step = std::max<std::size_t>(in.size(), 1);
    for (std::size_t i = 0; i < in.size(); i += step)
      BOOST_REQUIRE_EQUAL(bd_device_feed(dev.get(), in.data() + i, std::min(step, in.size() - i)), BD_OK);
    if (in.empty()) BOOST_REQUIRE_EQUAL(bd_device_feed(dev.get(), nullptr, 0), BD_OK);
    return cam.wire;
  }

  static std::vector<proto::Frame> frames(const Bytes& out) {
    proto::FrameParser p;
    BOOST_REQUIRE(!p.feed(out));
    std::vector<proto::Frame> fs;
    while (auto f = p.next()) fs.push_back(std::move(*f));
    BOOST_REQUIRE(!p.error());
    BOOST_REQUIRE_EQUAL(p.buffered(), 0u);
    return fs;
  }

  /// Sends one request and returns the single reply frame.
  proto::Frame ask(MsgType type, const Bytes& payload) {
    const auto id = next_id++;
    auto fs = frames(feed(frame(type, id, payload)));
    BOOST_REQUIRE_EQUAL(fs.size(), 1u);
    BOOST_CHECK_EQUAL(fs[0].header.request_id, id);
    return std::move(fs[0]);
  }

  static proto::ErrorReply error_of(const proto::Frame& f) {
    BOOST_REQUIRE(f.header.type == MsgType::error);
    auto e = proto::decode_error(f.payload);
    BOOST_REQUIRE(e);
    return *e;
  }
  errc code_of(MsgType type, const Bytes& payload) { return error_of(ask(type, payload)).code; }

  void hello() { BOOST_REQUIRE(ask(MsgType::hello, proto::encode(proto::Hello{2, 2, "dock"})).header.type == MsgType::hello_ok); }

  /// The dock's half of mutual authentication; returns the reply to AUTH_FINISH (or the ERROR
  /// to AUTH_BEGIN). `begin_out`/`finish_out` receive the payloads sent, for replays.
  proto::Frame authenticate(const Dock& as, Bytes* begin_out = nullptr, Bytes* finish_out = nullptr) {
    proto::AuthBegin begin;
    const auto nonce = proto::crypto::random_bytes(32);
    std::copy(nonce.begin(), nonce.end(), begin.dock_nonce.begin());
    begin.dock_cert = as.cert;
    const auto begin_payload = proto::encode(begin);
    if (begin_out) *begin_out = begin_payload;
    auto f = ask(MsgType::auth_begin, begin_payload);
    if (f.header.type != MsgType::auth_begin_ok) return f;
    auto answer = proto::decode_auth_begin_ok(f.payload);
    BOOST_REQUIRE(answer);
    BOOST_CHECK(answer->camera_cert == cam.device_cert);
    // The camera's signature covers the transcript exactly as proto/trust.cpp builds it.
    BOOST_CHECK(cam.device_key.public_key().verify(
        proto::auth_transcript(proto::AuthRole::camera, begin.dock_nonce, answer->camera_nonce, as.cert, answer->camera_cert, cam.serial),
        answer->signature));
    proto::AuthFinish fin;
    fin.signature = as.key.sign(
        proto::auth_transcript(proto::AuthRole::dock, begin.dock_nonce, answer->camera_nonce, as.cert, answer->camera_cert, cam.serial));
    const auto payload = proto::encode(fin);
    if (finish_out) *finish_out = payload;
    return ask(MsgType::auth_finish, payload);
  }

  void hello_auth() {
    hello();
    BOOST_REQUIRE(authenticate(dock).header.type == MsgType::auth_finish_ok);
    BOOST_REQUIRE(bd_device_authenticated(dev.get()));
  }

  proto::Receipt receipt(std::uint64_t seq, const Dock& by) const {
    const auto& m = cam.segments.at(seq).manifest;
    proto::Receipt r;
    r.camera_serial = m.camera_serial;
    r.seq = m.seq;
    r.sha256 = m.sha256;
    r.manifest_sha256 = proto::manifest_hash(m);
    r.stored_at = "test-store/" + std::to_string(seq);
    r.stored_utc_ms = 1;
    r.dock_cert = by.cert;
    return proto::make_receipt(r, by.key);
  }

  proto::Frame erase(std::uint64_t seq, const Bytes& receipt) { return ask(MsgType::erase, proto::encode(proto::Erase{seq, receipt})); }

  const bd_device_stats& stats() const { return *bd_device_get_stats(dev.get()); }
};

}  // namespace

BOOST_FIXTURE_TEST_SUITE(device_lib, Fixture)

// PROTOCOL.md 10.2 and 10.3, byte for byte: HELLO_OK, and the ERROR a request before HELLO gets.
BOOST_AUTO_TEST_CASE(worked_examples_byte_for_byte) {
  const auto list = frame(MsgType::list, 1, proto::encode(proto::List{0, 256}));
  BOOST_CHECK(feed(list) == from_hex("DC B0 01 FF 01 00 00 00 0E 00 00 00 00 00 00 00"
                                     "0D 00 0B 48 45 4C 4C 4F 20 66 69 72 73 74"));
  const auto hello = from_hex("DC B0 01 01 01 00 00 00 09 00 00 00 00 00 00 00 02 00 02 00 04 64 6F 63 6B");
  BOOST_CHECK(feed(hello) == from_hex("DC B0 01 81 01 00 00 00 2C 00 00 00 00 00 00 00"
                                      "02 00 07 42 43 2D 30 30 30 31 11 62 6F 64 79 64"
                                      "6F 63 6B 2D 65 6D 75 6C 61 74 6F 72 09 65 6D 75"
                                      "2D 31 2E 30 2E 30 00 00 10 00 08 00"));
}

BOOST_AUTO_TEST_CASE(version_negotiation) {
  struct Case {
    std::uint16_t min, max;
    errc expect;  // ok: HELLO_OK with version 2
  };
  const Case cases[] = {{1, 1, errc::unsupported_version}, {3, 9, errc::unsupported_version}, {1, 9, errc::ok}, {2, 2, errc::ok},
                        {2, 65535, errc::ok},              {0, 2, errc::bad_request},         {3, 2, errc::bad_request}};
  for (const auto& c : cases) {
    BOOST_TEST_CONTEXT("host offers [" << c.min << ", " << c.max << "]") {
      bd_device_reset_session(dev.get());
      auto f = ask(MsgType::hello, proto::encode(proto::Hello{c.min, c.max, "x"}));
      if (c.expect == errc::ok) {
        BOOST_REQUIRE(f.header.type == MsgType::hello_ok);
        BOOST_CHECK_EQUAL(proto::decode_hello_ok(f.payload)->version, 2);
      } else {
        BOOST_CHECK(error_of(f).code == c.expect);
        // No handshake: everything else is still refused.
        BOOST_CHECK(code_of(MsgType::status_get, {}) == errc::bad_state);
      }
    }
  }
  BOOST_CHECK_EQUAL(error_of(ask(MsgType::hello, proto::encode(proto::Hello{3, 9, "x"}))).message, "this camera speaks protocol 2");
  // A failed HELLO after a successful one leaves the handshake in force (PROTOCOL.md 5.1).
  hello();
  BOOST_CHECK(code_of(MsgType::hello, proto::encode(proto::Hello{3, 9, "x"})) == errc::unsupported_version);
  BOOST_CHECK(ask(MsgType::status_get, {}).header.type == MsgType::status);
  // The HELLO_OK fields a dock checks.
  auto ok = proto::decode_hello_ok(ask(MsgType::hello, proto::encode(proto::Hello{2, 2, ""})).payload);
  BOOST_REQUIRE(ok);
  BOOST_CHECK_EQUAL(ok->serial, "BC-0001");
  BOOST_CHECK_EQUAL(ok->max_read, proto::kMaxReadLength);
  BOOST_CHECK_EQUAL(ok->max_inflight, 8);
}

// Every request type, before and after authentication, is answered with the right type or code.
BOOST_AUTO_TEST_CASE(requests_before_hello_and_authentication_are_refused) {
  const auto receipt_1 = proto::encode_receipt(receipt(1, dock));
  for (auto type : {MsgType::status_get, MsgType::set_time, MsgType::list, MsgType::read, MsgType::erase, MsgType::set_charging,
                    MsgType::auth_begin, MsgType::auth_finish, MsgType::data, MsgType::error})
    BOOST_CHECK(code_of(type, {}) == errc::bad_state);
  hello();
  BOOST_CHECK(ask(MsgType::status_get, {}).header.type == MsgType::status);
  BOOST_CHECK(ask(MsgType::set_charging, proto::encode(proto::SetCharging{true})).header.type == MsgType::set_charging_ok);
  BOOST_CHECK(code_of(MsgType::set_time, proto::encode(proto::SetTime{1})) == errc::not_authenticated);
  BOOST_CHECK(code_of(MsgType::list, proto::encode(proto::List{})) == errc::not_authenticated);
  BOOST_CHECK(code_of(MsgType::read, proto::encode(proto::Read{1, 0, 4096})) == errc::not_authenticated);
  BOOST_CHECK_EQUAL(error_of(erase(1, receipt_1)).message, "authenticate first");
  BOOST_CHECK_EQUAL(stats().refused_unauthenticated, 4u);
  BOOST_CHECK(cam.erased.empty());
  const auto finish = error_of(ask(MsgType::auth_finish, proto::encode(proto::AuthFinish{Bytes(70, 1)})));
  BOOST_CHECK(finish.code == errc::bad_state);
  BOOST_CHECK_EQUAL(finish.message, "AUTH_BEGIN first");
  // Reply types sent as requests after HELLO.
  BOOST_CHECK_EQUAL(error_of(ask(MsgType::data, Bytes(16, 0))).message, "reply types are not requests");
  BOOST_CHECK(code_of(MsgType::hello_ok, {}) == errc::bad_request);
  BOOST_CHECK(code_of(MsgType::error, {}) == errc::bad_request);

  BOOST_CHECK(authenticate(dock).header.type == MsgType::auth_finish_ok);
  BOOST_CHECK(ask(MsgType::list, proto::encode(proto::List{})).header.type == MsgType::list_ok);
  BOOST_CHECK(ask(MsgType::read, proto::encode(proto::Read{1, 0, 10})).header.type == MsgType::data);
  BOOST_CHECK(ask(MsgType::set_time, proto::encode(proto::SetTime{1})).header.type == MsgType::set_time_ok);
  BOOST_CHECK(erase(1, receipt_1).header.type == MsgType::erase_ok);
  // A new HELLO, and a new docking, each need a new authentication.
  hello();
  BOOST_CHECK(code_of(MsgType::list, proto::encode(proto::List{})) == errc::not_authenticated);
  BOOST_CHECK(authenticate(dock).header.type == MsgType::auth_finish_ok);
  bd_device_reset_session(dev.get());
  BOOST_CHECK(!bd_device_authenticated(dev.get()));
  hello();
  BOOST_CHECK(code_of(MsgType::list, proto::encode(proto::List{})) == errc::not_authenticated);
}

BOOST_AUTO_TEST_CASE(mutual_authentication_and_its_failures) {
  hello();
  // A dock the fleet never issued a certificate to: refused before the camera signs anything.
  Dock rogue("ROGUE");
  const auto signs_before = cam.nonces.size();
  auto f = authenticate(rogue);
  BOOST_CHECK(error_of(f).code == errc::auth_failed);
  BOOST_CHECK_EQUAL(error_of(f).message, "dock certificate: not issued by the fleet CA");
  BOOST_CHECK_EQUAL(cam.nonces.size(), signs_before);
  BOOST_CHECK(!bd_device_authenticated(dev.get()));

  // A fleet certificate with someone else's signature.
  proto::AuthBegin begin;
  begin.dock_cert = dock.cert;
  BOOST_REQUIRE(ask(MsgType::auth_begin, proto::encode(begin)).header.type == MsgType::auth_begin_ok);
  const auto bad = error_of(ask(MsgType::auth_finish, proto::encode(proto::AuthFinish{rogue.key.sign(Bytes{1})})));
  BOOST_CHECK(bad.code == errc::auth_failed);
  BOOST_CHECK_EQUAL(bad.message, "dock signature does not verify");
  // The challenge is used up either way.
  BOOST_CHECK(code_of(MsgType::auth_finish, proto::encode(proto::AuthFinish{Bytes(70, 1)})) == errc::bad_state);
  // Garbage where a DER signature belongs is just a failed verification.
  BOOST_REQUIRE(ask(MsgType::auth_begin, proto::encode(begin)).header.type == MsgType::auth_begin_ok);
  BOOST_CHECK(code_of(MsgType::auth_finish, proto::encode(proto::AuthFinish{})) == errc::auth_failed);

  // The genuine dock; then AUTH_BEGIN again ends the authentication until it finishes again.
  BOOST_CHECK(authenticate(dock).header.type == MsgType::auth_finish_ok);
  BOOST_CHECK(bd_device_authenticated(dev.get()));
  BOOST_REQUIRE(ask(MsgType::auth_begin, proto::encode(begin)).header.type == MsgType::auth_begin_ok);
  BOOST_CHECK(!bd_device_authenticated(dev.get()));
  BOOST_CHECK(code_of(MsgType::list, proto::encode(proto::List{})) == errc::not_authenticated);
}

// A recorded AUTH_BEGIN/AUTH_FINISH pair replayed into a later docking does not verify: every
// AUTH_BEGIN draws a fresh camera nonce, which the dock's signature must cover.
BOOST_AUTO_TEST_CASE(replayed_authentication_is_refused) {
  hello();
  Bytes begin, finish;
  BOOST_REQUIRE(authenticate(dock, &begin, &finish).header.type == MsgType::auth_finish_ok);
  bd_device_reset_session(dev.get());
  hello();
  auto again = ask(MsgType::auth_begin, begin);
  BOOST_REQUIRE(again.header.type == MsgType::auth_begin_ok);
  BOOST_CHECK(error_of(ask(MsgType::auth_finish, finish)).code == errc::auth_failed);
  BOOST_CHECK(!bd_device_authenticated(dev.get()));
  BOOST_REQUIRE_EQUAL(cam.nonces.size(), 2u);
  BOOST_CHECK(cam.nonces[0] != cam.nonces[1]);
  const auto answer = proto::decode_auth_begin_ok(again.payload);
  BOOST_CHECK(Bytes(answer->camera_nonce.begin(), answer->camera_nonce.end()) == cam.nonces[1]);
  BOOST_CHECK(code_of(MsgType::read, proto::encode(proto::Read{1, 0, 1})) == errc::not_authenticated);
}

BOOST_AUTO_TEST_CASE(an_unenrolled_camera_answers_with_an_empty_certificate) {
  cam.device_cert.clear();
  init();
  hello();
  proto::AuthBegin begin;
  begin.dock_cert = dock.cert;
  auto f = ask(MsgType::auth_begin, proto::encode(begin));
  BOOST_REQUIRE(f.header.type == MsgType::auth_begin_ok);
  BOOST_CHECK(proto::decode_auth_begin_ok(f.payload)->camera_cert.empty());
}

BOOST_AUTO_TEST_CASE(status_set_time_and_charging) {
  hello();
  cam.power = {150, true, -45};  // a confused fuel gauge is clamped: the dock refuses > 100
  auto st = proto::decode_status(ask(MsgType::status_get, {}).payload);
  BOOST_REQUIRE(st);
  BOOST_CHECK_EQUAL(st->battery_pct, 100);
  BOOST_CHECK(st->charging);
  BOOST_CHECK_EQUAL(st->temperature_dc, -45);
  BOOST_CHECK_EQUAL(st->segment_count, 5u);
  BOOST_CHECK_EQUAL(st->storage_used, 5u * 20'000 + 15'000);
  BOOST_CHECK_EQUAL(st->storage_total, cam.storage_total);
  BOOST_CHECK_EQUAL(st->clock_utc_ms, cam.clock_ms);
  cam.storage_total = 1000;  // used above total is clamped, never sent
  st = proto::decode_status(ask(MsgType::status_get, {}).payload);
  BOOST_REQUIRE(st);
  BOOST_CHECK_EQUAL(st->storage_used, 1000u);

  cam.power.battery_pct = 50;
  auto c = proto::decode_set_charging_ok(ask(MsgType::set_charging, proto::encode(proto::SetCharging{false})).payload);
  BOOST_REQUIRE(c);
  BOOST_CHECK(!c->charging);
  BOOST_CHECK(!cam.charge_allowed);
  BOOST_CHECK(proto::decode_set_charging_ok(ask(MsgType::set_charging, proto::encode(proto::SetCharging{true})).payload)->charging);
  BOOST_CHECK(code_of(MsgType::set_charging, Bytes{7}) == errc::bad_request);
  BOOST_CHECK(cam.charge_allowed);

  BOOST_CHECK(authenticate(dock).header.type == MsgType::auth_finish_ok);
  cam.clock_ms = 1000;
  auto t = proto::decode_set_time_ok(ask(MsgType::set_time, proto::encode(proto::SetTime{5000})).payload);
  BOOST_REQUIRE(t);
  BOOST_CHECK_EQUAL(t->adjusted_by_ms, 4000);
  BOOST_CHECK_EQUAL(cam.clock_ms, 5000);
  t = proto::decode_set_time_ok(ask(MsgType::set_time, proto::encode(proto::SetTime{-2000})).payload);
  BOOST_CHECK_EQUAL(t->adjusted_by_ms, -7000);
  // Extremes wrap as two's complement instead of overflowing.
  cam.clock_ms = std::numeric_limits<std::int64_t>::min();
  t = proto::decode_set_time_ok(ask(MsgType::set_time, proto::encode(proto::SetTime{std::numeric_limits<std::int64_t>::max()})).payload);
  BOOST_CHECK_EQUAL(t->adjusted_by_ms, -1);
  BOOST_CHECK_EQUAL(cam.clock_ms, std::numeric_limits<std::int64_t>::max());
}

BOOST_AUTO_TEST_CASE(list_pages_from_a_cursor) {
  hello_auth();
  auto l = proto::decode_list_ok(ask(MsgType::list, proto::encode(proto::List{2, 2})).payload);
  BOOST_REQUIRE(l);
  BOOST_REQUIRE_EQUAL(l->manifests.size(), 2u);
  BOOST_CHECK_EQUAL(l->manifests[0].seq, 2u);
  BOOST_CHECK(l->more);
  BOOST_CHECK_EQUAL(l->next_cursor, 4u);
  // Byte-identical to what the camera recorded (PROTOCOL.md 6.3).
  BOOST_CHECK(proto::encode_manifest(l->manifests[1]) == cam.segments[3].encoded);
  l = proto::decode_list_ok(ask(MsgType::list, proto::encode(proto::List{4, 256})).payload);
  BOOST_REQUIRE_EQUAL(l->manifests.size(), 2u);
  BOOST_CHECK(!l->more);
  BOOST_CHECK_EQUAL(l->next_cursor, 6u);
  // Past the end: nothing, cursor unchanged.
  l = proto::decode_list_ok(ask(MsgType::list, proto::encode(proto::List{99, 1})).payload);
  BOOST_CHECK(l->manifests.empty());
  BOOST_CHECK(!l->more);
  BOOST_CHECK_EQUAL(l->next_cursor, 99u);
  // A hidden segment is skipped; `more` only counts what LIST would show.
  cam.hidden = {5};
  l = proto::decode_list_ok(ask(MsgType::list, proto::encode(proto::List{3, 2})).payload);
  BOOST_REQUIRE_EQUAL(l->manifests.size(), 2u);
  BOOST_CHECK(!l->more);
  BOOST_CHECK_EQUAL(l->next_cursor, 5u);
  BOOST_CHECK(code_of(MsgType::list, proto::encode(proto::List{0, 0})) == errc::bad_request);
  BOOST_CHECK(code_of(MsgType::list, proto::encode(proto::List{0, 257})) == errc::bad_request);
  // Large frames go out in pieces of at most BD_DEVICE_OUT_CHUNK bytes.
  BOOST_CHECK_LE(cam.largest_write, BD_DEVICE_OUT_CHUNK);
}

// Manifests of 16384 chunks (~514 KiB each, the largest there are): only one fits a LIST_OK (PROTOCOL.md 4.6 budget),
// streamed from storage in small pieces and still decoding on the host.
BOOST_AUTO_TEST_CASE(list_stops_at_the_frame_budget) {
  cam.segments.clear();
  for (std::uint64_t seq = 10; seq <= 12; ++seq) cam.record(seq, 16384ull * 4096, 4096, false);
  BOOST_REQUIRE_GT(cam.segments[10].encoded.size(), 500'000u);
  hello_auth();
  auto f = ask(MsgType::list, proto::encode(proto::List{0, 256}));
  auto l = proto::decode_list_ok(f.payload);
  BOOST_REQUIRE(l);
  BOOST_REQUIRE_EQUAL(l->manifests.size(), 1u);
  BOOST_CHECK(l->more);
  BOOST_CHECK_EQUAL(l->next_cursor, 11u);
  BOOST_CHECK(proto::encode_manifest(l->manifests[0]) == cam.segments[10].encoded);
  BOOST_CHECK_LE(cam.largest_write, BD_DEVICE_OUT_CHUNK);
}

// READ at any offset and length, clipped at the end, streamed in pieces (PROTOCOL.md 4.7, 8).
BOOST_AUTO_TEST_CASE(reads_at_odd_offsets) {
  cam.record(9, 3 * 1024 * 1024 + 17, 256 * 1024);
  hello_auth();
  const auto& content = cam.segments[9].content;
  const std::uint64_t size = content.size();
  struct Case {
    std::uint64_t offset;
    std::uint32_t length;
  };
  const Case cases[] = {{0, 1},         {1, 1},          {7, 9},         {479, 2},     {480, 1},      {511, 3},
                        {512, 512},     {513, 100'000},  {4095, 4097},   {size - 1, 1}, {size - 10, 4096},
                        {0, 1u << 20},  {123'457, 1u << 20}, {size - 1'000'000, 1u << 20}};
  for (const auto& c : cases) {
    BOOST_TEST_CONTEXT("offset " << c.offset << " length " << c.length) {
      cam.writes = 0;
      auto f = ask(MsgType::read, proto::encode(proto::Read{9, c.offset, c.length}));
      BOOST_REQUIRE(f.header.type == MsgType::data);
      auto d = proto::decode_data(f.payload);
      BOOST_REQUIRE(d);
      BOOST_CHECK_EQUAL(d->seq, 9u);
      BOOST_CHECK_EQUAL(d->offset, c.offset);
      const auto n = std::min<std::uint64_t>(c.length, size - c.offset);
      BOOST_REQUIRE_EQUAL(d->bytes.size(), n);
      BOOST_CHECK(std::equal(d->bytes.begin(), d->bytes.end(), content.begin() + static_cast<std::ptrdiff_t>(c.offset)));
      BOOST_CHECK_LE(cam.largest_write, BD_DEVICE_OUT_CHUNK);
      BOOST_CHECK_EQUAL(cam.writes, (32 + n + BD_DEVICE_OUT_CHUNK - 1) / BD_DEVICE_OUT_CHUNK);
    }
  }
  BOOST_CHECK_EQUAL(error_of(ask(MsgType::read, proto::encode(proto::Read{9, size, 1}))).message, "offset past the end");
  BOOST_CHECK(code_of(MsgType::read, proto::encode(proto::Read{9, ~0ull, 1})) == errc::out_of_range);
  BOOST_CHECK_EQUAL(error_of(ask(MsgType::read, proto::encode(proto::Read{999, 0, 1}))).message, "no such segment");
  BOOST_CHECK(code_of(MsgType::read, proto::encode(proto::Read{9, 0, 0})) == errc::bad_request);
  BOOST_CHECK(code_of(MsgType::read, proto::encode(proto::Read{9, 0, (1u << 20) + 1})) == errc::too_large);
}

BOOST_AUTO_TEST_CASE(reads_above_a_smaller_max_read_are_too_large) {
  init(65536);
  auto ok = proto::decode_hello_ok(ask(MsgType::hello, proto::encode(proto::Hello{})).payload);
  BOOST_REQUIRE(ok);
  BOOST_CHECK_EQUAL(ok->max_read, 65536u);
  BOOST_REQUIRE(authenticate(dock).header.type == MsgType::auth_finish_ok);
  BOOST_CHECK(ask(MsgType::read, proto::encode(proto::Read{1, 0, 65536})).header.type == MsgType::data);
  BOOST_CHECK(code_of(MsgType::read, proto::encode(proto::Read{1, 0, 65537})) == errc::too_large);
}

// PROTOCOL.md 9: nothing is erased without a custody receipt that names this camera, segment,
// content and manifest and is signed by a fleet dock; each refusal says which check failed.
BOOST_AUTO_TEST_CASE(erase_needs_a_valid_receipt) {
  hello_auth();
  Dock rogue("ROGUE");
  auto refused = [&](const Bytes& receipt) {
    auto e = error_of(erase(1, receipt));
    BOOST_CHECK(e.code == errc::receipt_rejected);
    return e.message;
  };
  BOOST_CHECK_EQUAL(refused({}), "not a signed custody receipt (truncated payload)");
  const auto& sha = cam.segments[1].manifest.sha256;
  BOOST_CHECK_EQUAL(refused(Bytes(sha.begin(), sha.end())), "not a signed custody receipt (unsupported protocol version)");
  auto valid = receipt(1, dock);
  auto bytes = proto::encode_receipt(valid);
  auto trailing = bytes;
  trailing.push_back(0);
  BOOST_CHECK_EQUAL(refused(trailing), "not a signed custody receipt (malformed frame)");
  auto no_sig = valid;
  no_sig.signature.clear();
  BOOST_CHECK_EQUAL(refused(proto::encode_receipt(no_sig)), "not a signed custody receipt (bad request)");
  auto long_sig = valid;
  long_sig.signature.resize(73);
  BOOST_CHECK_EQUAL(refused(proto::encode_receipt(long_sig)), "not a signed custody receipt (over a size limit)");
  BOOST_CHECK_EQUAL(refused(proto::encode_receipt(receipt(2, dock))), "receipt is for another segment");
  auto other_camera = valid;
  other_camera.camera_serial = "BC-0002";
  BOOST_CHECK_EQUAL(refused(proto::encode_receipt(proto::make_receipt(other_camera, dock.key))), "receipt is for another segment");
  auto wrong_sha = valid;
  wrong_sha.sha256[31] ^= 1;
  BOOST_CHECK_EQUAL(refused(proto::encode_receipt(proto::make_receipt(wrong_sha, dock.key))), "receipt does not match the segment's SHA-256");
  auto wrong_manifest = valid;
  wrong_manifest.manifest_sha256[0] ^= 1;
  BOOST_CHECK_EQUAL(refused(proto::encode_receipt(proto::make_receipt(wrong_manifest, dock.key))),
                    "receipt does not match the segment's manifest");
  // Forged: signed by a dock outside the fleet, even inside an authenticated session.
  BOOST_CHECK_EQUAL(refused(proto::encode_receipt(receipt(1, rogue))), "receipt signer: not issued by the fleet CA");
  // Altered after signing.
  auto altered = valid;
  altered.stored_at = "elsewhere";
  BOOST_CHECK_EQUAL(refused(proto::encode_receipt(altered)), "receipt signature does not verify");
  BOOST_CHECK_EQUAL(stats().receipts_rejected, 11u);
  BOOST_CHECK(cam.erased.empty());
  // Too large before a byte of it is looked at; not counted as a receipt refusal.
  BOOST_CHECK(code_of(MsgType::erase, proto::encode(proto::Erase{1, Bytes(4097, 0)})) == errc::too_large);

  // A receipt the camera cannot persist the erase for: internal, and the segment stays.
  cam.fail_erase = true;
  auto e = error_of(erase(1, bytes));
  BOOST_CHECK(e.code == errc::internal);
  BOOST_CHECK_EQUAL(e.message, "cannot persist erase");
  cam.fail_erase = false;
  auto ok = erase(1, bytes);
  BOOST_REQUIRE(ok.header.type == MsgType::erase_ok);
  BOOST_CHECK_EQUAL(proto::decode_erase_ok(ok.payload)->seq, 1u);
  BOOST_CHECK(cam.erased == std::vector<std::uint64_t>{1});
  // Gone for good: ERASE and READ say not_found, LIST skips it.
  BOOST_CHECK(code_of(MsgType::erase, proto::encode(proto::Erase{1, bytes})) == errc::not_found);
  BOOST_CHECK(code_of(MsgType::read, proto::encode(proto::Read{1, 0, 1})) == errc::not_found);
  auto l = proto::decode_list_ok(ask(MsgType::list, proto::encode(proto::List{0, 256})).payload);
  BOOST_CHECK_EQUAL(l->manifests.front().seq, 2u);
  BOOST_CHECK_EQUAL(stats().receipts_rejected, 11u);
}

// Header errors are sticky for the rest of the transfer (PROTOCOL.md 2.4): frames before the bad
// header are served, the ERROR carries the bad header's id, the rest is dropped, and the next
// transfer starts a fresh frame.
BOOST_AUTO_TEST_CASE(bad_headers_are_sticky_for_the_transfer) {
  hello_auth();
  struct Case {
    const char* name;
    std::size_t at;
    std::uint8_t value;
    errc expect;
  };
  const Case cases[] = {{"bad magic", 0, 0x00, errc::malformed_frame},      {"bad magic high byte", 1, 0xB1, errc::malformed_frame},
                        {"reserved bits", 15, 0x01, errc::malformed_frame},  {"future frame version", 2, 2, errc::unsupported_version},
                        {"oversized", 11, 0x7F, errc::too_large},            {"unknown type", 3, 0x42, errc::unknown_type},
                        {"unknown type 0x0A", 3, 0x0A, errc::unknown_type},  {"unknown type 0x80", 3, 0x80, errc::unknown_type}};
  for (const auto& c : cases) {
    BOOST_TEST_CONTEXT(c.name) {
      auto bad = frame(MsgType::status_get, 0xABCDEF01, {});
      bad[c.at] = c.value;
      Bytes transfer = frame(MsgType::status_get, 1, {});
      transfer.insert(transfer.end(), bad.begin(), bad.end());
      const auto after = frame(MsgType::status_get, 2, {});
      transfer.insert(transfer.end(), after.begin(), after.end());
      auto fs = frames(feed(transfer));
      BOOST_REQUIRE_EQUAL(fs.size(), 2u);
      BOOST_CHECK(fs[0].header.type == MsgType::status);
      const auto e = error_of(fs[1]);
      BOOST_CHECK(e.code == c.expect);
      BOOST_CHECK_EQUAL(e.message, "frame header refused");
      BOOST_CHECK_EQUAL(fs[1].header.request_id, 0xABCDEF01u);
      // The session survives (PROTOCOL.md 2.4): still authenticated, serving the next transfer.
      BOOST_CHECK(ask(MsgType::read, proto::encode(proto::Read{2, 0, 1})).header.type == MsgType::data);
    }
  }
  BOOST_CHECK_EQUAL(stats().header_errors, std::size(cases));
  // An oversized header alone, with no payload behind it, is answered at once.
  Bytes huge;
  proto::append_frame_header(huge, MsgType::read, 4, 0x7FFFFFFF);
  BOOST_CHECK(error_of(frames(feed(huge, 1)).at(0)).code == errc::too_large);
  Bytes just_over;
  proto::append_frame_header(just_over, MsgType::read, 5, proto::kMaxPayload + 1);
  BOOST_CHECK(error_of(frames(feed(just_over)).at(0)).code == errc::too_large);
}

// Payloads that do not decode are answered for that one request (PROTOCOL.md 3), including
// request frames far longer than any request: those are read to their end and refused.
BOOST_AUTO_TEST_CASE(malformed_payloads_get_an_error_and_the_device_keeps_serving) {
  hello_auth();
  struct Case {
    const char* name;
    MsgType type;
    Bytes payload;
    errc expect;
  };
  auto with = [](Bytes b, std::initializer_list<std::uint8_t> more) {
    b.insert(b.end(), more);
    return b;
  };
  proto::AuthBegin big_cert;
  big_cert.dock_cert = Bytes(2049, 1);
  const Case cases[] = {
      {"truncated READ", MsgType::read, Bytes(5, 0), errc::truncated},
      {"READ with a trailing byte", MsgType::read, with(proto::encode(proto::Read{1, 0, 1}), {0}), errc::malformed_frame},
      {"READ of zero bytes", MsgType::read, proto::encode(proto::Read{1, 0, 0}), errc::bad_request},
      {"STATUS_GET with a payload", MsgType::status_get, Bytes{0}, errc::malformed_frame},
      {"STATUS_GET of 100000 bytes", MsgType::status_get, Bytes(100'000, 0), errc::malformed_frame},
      {"SET_TIME truncated", MsgType::set_time, Bytes(7, 0), errc::truncated},
      {"SET_CHARGING empty", MsgType::set_charging, {}, errc::truncated},
      {"SET_CHARGING 2", MsgType::set_charging, Bytes{2}, errc::bad_request},
      {"LIST truncated", MsgType::list, Bytes(9, 0), errc::truncated},
      {"HELLO string past the end", MsgType::hello, Bytes{2, 0, 2, 0, 5, 'a'}, errc::truncated},
      {"HELLO with a trailing byte", MsgType::hello, with(proto::encode(proto::Hello{}), {0}), errc::malformed_frame},
      {"ERASE receipt over 4096", MsgType::erase, proto::encode(proto::Erase{1, Bytes(4097, 0)}), errc::too_large},
      {"ERASE with bytes after its receipt", MsgType::erase, with(proto::encode(proto::Erase{1, Bytes(4096, 0)}), {1, 2, 3}),
       errc::malformed_frame},
      {"AUTH_BEGIN certificate over 2048", MsgType::auth_begin, proto::encode(big_cert), errc::too_large},
      {"AUTH_BEGIN truncated nonce", MsgType::auth_begin, Bytes(31, 0), errc::truncated},
      {"AUTH_FINISH signature over 256", MsgType::auth_finish, proto::encode(proto::AuthFinish{Bytes(257, 0)}), errc::too_large},
  };
  for (const auto& c : cases) {
    BOOST_TEST_CONTEXT(c.name) {
      auto f = ask(c.type, c.payload);
      const auto e = error_of(f);
      BOOST_CHECK(e.code == c.expect);
      BOOST_CHECK_EQUAL(e.message, "cannot decode request");
      BOOST_CHECK(ask(MsgType::status_get, {}).header.type == MsgType::status);
    }
  }
  // Far longer than any request, up to the largest payload a frame may have: read to the end
  // (only the first bytes kept) and refused like a short one.
  auto big = proto::encode(proto::Read{1, 0, 1});
  big.resize(proto::kMaxPayload, 0xEE);
  BOOST_CHECK(error_of(frames(feed(frame(MsgType::read, 7, big), 4093)).at(0)).code == errc::malformed_frame);
  auto big_erase = proto::encode(proto::Erase{1, Bytes(4096, 0)});
  big_erase.resize(100'000, 0xEE);
  BOOST_CHECK(code_of(MsgType::erase, big_erase) == errc::malformed_frame);
  auto big_hello = proto::encode(proto::Hello{0, 0, ""});
  big_hello.resize(50'000);
  BOOST_CHECK(code_of(MsgType::hello, big_hello) == errc::bad_request);  // values are checked before trailing bytes
  // An ERASE whose receipt length runs past the payload.
  auto short_receipt = proto::encode(proto::Erase{1, Bytes(10, 0)});
  short_receipt.resize(short_receipt.size() - 1);
  BOOST_CHECK(code_of(MsgType::erase, short_receipt) == errc::truncated);
  BOOST_CHECK(cam.erased.empty());
  BOOST_CHECK(bd_device_authenticated(dev.get()));
}

// The byte stream's chunking carries no meaning (PROTOCOL.md 1): a whole session fed one byte at
// a time, or in odd-sized pieces, or as one transfer, gets the same replies.
BOOST_AUTO_TEST_CASE(any_chunking_gives_the_same_replies) {
  const auto rec = proto::encode_receipt(receipt(3, dock));
  hello();
  // Authentication has random parts: do it first, then compare the deterministic rest.
  BOOST_REQUIRE(authenticate(dock).header.type == MsgType::auth_finish_ok);
  Bytes session;
  auto add = [&](MsgType t, const Bytes& p, std::uint32_t id) {
    const auto f = frame(t, id, p);
    session.insert(session.end(), f.begin(), f.end());
  };
  add(MsgType::list, proto::encode(proto::List{0, 256}), 10);
  add(MsgType::read, proto::encode(proto::Read{2, 5, 10'000}), 11);
  add(MsgType::read, Bytes(3, 0), 12);
  add(MsgType::status_get, Bytes(5000, 1), 13);
  add(MsgType::set_charging, Bytes{0}, 14);
  add(MsgType::read, proto::encode(proto::Read{2, 25'000, 10}), 15);
  add(MsgType::set_charging, Bytes{1}, 16);
  add(MsgType::data, {}, 17);
  const auto whole = feed(session);
  for (std::size_t step : {1u, 2u, 3u, 15u, 16u, 17u, 511u, 4096u}) {
    BOOST_TEST_CONTEXT("chunks of " << step) { BOOST_CHECK(feed(session, step) == whole); }
  }
  auto fs = frames(whole);
  BOOST_REQUIRE_EQUAL(fs.size(), 8u);
  BOOST_CHECK(fs[0].header.type == MsgType::list_ok);
  BOOST_CHECK(fs[1].header.type == MsgType::data);
  BOOST_CHECK(error_of(fs[2]).code == errc::truncated);
  BOOST_CHECK(error_of(fs[3]).code == errc::malformed_frame);
  BOOST_CHECK(error_of(fs[5]).code == errc::out_of_range);
  BOOST_CHECK(error_of(fs[7]).code == errc::bad_request);
  for (std::size_t i = 0; i < fs.size(); ++i) BOOST_CHECK_EQUAL(fs[i].header.request_id, 10 + i);
  // An ERASE split anywhere, including inside its receipt, still verifies.
  const auto erase_frame = frame(MsgType::erase, 20, proto::encode(proto::Erase{3, rec}));
  BOOST_CHECK(frames(feed(erase_frame, 7)).at(0).header.type == MsgType::erase_ok);
}

BOOST_AUTO_TEST_CASE(failing_callbacks) {
  hello_auth();
  // Storage that cannot be read at all: an ERROR, not a DATA frame.
  cam.fail_read_after = 0;
  auto e = error_of(ask(MsgType::read, proto::encode(proto::Read{1, 0, 4096})));
  BOOST_CHECK(e.code == errc::internal);
  BOOST_CHECK_EQUAL(e.message, "cannot read segment");
  // Failing halfway: the frame keeps its announced length (zeros), the stream stays in sync.
  cam.fail_read_after = 2;
  auto f = ask(MsgType::read, proto::encode(proto::Read{1, 0, 4096}));
  BOOST_REQUIRE(f.header.type == MsgType::data);
  auto d = proto::decode_data(f.payload);
  BOOST_REQUIRE_EQUAL(d->bytes.size(), 4096u);
  BOOST_CHECK(std::all_of(d->bytes.end() - 100, d->bytes.end(), [](auto b) { return b == 0; }));
  BOOST_CHECK_EQUAL(stats().storage_read_failures, 2u);
  cam.fail_read_after = -1;
  BOOST_CHECK(ask(MsgType::status_get, {}).header.type == MsgType::status);

  // A transport that went away: feed says so and does nothing more until a new session.
  cam.fail_write = true;
  const auto st = frame(MsgType::status_get, 1, {});
  BOOST_CHECK_EQUAL(bd_device_feed(dev.get(), st.data(), st.size()), BD_E_TRANSPORT);
  BOOST_CHECK_EQUAL(bd_device_feed(dev.get(), st.data(), st.size()), BD_E_TRANSPORT);
  cam.fail_write = false;
  bd_device_reset_session(dev.get());
  BOOST_CHECK(code_of(MsgType::status_get, {}) == errc::bad_state);
  hello();
}

BOOST_AUTO_TEST_CASE(init_refuses_a_bad_configuration) {
  bd_device d;
  auto cfg = config();
  BOOST_CHECK_EQUAL(bd_device_init(&d, &cfg), BD_OK);
  BOOST_CHECK_EQUAL(bd_device_init(nullptr, &cfg), BD_E_ARGUMENT);
  BOOST_CHECK_EQUAL(bd_device_init(&d, nullptr), BD_E_ARGUMENT);
  for (const char* serial : {"", ".BC", "-BC", "BC/1", "../x", "BC 1",
                             "0123456789012345678901234567890123456789012345678901234567890123X"}) {
    auto c = config();
    c.serial = serial;
    BOOST_CHECK_MESSAGE(bd_device_init(&d, &c) == BD_E_CONFIG, serial);
  }
  const std::string long_model(256, 'm');
  auto c = config();
  c.model = long_model.c_str();
  BOOST_CHECK_EQUAL(bd_device_init(&d, &c), BD_E_CONFIG);
  c = config();
  c.device_cert_len = BD_MAX_CERTIFICATE + 1;
  BOOST_CHECK_EQUAL(bd_device_init(&d, &c), BD_E_CONFIG);
  for (std::uint32_t max_read : {1u, 4095u, (1u << 20) + 1}) {
    c = config();
    c.max_read = max_read;
    BOOST_CHECK_EQUAL(bd_device_init(&d, &c), BD_E_CONFIG);
  }
  c = config();
  c.cb.verify_dock = nullptr;
  BOOST_CHECK_EQUAL(bd_device_init(&d, &c), BD_E_CONFIG);
  BOOST_CHECK_EQUAL(bd_device_feed(nullptr, nullptr, 0), BD_E_ARGUMENT);
  BOOST_CHECK_EQUAL(bd_device_feed(&d, nullptr, 1), BD_E_ARGUMENT);
}

BOOST_AUTO_TEST_CASE(error_code_names_match_the_dock) {
  for (unsigned code = 0; code <= 16; ++code)
    BOOST_CHECK_EQUAL(bd_errc_name(code), proto::errc_name(static_cast<errc>(code)));
}

BOOST_AUTO_TEST_SUITE_END()
