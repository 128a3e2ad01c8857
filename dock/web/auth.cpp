#include "dock/web/auth.hpp"

#include "dock/files.hpp"
#include "proto/crypto.hpp"
#include "proto/openssl_util.hpp"
#include "proto/sha256.hpp"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/kdf.h>

#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <memory>
#include <stdexcept>
#include <system_error>

namespace bodydock::dock::web {
namespace {

using proto::Bytes;
using proto::ByteView;

constexpr std::string_view kPrefix = "$scrypt$";
constexpr std::size_t kSaltSize = 16;
constexpr std::size_t kKeySize = 32;
constexpr std::size_t kTokenSize = 32;               // session ids and CSRF tokens
constexpr std::uintmax_t kMaxAccountsFile = 1 << 20;  // far beyond any real facility

// Base64 without padding (the PHC string form for hashes, base64url for tokens), written here
// rather than with EVP_EncodeBlock/EVP_DecodeBlock because those pad, skip whitespace and do
// not know the URL alphabet; decoding is strict, so every value has exactly one spelling.
constexpr std::string_view kStd = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
constexpr std::string_view kUrl = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

std::string b64_encode(ByteView in, std::string_view alphabet) {
  std::string out;
  out.reserve((in.size() * 4 + 2) / 3);
  std::uint32_t acc = 0;
  int bits = 0;
  for (const auto byte : in) {
    acc = (acc << 8) | byte;
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out += alphabet[(acc >> bits) & 63];
    }
  }
  if (bits > 0) out += alphabet[(acc << (6 - bits)) & 63];
  return out;
}

std::optional<Bytes> b64_decode(std::string_view in, std::string_view alphabet) {
  if (in.size() % 4 == 1) return std::nullopt;
  Bytes out;
  out.reserve(in.size() * 3 / 4);
  std::uint32_t acc = 0;
  int bits = 0;
  for (const char c : in) {
    const auto v = alphabet.find(c);
    if (v == std::string_view::npos) return std::nullopt;
    acc = (acc << 6) | static_cast<std::uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<std::uint8_t>(acc >> bits));
    }
  }
  if ((acc & ((1u << bits) - 1)) != 0) return std::nullopt;  // stray low bits: a second spelling
  return out;
}

bool is_base64url(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return kUrl.find(c) != std::string_view::npos; });
}

ByteView bytes_of(std::string_view s) { return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()}; }

bool params_ok(const ScryptParams& p) {
  return p.log2_n >= 10 && p.log2_n <= 20 && p.r >= 1 && p.r <= 32 && p.p >= 1 && p.p <= 16;
}

/// nullopt when OpenSSL refuses (no SCRYPT in the loaded providers, out of memory).
std::optional<Bytes> scrypt(std::string_view password, ByteView salt, const ScryptParams& p) {
  using Kdf = std::unique_ptr<EVP_KDF, proto::ossl::Free<EVP_KDF, EVP_KDF_free>>;
  using KdfCtx = std::unique_ptr<EVP_KDF_CTX, proto::ossl::Free<EVP_KDF_CTX, EVP_KDF_CTX_free>>;
  Kdf kdf(EVP_KDF_fetch(nullptr, "SCRYPT", nullptr));
  KdfCtx ctx(kdf ? EVP_KDF_CTX_new(kdf.get()) : nullptr);
  if (!ctx) return std::nullopt;
  std::uint64_t n = std::uint64_t{1} << p.log2_n;
  std::uint32_t r = p.r, par = p.p;
  // OpenSSL refuses unless its two buffers, 128*r*(N+2) and 128*r*p bytes, fit under maxmem.
  std::uint64_t maxmem = 128 * std::uint64_t{r} * (n + 2 + par) + (1u << 20);
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_PASSWORD, const_cast<char*>(password.data()), password.size()),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, const_cast<std::uint8_t*>(salt.data()), salt.size()),
      OSSL_PARAM_construct_uint64(OSSL_KDF_PARAM_SCRYPT_N, &n),
      OSSL_PARAM_construct_uint32(OSSL_KDF_PARAM_SCRYPT_R, &r),
      OSSL_PARAM_construct_uint32(OSSL_KDF_PARAM_SCRYPT_P, &par),
      OSSL_PARAM_construct_uint64(OSSL_KDF_PARAM_SCRYPT_MAXMEM, &maxmem),
      OSSL_PARAM_construct_end(),
  };
  Bytes key(kKeySize);
  if (EVP_KDF_derive(ctx.get(), key.data(), key.size(), params) != 1) {
    ERR_clear_error();
    return std::nullopt;
  }
  return key;
}

