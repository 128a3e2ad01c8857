#pragma once
/// Sign-in for the dock's local web page, where facility admins look at slots and uploads and
/// manage the accounts that may do so. Pure and synchronous: no sockets, no Asio, no clock
/// reads (callers pass `now`), so the web server decides where the slow parts run and tests
/// can walk through hours in microseconds.
///
/// - Passwords are stored as scrypt hashes, so a stolen accounts file is slow to crack.
/// - Accounts live in a small text file the daemon owns (mode 0600).
/// - Sessions are random ids in an HttpOnly, SameSite=Strict cookie, a fresh one at every
///   sign-in, with a separate CSRF token for forms; they end when idle or old.
/// - A throttle slows down password guessing per client address and per account name.
///
/// Nothing here logs, and no error message carries a password, a hash or a session id.
/// Not thread-safe: the web server uses the stores from its one thread. hash_password,
/// verify_password and a const AccountStore's check() touch no shared state, so the slow
/// scrypt work may run on the blocking pool while nothing modifies the store.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <list>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace bodydock::dock::web {

// ---------------------------------------------------------------------------------------------
// Passwords

/// scrypt cost. The defaults (N = 2^15, r = 8, p = 1) take 32 MiB and tens of milliseconds per
/// hash: memory-hard, so a stolen accounts file is slow to crack even on GPUs, yet a sign-in
/// stays quick on the dock.
struct ScryptParams {
  unsigned log2_n = 15;
  unsigned r = 8;
  unsigned p = 1;
};

/// A new hash of `password` with a fresh random 16-byte salt, in the PHC string form
/// `$scrypt$ln=15,r=8,p=1$<salt>$<key>` (standard base64 without padding, 32-byte key), so two
/// accounts with the same password get different hashes. Throws std::invalid_argument for an
/// empty password or parameters outside the range verify_password accepts.
std::string hash_password(std::string_view password, ScryptParams params = {});

/// True when `password` matches `encoded`. Anything malformed (wrong prefix, parameters out of
/// range: ln 10..20, r 1..32, p 1..16, a salt other than 16 bytes, a key other than 32 bytes,
/// non-canonical base64) is false, never an exception; the key is compared in constant time.
bool verify_password(std::string_view password, std::string_view encoded);

// ---------------------------------------------------------------------------------------------
// Accounts

/// What a signed-in person may do: viewers see slots and uploads, admins also manage accounts
/// and the dock.
enum class Role { viewer, admin };

/// "viewer" or "admin": the words the accounts file uses.
std::string_view role_name(Role role);

/// Account names: 1..32 characters of a-z, 0-9, '.', '_' and '-'. Short and plain so they fit
/// in the audit log ("admin <name>"), the accounts file and URLs without escaping.
bool valid_account_name(std::string_view name);

struct Account {
  std::string name;
  Role role = Role::viewer;
  std::string hash;  ///< verify_password form; never shown, logged or put in an error message
};

/// The web page's accounts, kept in a text file with one account a line, `NAME:ROLE:HASH`
/// (`#` comments and blank lines allowed), e.g. `alice:admin:$scrypt$ln=15,r=8,p=1$...$...`.
/// Admins may edit the file by hand; the page rewrites it (without the comments) when an
/// account changes.
class AccountStore {
 public:
  /// Reads `file`; a missing file is an empty store (the first admin is then created from the
  /// command line). Throws std::runtime_error naming the file and line for a malformed line or
  /// a repeated name, or naming the file when it cannot be read. Records a warning when the
  /// file is open to group or others, because its hashes are the one thing a local attacker
  /// needs to start cracking.
  static AccountStore load(const std::filesystem::path& file);

  AccountStore();

  /// Adds the account or replaces its role and password. Throws std::invalid_argument for an
  /// invalid name or an empty password. `params` stays at its default outside tests.
  void set(const std::string& name, Role role, std::string_view password, ScryptParams params = {});

  /// Writes the store to `file` atomically (a temporary in the same directory, mode 0600, fsync,
  /// rename, fsync of the directory), so a power cut leaves the old file or the new one, never
  /// half of each, and nobody but the daemon can read the hashes. Throws std::system_error.
  void save(const std::filesystem::path& file) const;

  /// The account when `name` exists and `password` is its password. An unknown name still costs
  /// one scrypt run against a dummy hash of the same cost, so the time taken does not tell a
  /// guesser which names exist. An empty password is refused at once, whatever the name.
  [[nodiscard]] std::optional<Account> check(std::string_view name, std::string_view password) const;

  [[nodiscard]] bool empty() const { return accounts_.empty(); }
  [[nodiscard]] std::size_t size() const { return accounts_.size(); }

  /// Problems found by load() that do not stop the dock (e.g. the file's mode), for the log.
  std::vector<std::string> warnings;

 private:
  void refresh_dummy();
  std::map<std::string, Account, std::less<>> accounts_;
  std::string dummy_;  ///< same cost as the stored hashes, matches no password
};

// ---------------------------------------------------------------------------------------------
// Sessions

