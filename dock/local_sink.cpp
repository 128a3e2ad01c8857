#include "dock/local_sink.hpp"

#include "dock/blocking.hpp"
#include "dock/files.hpp"
#include "proto/sha256.hpp"

#include <boost/json.hpp>
#include <boost/system/system_error.hpp>
#include <boost/throw_exception.hpp>

#include <fcntl.h>

#include <cstdio>
#include <fstream>
#include <vector>

namespace bodydock::dock {
namespace {

// boost::system::error_category has a protected non-virtual destructor by design (its
// categories are never deleted through a base pointer), which -Wnon-virtual-dtor flags.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnon-virtual-dtor"
class SinkCategory final : public boost::system::error_category {
 public:
  const char* name() const noexcept override { return "bodydock.sink"; }
  std::string message(int ev) const override {
    switch (static_cast<sink_errc>(ev)) {
      case sink_errc::content_mismatch: return "spooled bytes do not match the manifest's SHA-256";
      case sink_errc::object_conflict: return "storage holds different bytes under this segment's key";
      case sink_errc::spool_unreadable: return "the spool copy cannot be read";
      case sink_errc::storage_error: return "storage failed for now";
      case sink_errc::storage_refused: return "storage refuses the dock";
      case sink_errc::clock_skew: return "storage says the dock's clock is off";
    }
    return "unknown sink error";
  }
};
#pragma GCC diagnostic pop

constexpr std::size_t kCopyBlock = 1u << 20;

}  // namespace

boost::json::object manifest_with_custody(const proto::Manifest& m, const Custody& custody) {
  auto json = proto::manifest_to_json(m);
  if (!custody.dock_id.empty()) {
    boost::json::object c;
    c["dock_id"] = custody.dock_id;
    if (custody.clock_drift_ms) c["camera_clock_minus_dock_ms"] = *custody.clock_drift_ms;
    if (!custody.officer.empty()) c["officer"] = custody.officer;
    if (!custody.camera_certificate.empty()) c["camera_certificate"] = proto::to_hex(custody.camera_certificate);
    json["custody"] = std::move(c);
  }
  return json;
}

void throw_exception_from_error(const StoreFailure& f, const boost::source_location& loc) {
  boost::throw_exception(boost::system::system_error(f.code, f.detail), loc);
}

const boost::system::error_category& sink_category() noexcept {
  static const SinkCategory category;
  return category;
}

LocalDirSink::LocalDirSink(std::filesystem::path root, boost::asio::thread_pool& pool) : root_(std::move(root)), pool_(pool) {
  std::filesystem::create_directories(root_);
}

std::string segment_object_key(const proto::Manifest& m) {
  char seq[32];
  std::snprintf(seq, sizeof seq, "%08llu", static_cast<unsigned long long>(m.seq));
  return m.camera_serial + "/" + seq + "-" + proto::to_hex(m.sha256) + ".seg";
}

std::string beside_key(const proto::Manifest& m, std::string_view suffix) {
  auto k = segment_object_key(m);
  k.resize(k.size() - 4);
  return k.append(suffix);
}

std::string safe_key_part(std::string_view name) {
  if (proto::valid_serial(name)) return std::string(name);
  const auto d = proto::Sha256::of(proto::ByteView(reinterpret_cast<const std::uint8_t*>(name.data()), name.size()));
  return "h-" + proto::to_hex(d).substr(0, 32);
}

std::string LocalDirSink::object_key(const proto::Manifest& m) { return segment_object_key(m); }

boost::asio::awaitable<StoreResult> LocalDirSink::store(const SpoolFile& spool, const proto::Manifest& m, const Custody& custody) {
  return run_blocking(pool_, [this, spool_file = spool.path, &m, &custody] { return store_blocking(spool_file, m, custody); });
}

boost::asio::awaitable<MaybeFailure> LocalDirSink::store_record(std::string key, std::string bytes) {
  auto path = root_ / key;
  return run_blocking(pool_, [path = std::move(path), bytes = std::move(bytes)]() -> MaybeFailure {
    std::error_code fs_ec;
    if (std::filesystem::exists(path, fs_ec)) return std::nullopt;
    const bool new_dir = !std::filesystem::exists(path.parent_path(), fs_ec);
    std::filesystem::create_directories(path.parent_path(), fs_ec);
    if (fs_ec) return StoreFailure(boost::system::error_code(fs_ec.value(), boost::system::generic_category()), "create " + path.parent_path().string());
    if (new_dir)
      if (auto ec = sync_dir(path.parent_path().parent_path())) return StoreFailure(ec, "sync " + path.parent_path().string());
    if (auto ec = write_file_atomic(path, bytes)) return StoreFailure(ec, "write " + path.string());
    return std::nullopt;
  });
}

StoreResult LocalDirSink::store_blocking(const std::filesystem::path& spool_file, const proto::Manifest& m, const Custody& custody) const {
  const auto key = object_key(m);
  const auto final_path = root_ / key;
  const auto dir = final_path.parent_path();
  std::error_code fs_ec;
  const bool new_dir = !std::filesystem::exists(dir, fs_ec);
  std::filesystem::create_directories(dir, fs_ec);
  if (fs_ec) return boost::system::error_code(fs_ec.value(), boost::system::generic_category());
  // A new camera directory must itself survive a power cut before anything in it counts.
  if (new_dir)
    if (auto ec = sync_dir(root_)) return ec;

  // The manifest goes first: a segment file never exists without its manifest beside it. It is
  // never replaced: the same key with other metadata is a conflict, not an update.
  // The dock's custody note rides along under "custody"; the first one written stands.
  const auto manifest_path = dir / (final_path.stem().string() + ".manifest.json");
  const auto camera_part = boost::json::serialize(proto::manifest_to_json(m));
  const auto manifest_text = boost::json::serialize(manifest_with_custody(m, custody)) + "\n";
  if (std::filesystem::exists(manifest_path, fs_ec)) {
    std::ifstream in(manifest_path, std::ios::binary);
    const std::string have((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    boost::system::error_code jec;
    auto existing = boost::json::parse(have, jec);
    if (jec || !existing.is_object()) return make_error_code(sink_errc::object_conflict);
    existing.as_object().erase("custody");
    if (boost::json::serialize(existing) != camera_part) return make_error_code(sink_errc::object_conflict);
  } else if (auto ec = write_file_atomic(manifest_path, manifest_text)) {
    return ec;
  }

  if (std::filesystem::exists(final_path, fs_ec)) {
    // Stored before (a retry after a crash): recognise it by hash, and make sure it is durable
    // (the crash may have come between the rename and the directory fsync).
    std::uint64_t size = 0;
    auto have = hash_file(final_path, size);
    if (!have) return have.error();
    if (!proto::digest_equal(*have, m.sha256) || size != m.size) return make_error_code(sink_errc::object_conflict);
    auto fd = open_file(final_path, O_RDONLY);
    if (!fd) return fd.error();
    if (auto ec = sync_file(fd->get())) return ec;
    if (auto ec = sync_dir(dir)) return ec;
    return StoreReceipt{key, *have, size};
  }

  auto src = open_file(spool_file, O_RDONLY);
  if (!src) return make_error_code(sink_errc::spool_unreadable);
  const auto tmp = dir / ("." + final_path.filename().string() + ".tmp");
  auto dst = open_file(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0640);
  if (!dst) return dst.error();
  std::vector<std::uint8_t> buf(kCopyBlock);
  proto::Sha256 h;
  std::uint64_t off = 0;
  for (;;) {
    auto n = read_at(src->get(), buf, off);
    if (!n) return make_error_code(sink_errc::spool_unreadable);
    if (*n == 0) break;
    const proto::ByteView block(buf.data(), *n);
    h.update(block);
    if (auto ec = write_all_at(dst->get(), block, off)) return ec;
    off += *n;
  }
  const auto digest = h.finish();
  if (off != m.size || !proto::digest_equal(digest, m.sha256)) {
    std::filesystem::remove(tmp, fs_ec);
    return make_error_code(sink_errc::content_mismatch);
  }
  if (auto ec = sync_file(dst->get())) return ec;
  if (::rename(tmp.c_str(), final_path.c_str()) != 0) return boost::system::error_code(errno, boost::system::generic_category());
  if (auto ec = sync_dir(dir)) return ec;
  return StoreReceipt{key, digest, off};
}

}  // namespace bodydock::dock