std::string encode_hash(const ScryptParams& p, ByteView salt, ByteView key) {
  return std::string(kPrefix) + "ln=" + std::to_string(p.log2_n) + ",r=" + std::to_string(p.r) + ",p=" + std::to_string(p.p) + "$" +
         b64_encode(salt, kStd) + "$" + b64_encode(key, kStd);
}

struct ParsedHash {
  ScryptParams params;
  Bytes salt, key;
};

/// Reads `<tag><decimal><end>` at the front of `s`: no sign, no leading zero, at most 3 digits.
std::optional<unsigned> take_number(std::string_view& s, std::string_view tag, char end) {
  if (!s.starts_with(tag)) return std::nullopt;
  s.remove_prefix(tag.size());
  const auto stop = s.find(end);
  const auto digits = s.substr(0, stop);
  if (digits.empty() || digits.size() > 3 || (digits.size() > 1 && digits[0] == '0')) return std::nullopt;
  unsigned v = 0;
  const auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), v);
  if (ec != std::errc() || ptr != digits.data() + digits.size()) return std::nullopt;
  s.remove_prefix(stop == std::string_view::npos ? s.size() : stop + 1);
  return v;
}

std::optional<ParsedHash> parse_hash(std::string_view s) {
  if (!s.starts_with(kPrefix)) return std::nullopt;
  s.remove_prefix(kPrefix.size());
  const auto d1 = s.find('$');
  if (d1 == std::string_view::npos) return std::nullopt;
  const auto d2 = s.find('$', d1 + 1);
  if (d2 == std::string_view::npos || s.find('$', d2 + 1) != std::string_view::npos) return std::nullopt;
  auto fields = s.substr(0, d1);
  const auto ln = take_number(fields, "ln=", ',');
  const auto r = ln ? take_number(fields, "r=", ',') : std::nullopt;
  const auto p = r ? take_number(fields, "p=", '\0') : std::nullopt;
  if (!p || !fields.empty()) return std::nullopt;
  ParsedHash out{{*ln, *r, *p}, {}, {}};
  if (!params_ok(out.params)) return std::nullopt;
  auto salt = b64_decode(s.substr(d1 + 1, d2 - d1 - 1), kStd);
  auto key = b64_decode(s.substr(d2 + 1), kStd);
  if (!salt || salt->size() != kSaltSize || !key || key->size() != kKeySize) return std::nullopt;
  out.salt = std::move(*salt);
  out.key = std::move(*key);
  return out;
}

std::string random_token() { return b64_encode(proto::crypto::random_bytes(kTokenSize), kUrl); }

std::string session_key(std::string_view id) {
  const auto d = proto::Sha256::of(bytes_of(id));
  return {d.begin(), d.end()};
}

std::optional<Role> parse_role(std::string_view s) {
  if (s == "viewer") return Role::viewer;
  if (s == "admin") return Role::admin;
  return std::nullopt;
}