/// Signed-in browsers. The session id is the only secret in the cookie; it is 32 random bytes,
/// new at every sign-in, and it is looked up by its SHA-256, so neither a planted id (session
/// fixation) nor the timing of a lookup (partial matches) helps an attacker.
class SessionStore {
 public:
  using Clock = std::chrono::steady_clock;

  struct Session {
    std::string id;    ///< 43 characters of base64url (32 random bytes); goes in the cookie
    std::string csrf;  ///< a second random token; every form and state-changing request carries it
    std::string user;
    Role role = Role::viewer;
    Clock::time_point created, last_seen;
  };

  /// A session ends after `idle` without requests or `absolute` after sign-in, whichever comes
  /// first; at most `max_sessions` live at once, so a flood of sign-ins cannot grow memory.
  /// Throws std::invalid_argument for a zero duration or count.
  explicit SessionStore(std::chrono::seconds idle = std::chrono::minutes(15), std::chrono::seconds absolute = std::chrono::hours(8),
                        std::size_t max_sessions = 64);

  /// Starts a session after a successful sign-in, always under a new random id and CSRF token.
  /// When the store is full, expired sessions go first, then the least recently seen one.
  /// The reference is valid until the next create(), find(), end() or end_user().
  const Session& create(std::string user, Role role, Clock::time_point now);

  /// The live session with this id, its last_seen moved to `now`; nullptr when the id is
  /// unknown or the session has expired (an expired one is removed).
  const Session* find(std::string_view id, Clock::time_point now);

  /// Signs one browser out.
  void end(std::string_view id);
  /// Signs a person out everywhere: after a password or role change, or when the account is
  /// removed.
  void end_user(std::string_view user);
  /// Sessions held, including expired ones not yet removed.
  [[nodiscard]] std::size_t size() const { return sessions_.size(); }

  /// Whether a request's CSRF token is the session's, compared in constant time.
  static bool csrf_ok(const Session& session, std::string_view token) noexcept;

 private:
  [[nodiscard]] bool expired(const Session& s, Clock::time_point now) const;
  std::chrono::seconds idle_, absolute_;
  std::size_t max_;
  std::map<std::string, Session, std::less<>> sessions_;  ///< keyed by SHA-256 of the id
};

// ---------------------------------------------------------------------------------------------
// Password guessing

/// Slows down password guessing. The caller keys it twice, by client address and by account
/// name, so neither one guesser trying many names nor many guessers trying one name gets far.
/// Five failures are free (people mistype); each further failure locks the key for 1 s, then
/// 2 s, 4 s, ... up to 15 min. A key is forgotten once it has been quiet (not locked, no
/// failure) for 15 min. At most 4096 keys are remembered; beyond that the one with the oldest
/// failure is dropped, so a flood of addresses cannot exhaust memory.
class LoginThrottle {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr unsigned kFreeFailures = 5;
  static constexpr std::chrono::seconds kMaxLockout{15 * 60};
  static constexpr std::chrono::seconds kForgetAfter{15 * 60};
  static constexpr std::size_t kMaxKeys = 4096;

  /// How long `key` must still wait before its next attempt, or nullopt when it may try now.
  [[nodiscard]] std::optional<std::chrono::seconds> blocked(std::string_view key, Clock::time_point now) const;
  /// Records a failed sign-in for `key`.
  void failed(std::string_view key, Clock::time_point now);
  /// Forgets `key`'s failures after a successful sign-in.
  void succeeded(std::string_view key);
  /// Keys remembered (bounded by kMaxKeys).
  [[nodiscard]] std::size_t size() const { return index_.size(); }

 private:
  struct Entry {
    std::string key;
    unsigned failures = 0;
    Clock::time_point last_failure, locked_until;
  };
  [[nodiscard]] static bool forgotten(const Entry& e, Clock::time_point now);
  std::list<Entry> by_age_;  ///< oldest failure first
  std::map<std::string, std::list<Entry>::iterator, std::less<>> index_;
};

// ---------------------------------------------------------------------------------------------
// Cookies

/// The session cookie's name.
inline constexpr std::string_view kSessionCookie = "bodydock_session";

/// The Set-Cookie value for a session: HttpOnly so page scripts cannot read it, SameSite=Strict
/// so other sites cannot make the browser send it, Secure when the page is served over HTTPS.
/// Throws std::invalid_argument when `id` is not base64url (it always is when it comes from
/// SessionStore), so nothing can be smuggled into the header.
std::string session_cookie(std::string_view id, bool secure, std::chrono::seconds max_age);

/// The Set-Cookie value that removes the session cookie at sign-out.
std::string clear_session_cookie(bool secure);

/// The value of the first cookie called `name` in a Cookie header (`a=b; c=d`, spaces
/// tolerated); nullopt when there is none or its value holds control characters. For the
/// session cookie the value must be non-empty base64url, so a hostile cookie never reaches a
/// lookup.
std::optional<std::string> cookie_value(std::string_view cookie_header, std::string_view name);

}  // namespace bodydock::dock::web
