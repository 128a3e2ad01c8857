#include "proto/messages.hpp"

#include <algorithm>

namespace bodydock::proto {
namespace {

template <typename T>
boost::system::result<T> done(const Reader& r, T value) {
  if (auto e = r.finish(); e != errc::ok) return make_error_code(e);
  return value;
}

}  // namespace

Bytes encode(const Hello& m) {
  Bytes b;
  Writer w(b);
  w.u16(m.min_version);
  w.u16(m.max_version);
  w.str(m.host_id);
  return b;
}
boost::system::result<Hello> decode_hello(ByteView in) {
  Reader r(in);
  Hello m;
  m.min_version = r.u16();
  m.max_version = r.u16();
  m.host_id = r.str();
  if (r.ok() && (m.min_version == 0 || m.min_version > m.max_version)) return make_error_code(errc::bad_request);
  return done(r, std::move(m));
}

Bytes encode(const HelloOk& m) {
  Bytes b;
  Writer w(b);
  w.u16(m.version);
  w.str(m.serial);
  w.str(m.model);
  w.str(m.firmware);
  w.u32(m.max_read);
  w.u16(m.max_inflight);
  return b;
}
boost::system::result<HelloOk> decode_hello_ok(ByteView in) {
  Reader r(in);
  HelloOk m;
  m.version = r.u16();
  m.serial = r.str();
  m.model = r.str();
  m.firmware = r.str();
  m.max_read = r.u32();
  m.max_inflight = r.u16();
  if (r.ok() && (!valid_serial(m.serial) || m.version == 0 || m.max_read < kMinChunkSize || m.max_read > kMaxReadLength || m.max_inflight == 0))
    return make_error_code(errc::bad_request);
  return done(r, std::move(m));
}

Bytes encode(const StatusGet&) { return {}; }
boost::system::result<StatusGet> decode_status_get(ByteView in) {
  Reader r(in);
  return done(r, StatusGet{});
}

Bytes encode(const Status& m) {
  Bytes b;
  Writer w(b);
  w.u8(m.battery_pct);
  w.u8(m.charging ? 1 : 0);
  w.i16(m.temperature_dc);
  w.u64(m.storage_used);
  w.u64(m.storage_total);
  w.i64(m.clock_utc_ms);
  w.u32(m.segment_count);
  return b;
}
boost::system::result<Status> decode_status(ByteView in) {
  Reader r(in);
  Status m;
  m.battery_pct = r.u8();
  const auto charging = r.u8();
  m.temperature_dc = r.i16();
  m.storage_used = r.u64();
  m.storage_total = r.u64();
  m.clock_utc_ms = r.i64();
  m.segment_count = r.u32();
  if (r.ok() && (m.battery_pct > 100 || charging > 1 || m.storage_used > m.storage_total)) return make_error_code(errc::bad_request);
  m.charging = charging == 1;
  return done(r, m);
}

Bytes encode(const SetTime& m) {
  Bytes b;
  Writer(b).i64(m.utc_ms);
  return b;
}
boost::system::result<SetTime> decode_set_time(ByteView in) {
  Reader r(in);
  SetTime m{r.i64()};
  return done(r, m);
}
Bytes encode(const SetTimeOk& m) {
  Bytes b;
  Writer(b).i64(m.adjusted_by_ms);
  return b;
}
boost::system::result<SetTimeOk> decode_set_time_ok(ByteView in) {
  Reader r(in);
  SetTimeOk m{r.i64()};
  return done(r, m);
}

Bytes encode(const List& m) {
  Bytes b;
  Writer w(b);
  w.u64(m.cursor);
  w.u16(m.max_count);
  return b;
}
boost::system::result<List> decode_list(ByteView in) {
  Reader r(in);
  List m;
  m.cursor = r.u64();
  m.max_count = r.u16();
  if (r.ok() && (m.max_count == 0 || m.max_count > kMaxListCount)) return make_error_code(errc::bad_request);
  return done(r, m);
}

Bytes encode(const ListOk& m) {
  Bytes b;
  Writer w(b);
  w.u16(static_cast<std::uint16_t>(m.manifests.size()));
  for (const auto& man : m.manifests) w.blob(encode_manifest(man));
  w.u64(m.next_cursor);
  w.u8(m.more ? 1 : 0);
  return b;
}
boost::system::result<ListOk> decode_list_ok(ByteView in) {
  Reader r(in);
  ListOk m;
  const auto count = r.u16();
  if (count > kMaxListCount) return make_error_code(errc::too_large);
  std::uint64_t last_seq = 0;
  for (std::uint16_t i = 0; i < count && r.ok(); ++i) {
    const auto blob = r.blob(kMaxManifestSize);
    if (!r.ok()) break;
    auto man = decode_manifest(blob);
    if (!man) return man.error();
    // Ascending order is part of the contract: a device that reorders is not trusted to list.
    if (i > 0 && man->seq <= last_seq) return make_error_code(errc::bad_request);
    last_seq = man->seq;
    m.manifests.push_back(std::move(*man));
  }
  m.next_cursor = r.u64();
  const auto more = r.u8();
  if (r.ok() && more > 1) return make_error_code(errc::bad_request);
  m.more = more == 1;
  return done(r, std::move(m));
}

Bytes encode(const Read& m) {
  Bytes b;
  Writer w(b);
  w.u64(m.seq);
  w.u64(m.offset);
  w.u32(m.length);
  return b;
}
boost::system::result<Read> decode_read(ByteView in) {
  Reader r(in);
  Read m;
  m.seq = r.u64();
  m.offset = r.u64();
  m.length = r.u32();
  if (r.ok() && m.length == 0) return make_error_code(errc::bad_request);
  if (r.ok() && m.length > kMaxReadLength) return make_error_code(errc::too_large);
  return done(r, m);
}

Bytes encode_data_header(std::uint64_t seq, std::uint64_t offset) {
  Bytes b;
  Writer w(b);
  w.u64(seq);
  w.u64(offset);
  return b;
}
boost::system::result<Data> decode_data(ByteView in) {
  Reader r(in);
  Data m;
  m.seq = r.u64();
  m.offset = r.u64();
  if (!r.ok()) return make_error_code(r.error());
  m.bytes = r.rest();
  if (m.bytes.size() > kMaxReadLength) return make_error_code(errc::too_large);
  return done(r, m);
}

Bytes encode(const Erase& m) {
  Bytes b;
  Writer w(b);
  w.u64(m.seq);
  w.blob(m.receipt);
  return b;
}
boost::system::result<Erase> decode_erase(ByteView in) {
  Reader r(in);
  Erase m;
  m.seq = r.u64();
  const auto receipt = r.blob(kMaxReceipt);
  m.receipt.assign(receipt.begin(), receipt.end());
  return done(r, std::move(m));
}
Bytes encode(const EraseOk& m) {
  Bytes b;
  Writer(b).u64(m.seq);
  return b;
}
boost::system::result<EraseOk> decode_erase_ok(ByteView in) {
  Reader r(in);
  EraseOk m{r.u64()};
  return done(r, m);
}

namespace {
/// A bool field (PROTOCOL.md section 3): 0 or 1, anything else is bad_request.
template <typename T>
boost::system::result<T> decode_one_bool(ByteView in) {
  Reader r(in);
  const auto v = r.u8();
  if (r.ok() && v > 1) return make_error_code(errc::bad_request);
  return done(r, T{v == 1});
}
}  // namespace

Bytes encode(const SetCharging& m) { return {static_cast<std::uint8_t>(m.allow ? 1 : 0)}; }
boost::system::result<SetCharging> decode_set_charging(ByteView in) { return decode_one_bool<SetCharging>(in); }
Bytes encode(const SetChargingOk& m) { return {static_cast<std::uint8_t>(m.charging ? 1 : 0)}; }
boost::system::result<SetChargingOk> decode_set_charging_ok(ByteView in) { return decode_one_bool<SetChargingOk>(in); }

Bytes encode(const AuthBegin& m) {
  Bytes b;
  Writer w(b);
  w.digest(m.dock_nonce);
  w.blob(m.dock_cert);
  return b;
}
boost::system::result<AuthBegin> decode_auth_begin(ByteView in) {
  Reader r(in);
  AuthBegin m;
  m.dock_nonce = r.digest();
  const auto cert = r.blob(kMaxCertificate);
  m.dock_cert.assign(cert.begin(), cert.end());
  return done(r, std::move(m));
}

Bytes encode(const AuthBeginOk& m) {
  Bytes b;
  Writer w(b);
  w.digest(m.camera_nonce);
  w.blob(m.camera_cert);
  w.blob(m.signature);
  return b;
}
boost::system::result<AuthBeginOk> decode_auth_begin_ok(ByteView in) {
  Reader r(in);
  AuthBeginOk m;
  m.camera_nonce = r.digest();
  const auto cert = r.blob(kMaxCertificate);
  m.camera_cert.assign(cert.begin(), cert.end());
  const auto sig = r.blob(kMaxAuthSignature);
  m.signature.assign(sig.begin(), sig.end());
  return done(r, std::move(m));
}

Bytes encode(const AuthFinish& m) {
  Bytes b;
  Writer w(b);
  w.blob(m.signature);
  return b;
}
boost::system::result<AuthFinish> decode_auth_finish(ByteView in) {
  Reader r(in);
  AuthFinish m;
  const auto sig = r.blob(kMaxAuthSignature);
  m.signature.assign(sig.begin(), sig.end());
  return done(r, std::move(m));
}

Bytes encode(const AuthFinishOk&) { return {}; }
boost::system::result<AuthFinishOk> decode_auth_finish_ok(ByteView in) {
  Reader r(in);
  return done(r, AuthFinishOk{});
}

Bytes encode(const ErrorReply& m) {
  Bytes b;
  Writer w(b);
  w.u16(static_cast<std::uint16_t>(m.code));
  w.str(m.message);
  return b;
}
boost::system::result<ErrorReply> decode_error(ByteView in) {
  Reader r(in);
  ErrorReply m;
  const auto code = r.u16();
  m.message = r.str();
  if (r.ok() && (code == 0 || code > static_cast<std::uint16_t>(errc::auth_failed))) m.code = errc::internal;
  else m.code = static_cast<errc>(code);
  return done(r, std::move(m));
}

std::uint16_t negotiate_version(std::uint16_t host_min, std::uint16_t host_max,
                                std::uint16_t dev_min, std::uint16_t dev_max) noexcept {
  const auto lo = std::max(host_min, dev_min);
  const auto hi = std::min(host_max, dev_max);
  return lo <= hi ? hi : 0;
}

}  // namespace bodydock::proto