std::string_view trim(std::string_view s) {
  constexpr std::string_view ws = " \t";
  const auto b = s.find_first_not_of(ws);
  if (b == std::string_view::npos) return {};
  return s.substr(b, s.find_last_not_of(ws) - b + 1);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Passwords

std::string hash_password(std::string_view password, ScryptParams params) {
  if (password.empty()) throw std::invalid_argument("a password must not be empty");
  if (!params_ok(params)) throw std::invalid_argument("scrypt parameters out of range (ln 10..20, r 1..32, p 1..16)");
  const auto salt = proto::crypto::random_bytes(kSaltSize);
  const auto key = scrypt(password, salt, params);
  if (!key) throw std::runtime_error("scrypt is not available or ran out of memory");
  return encode_hash(params, salt, *key);
}

bool verify_password(std::string_view password, std::string_view encoded) {
  if (password.empty()) return false;
  const auto h = parse_hash(encoded);
  if (!h) return false;
  const auto key = scrypt(password, h->salt, h->params);
  return key && CRYPTO_memcmp(key->data(), h->key.data(), kKeySize) == 0;
}

// ---------------------------------------------------------------------------------------------
// Accounts

std::string_view role_name(Role role) { return role == Role::admin ? "admin" : "viewer"; }

bool valid_account_name(std::string_view name) {
  return !name.empty() && name.size() <= 32 && std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
  });
}

AccountStore::AccountStore() { refresh_dummy(); }

AccountStore AccountStore::load(const std::filesystem::path& file) {
  AccountStore store;
  const auto where = "accounts file " + file.string();
  auto fd = open_file(file, O_RDONLY);
  if (!fd) {
    if (fd.error() == boost::system::errc::no_such_file_or_directory) return store;
    throw std::runtime_error(where + ": cannot open: " + fd.error().message());
  }
  struct stat st {};
  if (::fstat(fd->get(), &st) != 0) throw std::runtime_error(where + ": cannot stat");
  if (!S_ISREG(st.st_mode)) throw std::runtime_error(where + ": not a regular file");
  if (static_cast<std::uintmax_t>(st.st_size) > kMaxAccountsFile) throw std::runtime_error(where + ": larger than 1 MiB");
  if ((st.st_mode & 077) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    store.warnings.push_back(where + " has mode " + mode + ": group or others can reach the password hashes; chmod 600 it");
  }
  std::string text(static_cast<std::size_t>(st.st_size), '\0');
  auto n = read_at(fd->get(), {reinterpret_cast<std::uint8_t*>(text.data()), text.size()}, 0);
  if (!n) throw std::runtime_error(where + ": cannot read: " + n.error().message());
  text.resize(*n);

  std::map<std::string, std::size_t, std::less<>> first_line;
  std::size_t line_no = 0;
  for (std::string_view rest = text; !rest.empty();) {
    const auto nl = rest.find('\n');
    auto line = rest.substr(0, nl);
    rest.remove_prefix(nl == std::string_view::npos ? rest.size() : nl + 1);
    ++line_no;
    if (line.ends_with('\r')) line.remove_suffix(1);
    const auto bare = trim(line);
    if (bare.empty() || bare.starts_with('#')) continue;
    // The line itself is never quoted back: it may hold a hash, or a password pasted by mistake.
    // NOLINTNEXTLINE(performance-inefficient-string-concatenation): the message of the error that ends the read
    const auto bad = [&](const std::string& what) { return std::runtime_error(where + ", line " + std::to_string(line_no) + ": " + what); };
    const auto c1 = line.find(':');
    const auto c2 = c1 == std::string_view::npos ? c1 : line.find(':', c1 + 1);
    if (c2 == std::string_view::npos) throw bad("expected NAME:ROLE:HASH");
    const auto name = line.substr(0, c1);
    if (!valid_account_name(name)) throw bad("the name must be 1 to 32 characters of a-z, 0-9, '.', '_' and '-'");
    const auto role = parse_role(line.substr(c1 + 1, c2 - c1 - 1));
    if (!role) throw bad("the role must be viewer or admin");
    const auto hash = line.substr(c2 + 1);
    if (!parse_hash(hash)) throw bad("the password hash is not a valid $scrypt$ hash");
    if (const auto seen = first_line.find(name); seen != first_line.end())
      throw bad("account " + std::string(name) + " is already defined on line " + std::to_string(seen->second));
    first_line.emplace(std::string(name), line_no);
    store.accounts_.emplace(std::string(name), Account{std::string(name), *role, std::string(hash)});
  }
  store.refresh_dummy();
  return store;
}

