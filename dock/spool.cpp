#include "dock/spool.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <vector>

namespace bodydock::dock {

namespace {

[[noreturn]] void throw_errno(const std::string& what) {
  throw boost::system::system_error(boost::system::error_code(errno, boost::system::generic_category()), what);
}

}  // namespace

OpenSpool open_spool(const std::filesystem::path& path, std::uint64_t keep, PullHash& whole) {
  std::filesystem::create_directories(path.parent_path());
  auto fd = open_file(path, O_RDWR | O_CREAT, 0600);
  if (!fd) throw boost::system::system_error(fd.error(), "open spool " + path.string());
  struct stat st {};
  if (::fstat(fd->get(), &st) != 0) throw_errno("stat spool");
  if (static_cast<std::uint64_t>(st.st_size) < keep) keep = 0;  // spool lost what the database thinks it has: start over
  if (::ftruncate(fd->get(), static_cast<off_t>(keep)) != 0) throw_errno("truncate spool");
  std::vector<std::uint8_t> buf(1u << 20);
  for (std::uint64_t off = 0; off < keep;) {
    const auto want = static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), keep - off));
    auto n = read_at(fd->get(), {buf.data(), want}, off);
    if (!n) throw boost::system::system_error(n.error(), "read spool");
    if (*n == 0) throw boost::system::system_error(boost::system::error_code(EIO, boost::system::generic_category()), "spool shorter than expected");
    whole.update({buf.data(), *n});
    off += *n;
  }
  return OpenSpool{std::move(*fd), keep};
}

bool verify_and_spool(int fd, proto::ByteView data, std::uint64_t offset, const proto::Digest& expect, PullHash& whole) {
  if (!proto::digest_equal(proto::Sha256::of(data), expect)) return false;
  if (auto ec = write_all_at(fd, data, offset)) throw boost::system::system_error(ec, "write to spool");
  whole.update(data);
  return true;
}

}  // namespace bodydock::dock
