#pragma once
/// Small POSIX file helpers with errors as error_code: the spool and the local sink use them.

#include "proto/sha256.hpp"

#include <boost/system/error_code.hpp>
#include <boost/system/result.hpp>

#include <cstdint>
#include <filesystem>

namespace bodydock::dock {

/// An open file descriptor, closed on destruction.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd();
  Fd(Fd&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  Fd& operator=(Fd&& o) noexcept;
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  [[nodiscard]] int get() const { return fd_; }
  explicit operator bool() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

boost::system::result<Fd> open_file(const std::filesystem::path& p, int flags, unsigned mode = 0600);
boost::system::error_code write_all_at(int fd, proto::ByteView bytes, std::uint64_t offset);
/// Reads up to buf.size() bytes at offset; returns the count (0 at end of file).
boost::system::result<std::size_t> read_at(int fd, std::span<std::uint8_t> buf, std::uint64_t offset);
boost::system::error_code sync_file(int fd);
/// fsync of a directory, so a rename or create in it survives a power cut.
boost::system::error_code sync_dir(const std::filesystem::path& dir);
/// Writes a small file atomically: temp file, fsync, rename, fsync directory.
boost::system::error_code write_file_atomic(const std::filesystem::path& p, std::string_view content, unsigned mode = 0640);
/// SHA-256 of a whole file, and its size.
boost::system::result<proto::Digest> hash_file(const std::filesystem::path& p, std::uint64_t& size);

}  // namespace bodydock::dock