void AccountStore::set(const std::string& name, Role role, std::string_view password, ScryptParams params) {
  if (!valid_account_name(name)) throw std::invalid_argument("an account name must be 1 to 32 characters of a-z, 0-9, '.', '_' and '-'");
  auto hash = hash_password(password, params);
  accounts_.insert_or_assign(name, Account{name, role, std::move(hash)});
  refresh_dummy();
}

void AccountStore::save(const std::filesystem::path& file) const {
  std::string text = "# bodydock web page accounts, NAME:ROLE:HASH, written by the dock\n";
  for (const auto& [name, a] : accounts_) {
    text += name;
    text += ':';
    text += role_name(a.role);
    text += ':';
    text += a.hash;
    text += '\n';
  }
  if (const auto ec = write_file_atomic(file, text, 0600))
    throw std::system_error(std::error_code(ec), "cannot write accounts file " + file.string());
}

std::optional<Account> AccountStore::check(std::string_view name, std::string_view password) const {
  if (password.empty()) return std::nullopt;
  const auto it = accounts_.find(name);
  if (it == accounts_.end()) {
    (void)verify_password(password, dummy_);  // spend the same time as for a real account
    return std::nullopt;
  }
  if (!verify_password(password, it->second.hash)) return std::nullopt;
  return it->second;
}

void AccountStore::refresh_dummy() {
  // The dummy costs what a stored hash costs; its all-zero key matches no password in practice.
  ScryptParams p;
  if (!accounts_.empty())
    if (const auto h = parse_hash(accounts_.begin()->second.hash)) p = h->params;
  dummy_ = encode_hash(p, Bytes(kSaltSize), Bytes(kKeySize));
}

// ---------------------------------------------------------------------------------------------
// Sessions

SessionStore::SessionStore(std::chrono::seconds idle, std::chrono::seconds absolute, std::size_t max_sessions)
    : idle_(idle), absolute_(absolute), max_(max_sessions) {
  if (idle.count() <= 0 || absolute.count() <= 0 || max_sessions == 0)
    throw std::invalid_argument("session lifetimes and the session limit must be positive");
}

bool SessionStore::expired(const Session& s, Clock::time_point now) const {
  return now - s.last_seen >= idle_ || now - s.created >= absolute_;
}

const SessionStore::Session& SessionStore::create(std::string user, Role role, Clock::time_point now) {
  if (sessions_.size() >= max_) std::erase_if(sessions_, [&](const auto& kv) { return expired(kv.second, now); });
  while (sessions_.size() >= max_) {
    const auto oldest = std::min_element(sessions_.begin(), sessions_.end(),
                                         [](const auto& a, const auto& b) { return a.second.last_seen < b.second.last_seen; });
    sessions_.erase(oldest);
  }
  Session s{{}, random_token(), std::move(user), role, now, now};
  for (;;) {  // a repeated id is astronomically unlikely; try_emplace leaves `s` intact if it happens
    s.id = random_token();
    if (auto [it, fresh] = sessions_.try_emplace(session_key(s.id), std::move(s)); fresh) return it->second;
  }
}

const SessionStore::Session* SessionStore::find(std::string_view id, Clock::time_point now) {
  const auto it = sessions_.find(session_key(id));
  if (it == sessions_.end()) return nullptr;
  if (expired(it->second, now)) {
    sessions_.erase(it);
    return nullptr;
  }
  it->second.last_seen = std::max(it->second.last_seen, now);
  return &it->second;
}

void SessionStore::end(std::string_view id) { sessions_.erase(session_key(id)); }

void SessionStore::end_user(std::string_view user) {
  std::erase_if(sessions_, [&](const auto& kv) { return kv.second.user == user; });
}

