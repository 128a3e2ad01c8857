#pragma once
/// Little-endian field writer and a bounds-checked reader for frame payloads.
/// The reader never reads past its span and never allocates more than the bytes it was given:
/// any short or oversized field sets a sticky error that the caller checks once at the end.

#include "proto/errors.hpp"

#include <array>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace bodydock::proto {

using Bytes = std::vector<std::uint8_t>;
using ByteView = std::span<const std::uint8_t>;
using Digest = std::array<std::uint8_t, 32>;

/// Longest string field on the wire (serials, versions, ids, reasons, messages).
inline constexpr std::size_t kMaxString = 255;

class Writer {
 public:
  explicit Writer(Bytes& out) : out_(out) {}
  void u8(std::uint8_t v) { out_.push_back(v); }
  void u16(std::uint16_t v) { put_le(v); }
  void u32(std::uint32_t v) { put_le(v); }
  void u64(std::uint64_t v) { put_le(v); }
  void i16(std::int16_t v) { put_le(static_cast<std::uint16_t>(v)); }
  void i64(std::int64_t v) { put_le(static_cast<std::uint64_t>(v)); }
  /// u8 length + bytes; longer strings are cut at kMaxString (callers validate before).
  void str(std::string_view s) {
    const auto n = s.size() < kMaxString ? s.size() : kMaxString;
    u8(static_cast<std::uint8_t>(n));
    out_.insert(out_.end(), s.begin(), s.begin() + static_cast<std::ptrdiff_t>(n));
  }
  void digest(const Digest& d) { out_.insert(out_.end(), d.begin(), d.end()); }
  /// u32 length + bytes.
  void blob(ByteView b) {
    u32(static_cast<std::uint32_t>(b.size()));
    raw(b);
  }
  void raw(ByteView b) { out_.insert(out_.end(), b.begin(), b.end()); }

 private:
  template <typename T>
  void put_le(T v) {
    for (std::size_t i = 0; i < sizeof(T); ++i) out_.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
  }
  Bytes& out_;
};

class Reader {
 public:
  explicit Reader(ByteView in) : in_(in) {}

  std::uint8_t u8() { return get_le<std::uint8_t>(); }
  std::uint16_t u16() { return get_le<std::uint16_t>(); }
  std::uint32_t u32() { return get_le<std::uint32_t>(); }
  std::uint64_t u64() { return get_le<std::uint64_t>(); }
  std::int16_t i16() { return static_cast<std::int16_t>(get_le<std::uint16_t>()); }
  std::int64_t i64() { return static_cast<std::int64_t>(get_le<std::uint64_t>()); }
  std::string str() {
    const auto n = u8();
    const auto b = take(n);
    return {b.begin(), b.end()};
  }
  Digest digest() {
    Digest d{};
    const auto b = take(d.size());
    if (!b.empty()) std::memcpy(d.data(), b.data(), d.size());
    return d;
  }
  /// u32 length + bytes, refused above max_len before anything is copied.
  ByteView blob(std::size_t max_len) {
    const auto n = u32();
    if (n > max_len) {
      fail(errc::too_large);
      return {};
    }
    return take(n);
  }
  /// The next n bytes as a view into the input.
  ByteView take(std::size_t n) {
    if (error_ != errc::ok) return {};
    if (n > in_.size() - pos_) {
      fail(errc::truncated);
      return {};
    }
    auto v = in_.subspan(pos_, n);
    pos_ += n;
    return v;
  }
  ByteView rest() { return take(in_.size() - pos_); }

  void fail(errc e) {
    if (error_ == errc::ok) error_ = e;
  }
  [[nodiscard]] bool ok() const { return error_ == errc::ok; }
  [[nodiscard]] errc error() const { return error_; }
  [[nodiscard]] std::size_t remaining() const { return in_.size() - pos_; }
  /// Final check for a decoder: no error and no trailing bytes.
  [[nodiscard]] errc finish() const {
    if (error_ != errc::ok) return error_;
    return pos_ == in_.size() ? errc::ok : errc::malformed_frame;
  }

 private:
  template <typename T>
  T get_le() {
    const auto b = take(sizeof(T));
    if (b.empty()) return 0;
    T v = 0;
    for (std::size_t i = 0; i < sizeof(T); ++i) v = static_cast<T>(v | (static_cast<T>(b[i]) << (8 * i)));
    return v;
  }
  ByteView in_;
  std::size_t pos_ = 0;
  errc error_ = errc::ok;
};

}  // namespace bodydock::proto
