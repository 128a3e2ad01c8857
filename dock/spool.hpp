#pragma once
/// The spool: one file per segment being pulled, STATE/spool/<serial>/<seq>.part. Everything
/// here blocks and runs on the I/O pool; the async_* wrappers return awaitables for sessions.

#include "dock/blocking.hpp"
#include "dock/files.hpp"
#include "dock/spool_sum.hpp"

#include <boost/asio/thread_pool.hpp>

#include <filesystem>

namespace bodydock::dock {

struct OpenSpool {
  Fd fd;
  std::uint64_t kept = 0;  ///< bytes kept: `keep`, or 0 when the file was shorter than that
};

/// Opens a segment's spool file, drops anything past `keep` (the last durable offset), and
/// hashes the kept prefix into `whole`, so the whole-segment check and the spool sum cover
/// resumed pulls too.
/// A file shorter than `keep` (lost on disk) is started over from 0.
OpenSpool open_spool(const std::filesystem::path& path, std::uint64_t keep, PullHash& whole);
/// Verifies a chunk against its manifest hash; if it matches, writes it at `offset` and feeds
/// the whole-segment hashes. false (nothing written) on a hash mismatch; throws on I/O errors.
bool verify_and_spool(int fd, proto::ByteView data, std::uint64_t offset, const proto::Digest& expect, PullHash& whole);

inline auto async_open_spool(boost::asio::thread_pool& pool, std::filesystem::path path, std::uint64_t keep, PullHash& whole) {
  return run_blocking(pool, [path = std::move(path), keep, &whole] { return open_spool(path, keep, whole); });
}
inline auto async_verify_and_spool(boost::asio::thread_pool& pool, int fd, proto::ByteView data, std::uint64_t offset,
                                   const proto::Digest& expect, PullHash& whole) {
  return run_blocking(pool, [=, &expect, &whole] { return verify_and_spool(fd, data, offset, expect, whole); });
}
/// fdatasync; throws on failure (a spool that cannot be made durable must not count as such).
inline auto async_sync(boost::asio::thread_pool& pool, int fd) {
  return run_blocking(pool, [fd] {
    if (auto ec = sync_file(fd)) throw boost::system::system_error(ec, "sync spool");
  });
}
inline auto async_remove(boost::asio::thread_pool& pool, std::filesystem::path path) {
  return run_blocking(pool, [path = std::move(path)] {
    std::error_code ec;
    std::filesystem::remove(path, ec);
    if (ec) throw std::system_error(ec, "remove " + path.string());
  });
}

}  // namespace bodydock::dock