bool SessionStore::csrf_ok(const Session& session, std::string_view token) noexcept {
  return !session.csrf.empty() && token.size() == session.csrf.size() &&
         CRYPTO_memcmp(token.data(), session.csrf.data(), token.size()) == 0;
}

// ---------------------------------------------------------------------------------------------
// Password guessing

namespace {

std::chrono::seconds lockout_after(unsigned failures) {
  if (failures <= LoginThrottle::kFreeFailures) return std::chrono::seconds(0);
  const unsigned doublings = failures - LoginThrottle::kFreeFailures - 1;
  if (doublings >= 10) return LoginThrottle::kMaxLockout;  // 2^10 s is past the cap
  return std::min(std::chrono::seconds(1u << doublings), LoginThrottle::kMaxLockout);
}

}  // namespace

bool LoginThrottle::forgotten(const Entry& e, Clock::time_point now) {
  // Quiet time counts from the end of a lockout: waiting one out does not wipe the slate.
  return now >= std::max(e.last_failure, e.locked_until) + kForgetAfter;
}

std::optional<std::chrono::seconds> LoginThrottle::blocked(std::string_view key, Clock::time_point now) const {
  const auto it = index_.find(key);
  if (it == index_.end() || now >= it->second->locked_until) return std::nullopt;
  return std::chrono::ceil<std::chrono::seconds>(it->second->locked_until - now);
}

void LoginThrottle::failed(std::string_view key, Clock::time_point now) {
  while (!by_age_.empty() && forgotten(by_age_.front(), now)) {
    index_.erase(by_age_.front().key);
    by_age_.pop_front();
  }
  auto it = index_.find(key);
  if (it == index_.end()) {
    while (index_.size() >= kMaxKeys) {
      index_.erase(by_age_.front().key);
      by_age_.pop_front();
    }
    by_age_.push_back(Entry{std::string(key), 0, now, now});
    it = index_.emplace(std::string(key), std::prev(by_age_.end())).first;
  } else {
    by_age_.splice(by_age_.end(), by_age_, it->second);  // now the newest; iterators stay valid
  }
  Entry& e = *it->second;
  if (forgotten(e, now)) e.failures = 0;
  e.failures = std::min(e.failures + 1, 1000u);
  e.last_failure = now;
  e.locked_until = now + lockout_after(e.failures);
}

void LoginThrottle::succeeded(std::string_view key) {
  const auto it = index_.find(key);
  if (it == index_.end()) return;
  by_age_.erase(it->second);
  index_.erase(it);
}

// ---------------------------------------------------------------------------------------------
// Cookies

std::string session_cookie(std::string_view id, bool secure, std::chrono::seconds max_age) {
  if (!is_base64url(id)) throw std::invalid_argument("a session id must be base64url");
  return std::string(kSessionCookie) + "=" + std::string(id) + "; Path=/; HttpOnly; SameSite=Strict; Max-Age=" +
         std::to_string(std::max<std::chrono::seconds::rep>(max_age.count(), 0)) + (secure ? "; Secure" : "");
}

std::string clear_session_cookie(bool secure) {
  return std::string(kSessionCookie) + "=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0" + (secure ? "; Secure" : "");
}

std::optional<std::string> cookie_value(std::string_view cookie_header, std::string_view name) {
  for (std::string_view rest = cookie_header; !rest.empty();) {
    const auto semi = rest.find(';');
    const auto pair = rest.substr(0, semi);
    rest.remove_prefix(semi == std::string_view::npos ? rest.size() : semi + 1);
    const auto eq = pair.find('=');
    if (eq == std::string_view::npos || trim(pair.substr(0, eq)) != name) continue;
    const auto value = trim(pair.substr(eq + 1));
    if (std::any_of(value.begin(), value.end(), [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; }))
      return std::nullopt;
    if (name == kSessionCookie && !is_base64url(value)) return std::nullopt;
    return std::string(value);
  }
  return std::nullopt;
}

}  // namespace bodydock::dock::web
