#include "dock/s3_sink.hpp"

#include "dock/blocking.hpp"
#include "dock/files.hpp"
#include "dock/log.hpp"
#include "proto/sha256.hpp"

#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/json.hpp>

#include <fcntl.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <ctime>
#include <stdexcept>
#include <utility>

namespace bodydock::dock {
using namespace boost::asio::experimental::awaitable_operators;
namespace {

using Result = StoreResult;

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

/// A transport failure (connect, reset, timeout): transient.
StoreFailure transport(boost::system::error_code ec, const std::string& what) { return {ec, what}; }

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

StoreFailure classify_answer(const s3::Response& r, const std::string& what) {
  const auto code = r.error_code();
  std::string detail = "HTTP " + std::to_string(r.status) + (code.empty() ? "" : " " + code) + " on " + what;
  if (code == "RequestTimeTooSkewed") return {sink_errc::clock_skew, std::move(detail)};
  // Transient: the server is busy or failing, or the body was damaged on the way (the server
  // checked Content-MD5 / x-amz-content-sha256 and refused it), or an upload it forgot.
  static constexpr std::string_view kTransient[] = {"SlowDown", "BadDigest", "XAmzContentSHA256Mismatch", "IncompleteBody",
                                                    "RequestTimeout", "InternalError", "ServiceUnavailable", "NoSuchUpload"};
  const bool transient = r.status >= 500 || r.status == 429 || r.status == 408 ||
                         std::find(std::begin(kTransient), std::end(kTransient), code) != std::end(kTransient);
  // Anything else (403 AccessDenied, SignatureDoesNotMatch, InvalidAccessKeyId, QuotaExceeded,
  // 404 NoSuchBucket, other 4xx): the same request would be refused again.
  return {transient ? sink_errc::storage_error : sink_errc::storage_refused, std::move(detail)};
}

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

Retention Retention::make(std::string_view mode, unsigned days) {
  Retention r;
  std::string m(mode);
  std::transform(m.begin(), m.end(), m.begin(), [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
  if (days == 0) return r;
  if (m != "COMPLIANCE" && m != "GOVERNANCE") throw std::invalid_argument("retention mode '" + std::string(mode) + "' is not compliance or governance");
  if (days > 36500) throw std::invalid_argument("retention of " + std::to_string(days) + " days is more than 100 years");
  r.mode = m;
  r.days = days;
  return r;
}

S3Sink::S3Sink(s3::Client& client, S3Location where, boost::asio::thread_pool& pool, std::size_t part_size, Retention retention)
    : client_(client), where_(std::move(where)), pool_(pool), part_size_(std::max<std::size_t>(part_size, 5u << 20)), retention_(std::move(retention)) {}

s3::Client::Headers S3Sink::retention_headers() const {
  s3::Client::Headers h;
  if (retention_.mode.empty()) return h;
  const auto until = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now() + std::chrono::hours(24) * retention_.days);
  std::tm tm{};
  gmtime_r(&until, &tm);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &tm);
  h.push_back({"x-amz-object-lock-mode", retention_.mode});
  h.push_back({"x-amz-object-lock-retain-until-date", text});
  return h;
}

StoreFailure S3Sink::answer_failure(const s3::Response& r, const std::string& what) {
  auto f = classify_answer(r, what);
  if (f == sink_errc::clock_skew) {
    // The clock check: storage's Date says how far off the dock's clock is. Requests are signed
    // with storage's time from now on, so footage keeps flowing; the alert stays until the
    // dock's own clock is right (its audit and custody times depend on it).
    if (const auto server = s3::http_date(r.header("date"))) {
      const auto offset = std::chrono::duration_cast<std::chrono::milliseconds>(*server - std::chrono::system_clock::now());
      const auto off_by = std::chrono::duration_cast<std::chrono::seconds>(client_.clock_offset() - offset).count();
      client_.set_clock_offset(offset);
      f.detail += "; the dock's clock is " + std::to_string(off_by < 0 ? -off_by : off_by) + " s " + (off_by < 0 ? "behind" : "ahead of") +
                  " storage's; signing with storage's time";
      log(Level::warning, "S3: ", f.detail);
    }
  }
  return f;
}

boost::asio::awaitable<MaybeFailure> S3Sink::check_bucket() {
  if (bucket_checked_ || retention_.mode.empty()) co_return std::nullopt;
  std::vector<s3::QueryParam> q;
  q.push_back({"object-lock", ""});
  auto r = co_await client_.request("GET", where_.bucket, {}, std::move(q), {}, {});
  if (!r) co_return transport(r.error(), "GET object lock configuration of " + where_.bucket);
  if (!r->ok() && r->error_code() != "ObjectLockConfigurationNotFoundError") co_return answer_failure(*r, "GET object lock configuration of " + where_.bucket);
  if (s3::xml_field(r->body, "ObjectLockEnabled") != "Enabled")
    co_return StoreFailure(sink_errc::storage_refused, "bucket " + where_.bucket + " has no Object Lock, but " + retention_.mode + " retention of " +
                                                           std::to_string(retention_.days) + " days is configured");
  bucket_checked_ = true;
  co_return std::nullopt;
}

boost::asio::awaitable<MaybeFailure> S3Sink::put_retention(const std::string& key) {
  // RGW 16 does not apply the Object Lock headers of CreateMultipartUpload: the retention is
  // set on the completed object (PutObjectRetention; extending it is always allowed).
  if (retention_.mode.empty()) co_return std::nullopt;
  const auto h = retention_headers();
  std::string xml = "<Retention xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Mode>" + h[0].value + "</Mode><RetainUntilDate>" + h[1].value +
                    "</RetainUntilDate></Retention>";
  std::vector<s3::QueryParam> q;
  q.push_back({"retention", ""});
  auto r = co_await client_.request("PUT", where_.bucket, key, std::move(q), {}, std::move(xml));
  if (!r) co_return transport(r.error(), "PUT retention of " + key);
  if (!r->ok()) co_return answer_failure(*r, "PUT retention of " + key);
  co_return std::nullopt;
}

boost::asio::awaitable<MaybeFailure> S3Sink::store_record(std::string relative_key, std::string bytes) {
  const auto key = where_.prefix + relative_key;
  auto headers = retention_headers();
  if (key.ends_with(".json")) headers.push_back({"Content-Type", "application/json"});
  else if (key.ends_with(".jsonl")) headers.push_back({"Content-Type", "application/x-ndjson"});
  else headers.push_back({"Content-Type", "application/octet-stream"});
  auto r = co_await client_.put_new_object(where_.bucket, key, std::move(bytes), std::move(headers));
  if (!r) co_return transport(r.error(), "PUT " + key);
  if (!r->ok() && r->status != 412) co_return answer_failure(*r, "PUT " + key);
  co_return std::nullopt;
}

std::string S3Sink::describe() const {
  return "s3://" + where_.bucket + "/" + where_.prefix + " at " + client_.endpoint().host + ":" + std::to_string(client_.endpoint().port);
}

boost::asio::awaitable<Result> S3Sink::store(const SpoolFile& spool, const proto::Manifest& m, const Custody& custody) {
  const auto& spool_file = spool.path;
  const auto key = where_.prefix + segment_object_key(m);
  auto manifest_key = key.substr(0, key.size() - 4) + ".manifest.json";
  auto meta = metadata(m, custody);
  for (auto& h : retention_headers()) meta.push_back(std::move(h));

  // The manifest first, never replaced (the first custody note stands).
  const auto manifest_text = boost::json::serialize(manifest_with_custody(m, custody)) + "\n";
  if (auto failed = co_await check_bucket()) co_return *failed;
  auto json_type = retention_headers();  // (named: g++ 12 mishandles braced lists inside co_await)
  json_type.push_back({"Content-Type", "application/json"});
  auto mr = co_await client_.put_new_object(where_.bucket, manifest_key, manifest_text, std::move(json_type));
  if (!mr) co_return transport(mr.error(), "PUT " + manifest_key);
  if (!mr->ok() && mr->status != 412) co_return answer_failure(*mr, "PUT " + manifest_key);

  // Already there (a retry after a crash): stored if it is this segment, else a conflict.
  auto head = co_await client_.head_object(where_.bucket, key);
  if (!head) co_return transport(head.error(), "HEAD " + key);
  if (head->ok()) {
    std::optional<UploadRecord> left;
    if (journal_) left = co_await journal_->find_upload(key);
    if (left) co_await forget_upload(key, left->upload_id);  // completed before a crash, or in conflict: nothing to continue
    // Ours only if it says so and its ETag is the one the spool's bytes give: storage computed
    // that ETag from what it received.
    if (head->header("x-amz-meta-sha256") == proto::to_hex(m.sha256) && head->header("content-length") == std::to_string(m.size)) {
      const auto md5s = co_await part_md5s(spool_file, m.size);
      if (md5s.empty()) co_return make_error_code(sink_errc::spool_unreadable);
      const auto etag = s3::bare_etag(head->header("etag"));
      // (A crash may have come between completing the upload and its retention.) A one-part
      // object with a plain MD5 ETag was stored by a single PUT, which carried its retention.
      if (etag == s3::multipart_etag(md5s)) {
        if (auto failed = co_await put_retention(key)) co_return *failed;
        co_return StoreReceipt{key, m.sha256, m.size};
      }
      if (md5s.size() == 1 && etag == md5s.front()) co_return StoreReceipt{key, m.sha256, m.size};
    }
    co_return StoreFailure(sink_errc::object_conflict, key);
  }
  if (head->status != 404) co_return answer_failure(*head, "HEAD " + key);

  // Every segment goes as a multipart upload, a small one as a single part. A single PUT that
  // outlived its deadline (a stalled link) cannot be called back: it may still land after the
  // retry stored the object, as a second version, since storage checks If-None-Match when a
  // request starts, not when it commits. Only a CompleteMultipartUpload makes an object, only
  // the dock sends it, and a late one finds its upload already completed (NoSuchUpload).
  co_return co_await store_multipart(spool, m, key, std::move(meta));
}

boost::asio::awaitable<std::vector<std::string>> S3Sink::part_md5s(const std::filesystem::path& spool_file, std::uint64_t size) {
  std::vector<std::string> md5s;
  for (std::uint64_t off = 0; off < size; off += part_size_) {
    auto part = co_await read_part(pool_, spool_file, off, static_cast<std::size_t>(std::min<std::uint64_t>(part_size_, size - off)));
    if (!part.ok) co_return std::vector<std::string>();
    md5s.push_back(s3::md5_hex(part.bytes));
  }
  co_return md5s;
}

boost::asio::awaitable<S3Sink::PreparedPart> S3Sink::prepare_part(const std::filesystem::path& spool_file, std::uint64_t size, unsigned index,
                                                                  SpoolCheck& whole, std::string buffer) {
  return run_blocking(pool_, [file = spool_file, size, index, part = part_size_, &whole, buffer = std::move(buffer)]() mutable {
    PreparedPart p;
    p.bytes = std::move(buffer);
    const auto offset = std::uint64_t{index} * part;
    const auto length = static_cast<std::size_t>(std::min<std::uint64_t>(part, size - offset));
    auto fd = open_file(file, O_RDONLY);
    if (!fd) return p;
    p.bytes.resize(length);  // a reused buffer is the right size already: nothing to clear
    for (std::size_t done = 0; done < length;) {
      auto n = read_at(fd->get(), std::span(reinterpret_cast<std::uint8_t*>(p.bytes.data()) + done, length - done), offset + done);
      if (!n || *n == 0) return p;
      done += *n;
    }
    const proto::ByteView view(reinterpret_cast<const std::uint8_t*>(p.bytes.data()), p.bytes.size());
    whole.update(view);  // parts are prepared strictly in order
    p.md5 = s3::md5_hex(p.bytes);
    p.sha256 = proto::to_hex(proto::Sha256::of(view));
    p.ok = true;
    return p;
  });
}

std::string S3Sink::take_buffer() {
  if (buffers_.empty()) return {};
  auto b = std::move(buffers_.back());
  buffers_.pop_back();
  return b;
}

void S3Sink::give_buffer(std::string buffer) {
  if (buffer.capacity() >= part_size_ && buffers_.size() < kKeptBuffers) buffers_.push_back(std::move(buffer));
}

boost::asio::awaitable<s3::Client::Result> S3Sink::send_part(const std::string& key, const std::string& upload_id, unsigned number,
                                                             PreparedPart& part) {
  s3::Client::Headers digests;  // hashed once, on the pool, not again by the client
  digests.push_back({"Content-MD5", s3::md5_base64_of_hex(part.md5)});
  digests.push_back({"x-amz-content-sha256", part.sha256});
  co_return co_await client_.upload_part(where_.bucket, key, upload_id, number, part.bytes, std::move(digests));
}

boost::asio::awaitable<void> S3Sink::forget_upload(std::string key, std::string upload_id) {
  auto r = co_await client_.abort_multipart(where_.bucket, key, upload_id);
  if (r && (r->ok() || r->status == 404)) {
    if (journal_) co_await journal_->upload_ended(key);
  } else {
    log(Level::warning, "S3 abort of upload ", upload_id, " of ", key, " failed (", r ? classify_answer(*r, "abort").message() : r.error().message(),
        "); tried again later");
  }
}

boost::asio::awaitable<Result> S3Sink::resume_point(const std::string& key, std::string& upload_id, std::map<unsigned, UploadedPart>& done) {
  upload_id.clear();
  done.clear();
  if (!journal_) co_return StoreReceipt{};
  auto rec = co_await journal_->find_upload(key);
  if (!rec) co_return StoreReceipt{};
  if (rec->part_size != part_size_) {  // the part size was changed since: start over
    co_await forget_upload(key, rec->upload_id);
    co_return StoreReceipt{};
  }
  auto listed = co_await client_.list_parts(where_.bucket, key, rec->upload_id);
  if (!listed) co_return transport(listed.error(), "list parts of " + key);
  if (listed->status == 404) {
    co_await journal_->upload_ended(key);
    // Completed meanwhile (an earlier attempt's CompleteMultipartUpload, late): the next attempt
    // finds the object and checks it. A fresh upload now would make a second version.
    auto head = co_await client_.head_object(where_.bucket, key);
    if (!head) co_return transport(head.error(), "HEAD " + key);
    if (head->ok()) co_return StoreFailure(sink_errc::storage_error, "upload " + rec->upload_id + " of " + key + " completed meanwhile; looking again");
    // Storage no longer knows it (aborted, expired): start over.
    log(Level::warning, "S3 ", key, ": upload ", rec->upload_id, " is gone from storage; starting again");
    co_return StoreReceipt{};
  }
  if (!listed->ok()) co_return answer_failure(*listed, "list parts of " + key);
  // A part counts as sent only when storage lists it with the ETag it gave the dock for it.
  for (const auto& part : s3::xml_all(listed->body, "Part")) {
    const auto number_text = s3::xml_field(part, "PartNumber");
    const auto number = static_cast<unsigned>(std::strtoul(number_text.c_str(), nullptr, 10));
    auto it = rec->parts.find(number);
    if (it != rec->parts.end() && s3::bare_etag(s3::xml_field(part, "ETag")) == s3::bare_etag(it->second.etag)) done.insert(*it);
  }
  upload_id = rec->upload_id;
  log(Level::notice, "S3 ", key, ": continuing upload ", upload_id, " (", done.size(), " part(s) already stored)");
  co_return StoreReceipt{};
}

boost::asio::awaitable<Result> S3Sink::store_multipart(const SpoolFile& spool, const proto::Manifest& m, std::string key,
                                                       s3::Client::Headers meta) {
  const auto& spool_file = spool.path;
  std::string upload_id;
  std::map<unsigned, UploadedPart> done;
  if (auto r = co_await resume_point(key, upload_id, done); !r) co_return r.error();
  // Uploads of this key that the journal does not know (a crash between starting one and
  // noting it, or a start that outlived its deadline) are orphans: abort them so no parts are
  // left behind, and so that no late CompleteMultipartUpload of theirs can make a version.
  if (auto failed = co_await abort_orphans(key, upload_id)) co_return *failed;
  if (upload_id.empty()) {
    auto started = co_await client_.create_multipart(where_.bucket, key, std::move(meta));
    if (!started) co_return transport(started.error(), "create multipart " + key);
    if (!started->ok()) co_return answer_failure(*started, "create multipart " + key);
    upload_id = s3::xml_field(started->body, "UploadId");
    if (upload_id.empty()) co_return StoreFailure(sink_errc::storage_error, "create multipart " + key + ": no UploadId in the answer");
    if (journal_) co_await journal_->upload_begun(key, upload_id, part_size_);
    log(Level::info, "S3 ", key, ": upload ", upload_id, " started");
  }
  // Part i+1 is read and hashed on the pool while part i is on the wire, so the link and the
  // server never wait for the dock's disk or hashing. Each part is hashed twice over (MD5 and
  // SHA-256, for storage to check); that the spool still holds what the pull verified is
  // checked with the pull's spool sum, which costs a tenth of a third hash.
  SpoolCheck whole(spool.sum, m.sha256);
  std::vector<s3::Part> parts;
  std::vector<std::string> md5s;
  std::optional<StoreFailure> failure;
  bool spool_bad = false;
  const auto count = static_cast<unsigned>((m.size + part_size_ - 1) / part_size_);
  auto cur = co_await prepare_part(spool_file, m.size, 0, whole, take_buffer());
  std::string spare = take_buffer();  // the buffer of the part before, for the part after
  for (unsigned i = 0; i < count; ++i) {
    const unsigned number = i + 1;
    if (!cur.ok) {
      failure = StoreFailure(sink_errc::spool_unreadable);
      spool_bad = true;
      break;
    }
    md5s.push_back(cur.md5);
    PreparedPart next;
    const bool more = number < count;
    // Sent before (this upload, an earlier attempt): the same bytes need not go again.
    if (auto it = done.find(number); it != done.end() && it->second.md5 == cur.md5) {
      parts.push_back({number, it->second.etag});
      if (more) next = co_await prepare_part(spool_file, m.size, number, whole, std::move(spare));
      spare = std::move(cur.bytes);
      cur = std::move(next);
      continue;
    }
    const auto md5 = cur.md5;
    s3::Client::Result r = boost::system::error_code{};
    if (more) {
      // The spare buffer goes to the next part and spare is left empty, also when this part
      // fails and the loop ends here.
      // A named local, not a temporary, goes into the coroutine (see blocking.hpp).
      std::string reuse = std::exchange(spare, {});
      auto [sent, prepared] = co_await (send_part(key, upload_id, number, cur) && prepare_part(spool_file, m.size, number, whole, std::move(reuse)));
      r = std::move(sent);
      next = std::move(prepared);
    } else {
      r = co_await send_part(key, upload_id, number, cur);
    }
    if (!r) {
      failure = transport(r.error(), "upload part " + std::to_string(number) + " of " + key);
      break;
    }
    if (!r->ok()) {
      failure = answer_failure(*r, "upload part " + std::to_string(number) + " of " + key);
      break;
    }
    UploadedPart sent;
    sent.etag = r->header("etag");
    sent.md5 = md5;
    parts.push_back({number, sent.etag});
    if (journal_) co_await journal_->part_done(key, number, std::move(sent));
    log(Level::debug, "S3 ", key, ": part ", number, " stored");
    spare = std::move(cur.bytes);
    cur = std::move(next);
  }
  give_buffer(std::move(cur.bytes));
  give_buffer(std::move(spare));
  if (!failure && !whole.matches()) {
    failure = StoreFailure(sink_errc::content_mismatch);
    spool_bad = true;
  }
  if (!failure) {
    auto fin = co_await client_.complete_multipart(where_.bucket, key, upload_id, parts);
    if (!fin) failure = transport(fin.error(), "complete multipart " + key);
    else if (!fin->ok() || !fin->error_code().empty()) failure = answer_failure(*fin, "complete multipart " + key);
    else if (journal_) co_await journal_->upload_ended(key);
  }
  if (failure) {
    // The spool copy is bad: the segment is pulled again and uploaded afresh, so leave no parts
    // behind. Otherwise the upload stays, and the next attempt continues it.
    if (spool_bad) co_await forget_upload(key, upload_id);
    co_return *failure;
  }
  auto check = co_await client_.head_object(where_.bucket, key);
  if (!check) co_return transport(check.error(), "HEAD " + key);
  if (!check->ok()) co_return answer_failure(*check, "HEAD after multipart " + key);
  if (s3::bare_etag(check->header("etag")) != s3::multipart_etag(md5s) || check->header("content-length") != std::to_string(m.size))
    co_return StoreFailure(sink_errc::storage_error, "HEAD after multipart " + key + ": ETag or size differ from what was sent");
  if (auto failed = co_await put_retention(key)) co_return *failed;
  // A start that outlived its deadline may have landed since the first look: the object is
  // stored, so every upload of its key is an orphan now.
  if (auto failed = co_await abort_orphans(key, {})) log(Level::warning, "S3 ", key, ": stored, but orphan uploads remain: ", failed->message());
  co_return StoreReceipt{key, m.sha256, m.size};
}

boost::asio::awaitable<MaybeFailure> S3Sink::abort_orphans(const std::string& key, const std::string& keep) {
  auto listed = co_await client_.list_multipart_uploads(where_.bucket, key);
  if (!listed) co_return transport(listed.error(), "list uploads of " + key);
  if (!listed->ok()) co_return answer_failure(*listed, "list uploads of " + key);
  for (const auto& u : s3::multipart_uploads(listed->body)) {
    if (u.key != key || u.upload_id == keep) continue;
    log(Level::notice, "S3 ", key, ": aborting orphan upload ", u.upload_id);
    auto r = co_await client_.abort_multipart(where_.bucket, key, u.upload_id);
    if (!r) co_return transport(r.error(), "abort orphan upload of " + key);
    if (!r->ok() && r->status != 404) co_return answer_failure(*r, "abort orphan upload of " + key);
  }
  co_return std::nullopt;
}

}  // namespace bodydock::dock
