#include "dock/audit.hpp"

#include "proto/sha256.hpp"

#include <boost/json.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <ctime>
#include <fstream>
#include <sstream>
#include <system_error>

namespace bodydock::dock {

namespace json = boost::json;

namespace {

std::string utc_now() {
  const auto now = std::chrono::system_clock::now();
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
  const std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char b[80];
  std::snprintf(b, sizeof b, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                tm.tm_sec, static_cast<int>(ms % 1000));
  return b;
}

[[noreturn]] void fail(const std::string& what, int err) { throw std::system_error(err, std::generic_category(), what); }

std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::vector<std::string_view> lines_of(std::string_view text) {
  std::vector<std::string_view> out;
  while (!text.empty()) {
    const auto nl = text.find('\n');
    out.push_back(text.substr(0, nl));
    if (nl == std::string_view::npos) break;
    text.remove_prefix(nl + 1);
  }
  return out;
}

}  // namespace

std::string audit_line_hash(std::string_view line) {
  return proto::to_hex(proto::Sha256::of(proto::ByteView(reinterpret_cast<const std::uint8_t*>(line.data()), line.size())));
}

AuditLog::AuditLog(std::filesystem::path file) : file_(std::move(file)), hash_(kAuditGenesis) {
  std::filesystem::create_directories(file_.parent_path());
  fd_ = ::open(file_.c_str(), O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
  if (fd_ < 0) fail("cannot open the audit log " + file_.string(), errno);
  const auto text = slurp(file_);
  auto whole = std::string_view(text);
  if (!whole.empty() && whole.back() != '\n') {
    // A crash tore the last write: that entry was never confirmed. Cut it, say so next time.
    const auto keep = whole.rfind('\n') == std::string_view::npos ? 0 : whole.rfind('\n') + 1;
    torn_ = std::to_string(whole.size() - keep) + " bytes";
    if (::ftruncate(fd_, static_cast<off_t>(keep)) != 0) fail("cannot cut the torn end of the audit log", errno);
    whole = whole.substr(0, keep);
  }
  size_ = whole.size();
  const auto lines = lines_of(whole);
  if (lines.empty()) return;
  const auto& last = lines.back();
  boost::system::error_code ec;
  auto v = json::parse(last, ec);
  if (ec || !v.is_object() || !v.as_object().contains("seq") || !v.as_object().at("seq").is_number())
    throw std::runtime_error("the audit log's last entry is not readable; run `dockctl audit verify`");
  seq_ = v.as_object().at("seq").to_number<std::uint64_t>();
  hash_ = audit_line_hash(last);
}

AuditLog::~AuditLog() {
  if (fd_ >= 0) ::close(fd_);
}

std::pair<std::uint64_t, std::string> AuditLog::append(const AuditEvent& e) {
  json::object o;
  o["seq"] = seq_ + 1;
  o["time"] = utc_now();
  o["actor"] = e.actor;
  o["event"] = e.event;
  if (e.slot) o["slot"] = e.slot;
  if (!e.camera.empty()) o["camera"] = e.camera;
  if (e.segment) o["segment"] = *e.segment;
  o["why"] = e.why;
  json::object details = e.details;
  if (!torn_.empty()) details["torn_entry_cut"] = torn_;
  if (!details.empty()) o["details"] = std::move(details);
  o["prev"] = hash_;
  const auto line = json::serialize(o);
  const auto out = line + "\n";
  if (dirty_) {
    if (::ftruncate(fd_, static_cast<off_t>(size_)) != 0) fail("cannot cut a failed entry from the audit log", errno);
    dirty_ = false;
  }
  std::size_t done = 0;
  while (done < out.size()) {
    const auto n = ::write(fd_, out.data() + done, out.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int err = n == 0 ? EIO : errno;
      cut_failed(done, err);
      fail("cannot write the audit log", err);
    }
    done += static_cast<std::size_t>(n);
  }
  if (::fdatasync(fd_) != 0) {
    const int err = errno;
    cut_failed(done, err);
    fail("cannot sync the audit log", err);
  }
  size_ += out.size();
  torn_.clear();
  ++seq_;
  hash_ = audit_line_hash(line);
  return {seq_, hash_};
}

void AuditLog::cut_failed(std::size_t written, int err) {
  // Left in place, the next entry would follow a broken line (the chain's check fails there
  // for ever), or repeat this one's seq after it.
  if (written == 0) return;
  dirty_ = ::ftruncate(fd_, static_cast<off_t>(size_)) != 0;
  torn_ = std::to_string(written) + " bytes (" + std::generic_category().message(err) + ")";
}

AuditLog::Report AuditLog::verify(const std::filesystem::path& file, std::optional<std::pair<std::uint64_t, std::string>> anchor) {
  Report r;
  if (!std::filesystem::exists(file)) {
    if (anchor) r.problems.push_back("the audit log " + file.string() + " is missing, but entry " + std::to_string(anchor->first) + " was written");
    return r;
  }
  const auto text = slurp(file);
  if (!text.empty() && text.back() != '\n') r.problems.push_back("the last entry is incomplete (torn write)");
  std::string prev = kAuditGenesis;
  std::uint64_t expect = 1;
  bool anchor_seen = false;
  std::size_t lineno = 0;
  for (const auto line : lines_of(text)) {
    ++lineno;
    const auto at = "line " + std::to_string(lineno);
    boost::system::error_code ec;
    auto v = json::parse(line, ec);
    const json::object* o = !ec && v.is_object() ? &v.as_object() : nullptr;
    if (!o || !o->contains("seq") || !o->at("seq").is_number() || !o->contains("prev") || !o->at("prev").is_string()) {
      r.problems.push_back(at + ": not a readable audit entry (edited?)");
      prev = audit_line_hash(line);
      ++expect;
      continue;
    }
    const auto seq = o->at("seq").to_number<std::uint64_t>();
    const auto their_prev = std::string(o->at("prev").as_string());
    if (seq > expect) {
      r.problems.push_back(at + ": entry " + std::to_string(seq) + " follows entry " + std::to_string(expect - 1) + ": entries " +
                           std::to_string(expect) + ".." + std::to_string(seq - 1) + " were removed");
    } else if (seq < expect) {
      r.problems.push_back(at + ": entry " + std::to_string(seq) + " comes after entry " + std::to_string(expect - 1) +
                           ": entries were reordered or repeated");
    } else if (their_prev != prev) {
      r.problems.push_back(at + ": entry " + std::to_string(seq - 1) + " was altered (its hash no longer matches the next entry's prev)");
    }
    const auto hash = audit_line_hash(line);
    if (anchor && seq == anchor->first) {
      anchor_seen = true;
      if (hash != anchor->second) r.problems.push_back(at + ": entry " + std::to_string(seq) + " differs from its anchored hash (altered)");
    }
    prev = hash;
    expect = seq + 1;
    ++r.entries;
  }
  if (anchor && !anchor_seen)
    r.problems.push_back("entry " + std::to_string(anchor->first) + " was written but is not in the log (entries removed from its end)");
  return r;
}

}  // namespace bodydock::dock
