#include "dock/files.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <vector>

namespace bodydock::dock {
namespace {

boost::system::error_code last_error() { return {errno, boost::system::generic_category()}; }

}  // namespace

Fd::~Fd() {
  if (fd_ >= 0) ::close(fd_);
}

Fd& Fd::operator=(Fd&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = o.fd_;
    o.fd_ = -1;
  }
  return *this;
}

boost::system::result<Fd> open_file(const std::filesystem::path& p, int flags, unsigned mode) {
  const int fd = ::open(p.c_str(), flags | O_CLOEXEC, mode);
  if (fd < 0) return last_error();
  return Fd(fd);
}

boost::system::error_code write_all_at(int fd, proto::ByteView bytes, std::uint64_t offset) {
  std::size_t done = 0;
  while (done < bytes.size()) {
    const auto n = ::pwrite(fd, bytes.data() + done, bytes.size() - done, static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return last_error();
    done += static_cast<std::size_t>(n);
  }
  return {};
}

boost::system::result<std::size_t> read_at(int fd, std::span<std::uint8_t> buf, std::uint64_t offset) {
  std::size_t done = 0;
  while (done < buf.size()) {
    const auto n = ::pread(fd, buf.data() + done, buf.size() - done, static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return last_error();
    if (n == 0) break;
    done += static_cast<std::size_t>(n);
  }
  return done;
}

boost::system::error_code sync_file(int fd) {
  if (::fdatasync(fd) != 0) return last_error();
  return {};
}

boost::system::error_code sync_dir(const std::filesystem::path& dir) {
  auto fd = open_file(dir, O_RDONLY | O_DIRECTORY);
  if (!fd) return fd.error();
  if (::fsync(fd->get()) != 0) return last_error();
  return {};
}

boost::system::error_code write_file_atomic(const std::filesystem::path& p, std::string_view content, unsigned mode) {
  const auto tmp = p.parent_path() / ("." + p.filename().string() + ".tmp");
  {
    auto fd = open_file(tmp, O_WRONLY | O_CREAT | O_TRUNC, mode);
    if (!fd) return fd.error();
    if (::fchmod(fd->get(), static_cast<mode_t>(mode)) != 0) return last_error();  // a leftover temporary keeps its old mode
    if (auto ec = write_all_at(fd->get(), {reinterpret_cast<const std::uint8_t*>(content.data()), content.size()}, 0)) return ec;
    if (::fsync(fd->get()) != 0) return last_error();
  }
  if (::rename(tmp.c_str(), p.c_str()) != 0) return last_error();
  return sync_dir(p.parent_path());
}

boost::system::result<proto::Digest> hash_file(const std::filesystem::path& p, std::uint64_t& size) {
  auto fd = open_file(p, O_RDONLY);
  if (!fd) return fd.error();
  std::vector<std::uint8_t> buf(1u << 20);
  proto::Sha256 h;
  size = 0;
  for (;;) {
    auto n = read_at(fd->get(), buf, size);
    if (!n) return n.error();
    if (*n == 0) break;
    h.update({buf.data(), *n});
    size += *n;
  }
  return h.finish();
}

}  // namespace bodydock::dock
