#pragma once
/// The audit log (DESIGN section 2, GDPR/AVG): one JSON line per operation on a recording or a
/// camera (docking, pull, verification, quarantine, store, erase, clock set, admin action),
/// saying who, what, when and why. Append-only and hash-chained: every line carries the SHA-256
/// of the line before it, so an edited, removed or reordered entry breaks the chain; the newest
/// entry is also anchored in the state database, so a removed tail shows too. Each append is
/// fdatasynced before it returns. No footage bytes and no secrets ever enter it.
///
/// Not thread-safe: the dock appends from its database thread only.

#include <boost/json/object.hpp>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace bodydock::dock {

struct AuditEvent {
  std::string event;                  ///< docking, pull, spooled, quarantine, stored, erase, purge, clock, ...
  std::string actor;                  ///< "dock <id>" or "admin <name>"
  unsigned slot = 0;                  ///< 0: not about a slot
  std::string camera;                 ///< serial, if about a camera
  std::optional<std::uint64_t> segment;
  std::string why;                    ///< the reason or purpose, in words
  boost::json::object details;        ///< hashes, offsets, object keys; never footage or secrets
};

class AuditLog {
 public:
  /// Opens (creating) the log and continues its chain. A final line torn by a crash is cut
  /// off and the cut is recorded in the next entry.
  explicit AuditLog(std::filesystem::path file);
  ~AuditLog();
  AuditLog(const AuditLog&) = delete;
  AuditLog& operator=(const AuditLog&) = delete;

  /// Appends and syncs one entry; returns its (seq, hash). Throws std::system_error on I/O
  /// failure, leaving the log as it was: whatever the failed write put in the file is cut.
  std::pair<std::uint64_t, std::string> append(const AuditEvent& e);
  [[nodiscard]] std::uint64_t last_seq() const { return seq_; }
  [[nodiscard]] const std::string& last_hash() const { return hash_; }
  [[nodiscard]] const std::filesystem::path& file() const { return file_; }

  struct Report {
    std::uint64_t entries = 0;
    std::vector<std::string> problems;  ///< empty when the log verifies
    [[nodiscard]] bool ok() const { return problems.empty(); }
  };
  /// Checks the chain line by line, and that the anchored entry (seq, hash) is still there.
  static Report verify(const std::filesystem::path& file, std::optional<std::pair<std::uint64_t, std::string>> anchor);

 private:
  std::filesystem::path file_;
  int fd_ = -1;
  std::uint64_t seq_ = 0;
  std::string hash_;
  std::string torn_;  ///< a torn final line found at open, or a failed append cut, reported in the next entry
  std::uint64_t size_ = 0;  ///< bytes of confirmed entries: a failed append is cut back to this
  bool dirty_ = false;      ///< a failed append could not be cut yet: the next one cuts first
  /// Removes what a failed append left after the confirmed entries (a partial line on a full
  /// disk, or a whole one that was never synced), so the next entry follows the last good line.
  void cut_failed(std::size_t written, int err);
};

/// SHA-256 of a line's bytes, lowercase hex: what the next entry's "prev" must be.
std::string audit_line_hash(std::string_view line);
/// The "prev" of the first entry.
inline const std::string kAuditGenesis(64, '0');

}  // namespace bodydock::dock
