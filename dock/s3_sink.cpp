#include "dock/s3_sink.hpp"

#include "dock/blocking.hpp"
#include "dock/files.hpp"
#include "dock/local_sink.hpp"
#include "dock/log.hpp"
#include "proto/sha256.hpp"

#include <boost/json.hpp>

#include <fcntl.h>

#include <stdexcept>

namespace bodydock::dock {
namespace {

using Result = boost::system::result<StoreReceipt>;

/// One part of the spool file, read on the pool: its bytes.
struct Chunk {
  std::string bytes;
  bool ok = false;
};

auto read_part(boost::asio::thread_pool& pool, std::filesystem::path file, std::uint64_t offset, std::size_t length) {
  return run_blocking(pool, [file = std::move(file), offset, length] {
    Chunk c;
    auto fd = open_file(file, O_RDONLY);
    if (!fd) return c;
    c.bytes.resize(length);
    std::size_t done = 0;
    while (done < length) {
      auto n = read_at(fd->get(), std::span(reinterpret_cast<std::uint8_t*>(c.bytes.data()) + done, length - done), offset + done);
      if (!n || *n == 0) return c;
      done += *n;
    }
    c.ok = true;
    return c;
  });
}

std::string unquote(std::string e) {
  if (e.size() >= 2 && e.front() == '"' && e.back() == '"') e = e.substr(1, e.size() - 2);
  return e;
}

boost::system::error_code storage_error(const s3::Response& r, const std::string& what) {
  log(Level::error, "S3 ", what, ": HTTP ", r.status, " ", r.error_code());
  return make_error_code(sink_errc::storage_error);
}

s3::Client::Headers metadata(const proto::Manifest& m, const Custody& c) {
  s3::Client::Headers h = {
      {"x-amz-meta-camera", m.camera_serial},
      {"x-amz-meta-seq", std::to_string(m.seq)},
      {"x-amz-meta-recording-id", m.recording_id},
      {"x-amz-meta-start-utc-ms", std::to_string(m.start_utc_ms)},
      {"x-amz-meta-end-utc-ms", std::to_string(m.end_utc_ms)},
      {"x-amz-meta-trigger-on", m.trigger_on},
      {"x-amz-meta-trigger-off", m.trigger_off},
      {"x-amz-meta-firmware", m.firmware},
      {"x-amz-meta-sha256", proto::to_hex(m.sha256)},
      {"x-amz-meta-size", std::to_string(m.size)},
      {"x-amz-meta-manifest-sha256", proto::to_hex(proto::manifest_hash(m))},
  };
  if (!c.dock_id.empty()) h.push_back({"x-amz-meta-dock", c.dock_id});
  if (!c.officer.empty()) h.push_back({"x-amz-meta-officer", c.officer});
  if (c.clock_drift_ms) h.push_back({"x-amz-meta-camera-clock-minus-dock-ms", std::to_string(*c.clock_drift_ms)});
  return h;
}

}  // namespace

S3Location S3Location::parse(std::string_view url) {
  constexpr std::string_view scheme = "s3://";
  if (!url.starts_with(scheme)) throw std::invalid_argument("'" + std::string(url) + "' is not an s3://BUCKET[/PREFIX] address");
  auto rest = url.substr(scheme.size());
  S3Location l;
  const auto slash = rest.find('/');
  l.bucket = std::string(rest.substr(0, slash));
  if (slash != std::string_view::npos) l.prefix = std::string(rest.substr(slash + 1));
  if (!l.prefix.empty() && l.prefix.back() != '/') l.prefix += '/';
  const bool bucket_ok = l.bucket.size() >= 3 && l.bucket.size() <= 63 &&
                         std::all_of(l.bucket.begin(), l.bucket.end(), [](char c) { return std::islower(static_cast<unsigned char>(c)) || std::isdigit(static_cast<unsigned char>(c)) || c == '-' || c == '.'; });
  if (!bucket_ok) throw std::invalid_argument("'" + l.bucket + "' is not a valid bucket name (3..63 of a-z 0-9 . -)");
  return l;
}

S3Sink::S3Sink(s3::Client& client, S3Location where, boost::asio::thread_pool& pool, std::size_t part_size)
    : client_(client), where_(std::move(where)), pool_(pool), part_size_(std::max<std::size_t>(part_size, 5u << 20)) {}

std::string S3Sink::describe() const {
  return "s3://" + where_.bucket + "/" + where_.prefix + " at " + client_.endpoint().host + ":" + std::to_string(client_.endpoint().port);
}

boost::asio::awaitable<Result> S3Sink::store(const std::filesystem::path& spool_file, const proto::Manifest& m, const Custody& custody) {
  const auto key = where_.prefix + LocalDirSink::object_key(m);
  auto manifest_key = key.substr(0, key.size() - 4) + ".manifest.json";
  auto meta = metadata(m, custody);

  // The manifest first, never replaced (the first custody note stands).
  const auto manifest_text = boost::json::serialize(manifest_with_custody(m, custody)) + "\n";
  s3::Client::Headers json_type;  // (named: g++ 12 mishandles braced lists inside co_await)
  json_type.push_back({"Content-Type", "application/json"});
  auto mr = co_await client_.put_new_object(where_.bucket, manifest_key, manifest_text, std::move(json_type));
  if (!mr) co_return mr.error();
  if (!mr->ok() && mr->status != 412) co_return storage_error(*mr, "PUT " + manifest_key);

  // Already there (a retry after a crash): stored if it is this segment, else a conflict.
  auto head = co_await client_.head_object(where_.bucket, key);
  if (!head) co_return head.error();
  if (head->ok()) {
    if (head->header("x-amz-meta-sha256") == proto::to_hex(m.sha256) && head->header("content-length") == std::to_string(m.size))
      co_return StoreReceipt{key, m.sha256, m.size};
    co_return make_error_code(sink_errc::object_conflict);
  }
  if (head->status != 404) co_return storage_error(*head, "HEAD " + key);

  if (m.size > part_size_) co_return co_await store_multipart(spool_file, m, key, std::move(meta));

  auto whole = co_await read_part(pool_, spool_file, 0, static_cast<std::size_t>(m.size));
  if (!whole.ok) co_return make_error_code(sink_errc::spool_unreadable);
  const auto digest = proto::Sha256::of(proto::ByteView(reinterpret_cast<const std::uint8_t*>(whole.bytes.data()), whole.bytes.size()));
  if (!proto::digest_equal(digest, m.sha256)) co_return make_error_code(sink_errc::content_mismatch);
  const auto md5 = s3::md5_hex(whole.bytes);
  auto put = co_await client_.put_new_object(where_.bucket, key, std::move(whole.bytes), std::move(meta));
  if (!put) co_return put.error();
  if (put->status == 412) co_return make_error_code(sink_errc::object_conflict);  // appeared meanwhile: look again next time
  if (!put->ok()) co_return storage_error(*put, "PUT " + key);
  // What storage now holds must be exactly these bytes.
  auto check = co_await client_.head_object(where_.bucket, key);
  if (!check) co_return check.error();
  if (!check->ok() || unquote(check->header("etag")) != md5 || check->header("content-length") != std::to_string(m.size))
    co_return storage_error(*check, "HEAD after PUT " + key + " (ETag or size differ)");
  co_return StoreReceipt{key, digest, m.size};
}

boost::asio::awaitable<Result> S3Sink::store_multipart(const std::filesystem::path& spool_file, const proto::Manifest& m, std::string key,
                                                       s3::Client::Headers meta) {
  auto started = co_await client_.create_multipart(where_.bucket, key, std::move(meta));
  if (!started) co_return started.error();
  if (!started->ok()) co_return storage_error(*started, "create multipart " + key);
  const auto upload_id = s3::xml_field(started->body, "UploadId");
  if (upload_id.empty()) co_return storage_error(*started, "create multipart " + key + " (no UploadId)");
  proto::Sha256 whole;
  std::vector<s3::Part> parts;
  std::vector<std::string> md5s;
  boost::system::error_code failure;
  for (std::uint64_t off = 0; off < m.size && !failure; off += part_size_) {
    const auto len = static_cast<std::size_t>(std::min<std::uint64_t>(part_size_, m.size - off));
    auto part = co_await read_part(pool_, spool_file, off, len);
    if (!part.ok) {
      failure = make_error_code(sink_errc::spool_unreadable);
      break;
    }
    whole.update(proto::ByteView(reinterpret_cast<const std::uint8_t*>(part.bytes.data()), part.bytes.size()));
    md5s.push_back(s3::md5_hex(part.bytes));
    const auto number = static_cast<unsigned>(parts.size() + 1);
    auto r = co_await client_.upload_part(where_.bucket, key, upload_id, number, std::move(part.bytes));
    if (!r) failure = r.error();
    else if (!r->ok()) failure = storage_error(*r, "upload part " + std::to_string(number) + " of " + key);
    else parts.push_back({number, r->header("etag")});
  }
  const auto digest = whole.finish();
  if (!failure && !proto::digest_equal(digest, m.sha256)) failure = make_error_code(sink_errc::content_mismatch);
  if (!failure) {
    auto done = co_await client_.complete_multipart(where_.bucket, key, upload_id, parts);
    if (!done) failure = done.error();
    else if (!done->ok() || !done->error_code().empty()) failure = storage_error(*done, "complete multipart " + key);
  }
  if (failure) {
    // Leave no orphan parts behind; the next attempt starts a fresh upload.
    (void)co_await client_.abort_multipart(where_.bucket, key, upload_id);
    co_return failure;
  }
  auto check = co_await client_.head_object(where_.bucket, key);
  if (!check) co_return check.error();
  if (!check->ok() || unquote(check->header("etag")) != s3::multipart_etag(md5s) || check->header("content-length") != std::to_string(m.size))
    co_return storage_error(*check, "HEAD after multipart " + key + " (ETag or size differ)");
  co_return StoreReceipt{key, digest, m.size};
}

}  // namespace bodydock::dock
