// Sign-in for the web page: scrypt hashes that refuse any tampering without throwing; the
// accounts file (0600, atomic, refused line by line); sessions that never accept a planted id,
// expire when idle or old and stay bounded; the guessing throttle; the session cookie.
// Cheap scrypt (ln=10) everywhere except the one test of the default cost.
#include "dock/web/auth.hpp"
#include "support/sandbox.hpp"

#include <boost/test/unit_test.hpp>

#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <set>

using namespace bodydock;
using namespace std::chrono_literals;
namespace fs = std::filesystem;
using dock::web::AccountStore;
using dock::web::LoginThrottle;
using dock::web::Role;
using dock::web::ScryptParams;
using dock::web::SessionStore;

namespace {

constexpr ScryptParams kCheap{10, 8, 1};

bool is_base64url(const std::string& s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_'; });
}

void write_text(const fs::path& p, const std::string& text) { std::ofstream(p, std::ios::binary | std::ios::trunc) << text; }

std::string error_of(const fs::path& p) {
  try {
    AccountStore::load(p);
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "(loaded)";
}

}  // namespace

BOOST_AUTO_TEST_SUITE(web_passwords)

BOOST_AUTO_TEST_CASE(a_hash_verifies_its_password_and_no_other) {
  const auto h = dock::web::hash_password("correct horse", kCheap);
  BOOST_TEST(h.starts_with("$scrypt$ln=10,r=8,p=1$"));
  BOOST_TEST(dock::web::verify_password("correct horse", h));
  BOOST_TEST(!dock::web::verify_password("correct hors", h));
  BOOST_TEST(!dock::web::verify_password("correct horse ", h));
  BOOST_TEST(!dock::web::verify_password("", h));
  BOOST_TEST(h.find("correct") == std::string::npos);
}

BOOST_AUTO_TEST_CASE(the_default_cost_is_n_2_15_r_8_p_1) {
  const auto t0 = std::chrono::steady_clock::now();
  const auto h = dock::web::hash_password("s3cret-Passw0rd");
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
  BOOST_TEST_MESSAGE("one default hash_password: " << ms << " ms");
  BOOST_TEST(h.starts_with("$scrypt$ln=15,r=8,p=1$"));
  // 16-byte salt and 32-byte key in unpadded base64: 22 and 43 characters.
  const auto salt_at = h.find('$', 8) + 1;
  const auto key_at = h.find('$', salt_at) + 1;
  BOOST_TEST(key_at - salt_at - 1 == 22u);
  BOOST_TEST(h.size() - key_at == 43u);
  BOOST_TEST(dock::web::verify_password("s3cret-Passw0rd", h));
}

BOOST_AUTO_TEST_CASE(two_hashes_of_one_password_differ_by_salt) {
  const auto a = dock::web::hash_password("same", kCheap);
  const auto b = dock::web::hash_password("same", kCheap);
  BOOST_TEST(a != b);
  BOOST_TEST(a.substr(0, a.rfind('$')) != b.substr(0, b.rfind('$')));
  BOOST_TEST(dock::web::verify_password("same", a));
  BOOST_TEST(dock::web::verify_password("same", b));
}

BOOST_AUTO_TEST_CASE(empty_passwords_and_out_of_range_costs_are_not_hashed) {
  BOOST_CHECK_THROW(dock::web::hash_password("", kCheap), std::invalid_argument);
  BOOST_CHECK_THROW(dock::web::hash_password("x", ScryptParams{9, 8, 1}), std::invalid_argument);
  BOOST_CHECK_THROW(dock::web::hash_password("x", ScryptParams{21, 8, 1}), std::invalid_argument);
  BOOST_CHECK_THROW(dock::web::hash_password("x", ScryptParams{10, 0, 1}), std::invalid_argument);
  BOOST_CHECK_THROW(dock::web::hash_password("x", ScryptParams{10, 33, 1}), std::invalid_argument);
  BOOST_CHECK_THROW(dock::web::hash_password("x", ScryptParams{10, 8, 0}), std::invalid_argument);
  BOOST_CHECK_THROW(dock::web::hash_password("x", ScryptParams{10, 8, 17}), std::invalid_argument);
}

BOOST_AUTO_TEST_CASE(every_tampered_field_is_false_without_throwing) {
  const std::string pw = "tamper me";
  const auto h = dock::web::hash_password(pw, kCheap);
  BOOST_REQUIRE(dock::web::verify_password(pw, h));
  const auto salt_at = h.find('$', 8) + 1;
  const auto key_at = h.find('$', salt_at) + 1;
  const auto salt = h.substr(salt_at, key_at - salt_at - 1);
  const auto key = h.substr(key_at);
  const auto with = [&](const std::string& fields, const std::string& s, const std::string& k) { return "$scrypt$" + fields + "$" + s + "$" + k; };
  const auto flip = [](std::string s, std::size_t i) {
    s[i] = s[i] == 'A' ? 'B' : 'A';
    return s;
  };
  BOOST_REQUIRE_EQUAL(with("ln=10,r=8,p=1", salt, key), h);

  const std::vector<std::pair<std::string, std::string>> cases = {
      {"prefix", "$scrypd$" + h.substr(8)},
      {"prefix case", "$SCRYPT$" + h.substr(8)},
      {"no prefix", h.substr(8)},
      {"argon2 prefix", "$argon2id$" + h.substr(8)},
      {"ln changed", with("ln=11,r=8,p=1", salt, key)},
      {"ln too small", with("ln=9,r=8,p=1", salt, key)},
      {"ln too large", with("ln=21,r=8,p=1", salt, key)},
      {"ln leading zero", with("ln=010,r=8,p=1", salt, key)},
      {"ln negative", with("ln=-10,r=8,p=1", salt, key)},
      {"ln huge", with("ln=4294967306,r=8,p=1", salt, key)},
      {"ln missing", with("r=8,p=1", salt, key)},
      {"r changed", with("ln=10,r=9,p=1", salt, key)},
      {"r zero", with("ln=10,r=0,p=1", salt, key)},
      {"r too large", with("ln=10,r=33,p=1", salt, key)},
      {"p changed", with("ln=10,r=8,p=2", salt, key)},
      {"p zero", with("ln=10,r=8,p=0", salt, key)},
      {"p too large", with("ln=10,r=8,p=17", salt, key)},
      {"fields reordered", with("r=8,ln=10,p=1", salt, key)},
      {"fields with spaces", with("ln=10, r=8, p=1", salt, key)},
      {"extra field", with("ln=10,r=8,p=1,x=1", salt, key)},
      {"salt first char", with("ln=10,r=8,p=1", flip(salt, 0), key)},
      {"salt last char", with("ln=10,r=8,p=1", flip(salt, salt.size() - 1), key)},
      {"salt truncated", with("ln=10,r=8,p=1", salt.substr(0, salt.size() - 1), key)},
      {"salt one byte short", with("ln=10,r=8,p=1", salt.substr(0, salt.size() - 2), key)},
      {"salt padded", with("ln=10,r=8,p=1", salt + "==", key)},
      {"salt not base64", with("ln=10,r=8,p=1", "!" + salt.substr(1), key)},
      {"salt empty", with("ln=10,r=8,p=1", "", key)},
      {"key first char", with("ln=10,r=8,p=1", salt, flip(key, 0))},
      {"key last char", with("ln=10,r=8,p=1", salt, flip(key, key.size() - 1))},
      {"key truncated", with("ln=10,r=8,p=1", salt, key.substr(0, key.size() - 1))},
      {"key longer", with("ln=10,r=8,p=1", salt, key + "AAAA")},
      {"key padded", with("ln=10,r=8,p=1", salt, key + "=")},
      {"key url alphabet", with("ln=10,r=8,p=1", salt, key + "-")},
      {"key empty", with("ln=10,r=8,p=1", salt, "")},
      {"extra $ field", h + "$"},
      {"trailing newline", h + "\n"},
      {"leading space", " " + h},
      {"nul inside", h.substr(0, 20) + std::string(1, '\0') + h.substr(21)},
      {"empty", ""},
  };
  for (const auto& [what, encoded] : cases) {
    bool ok = true;
    BOOST_CHECK_NO_THROW(ok = dock::web::verify_password(pw, encoded));
    BOOST_TEST(!ok, what);
  }
  for (std::size_t n = 0; n < h.size(); ++n) {
    bool ok = true;
    BOOST_CHECK_NO_THROW(ok = dock::web::verify_password(pw, h.substr(0, n)));
    BOOST_TEST(!ok, "truncated to " << n);
  }
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(web_accounts)

BOOST_AUTO_TEST_CASE(save_then_load_round_trips_with_mode_0600) {
  test::TempDir dir;
  const auto file = dir / "accounts";
  AccountStore store;
  BOOST_TEST(store.empty());
  store.set("alice", Role::admin, "alice-pw", kCheap);
  store.set("bob.smith_2-x", Role::viewer, "bob-pw", kCheap);
  store.save(file);
  BOOST_TEST((fs::status(file).permissions() == (fs::perms::owner_read | fs::perms::owner_write)));
  // (Not "pw": two characters turn up in random base64 salts and hashes now and then.)
  BOOST_TEST(test::slurp_text(file).find("alice-pw") == std::string::npos);
  BOOST_TEST(test::slurp_text(file).find("bob-pw") == std::string::npos);

  const auto loaded = AccountStore::load(file);
  BOOST_TEST(loaded.warnings.empty());
  BOOST_TEST(loaded.size() == 2u);
  const auto alice = loaded.check("alice", "alice-pw");
  BOOST_REQUIRE(alice);
  BOOST_TEST(alice->name == "alice");
  BOOST_TEST((alice->role == Role::admin));
  const auto bob = loaded.check("bob.smith_2-x", "bob-pw");
  BOOST_REQUIRE(bob);
  BOOST_TEST((bob->role == Role::viewer));
  BOOST_TEST(!loaded.check("alice", "bob-pw"));

  // A second save replaces the file (no temporaries left behind) and keeps 0600.
  auto again = loaded;
  again.set("alice", Role::viewer, "new-pw", kCheap);
  again.save(file);
  BOOST_TEST((fs::status(file).permissions() == (fs::perms::owner_read | fs::perms::owner_write)));
  BOOST_TEST(std::distance(fs::directory_iterator(dir.path()), fs::directory_iterator()) == 1);
  const auto reloaded = AccountStore::load(file);
  BOOST_TEST(!reloaded.check("alice", "alice-pw"));
  BOOST_REQUIRE(reloaded.check("alice", "new-pw"));
  BOOST_TEST((reloaded.check("alice", "new-pw")->role == Role::viewer));
}

BOOST_AUTO_TEST_CASE(a_missing_file_is_an_empty_store) {
  test::TempDir dir;
  const auto store = AccountStore::load(dir / "none");
  BOOST_TEST(store.empty());
  BOOST_TEST(store.warnings.empty());
  BOOST_TEST(!store.check("admin", "admin"));
}

BOOST_AUTO_TEST_CASE(comments_blank_lines_and_crlf_are_accepted) {
  test::TempDir dir;
  const auto file = dir / "accounts";
  const auto h = dock::web::hash_password("pw", kCheap);
  write_text(file, "# who may use the web page\n\n   \n  # indented comment\ncarol:viewer:" + h + "\r\ndave:admin:" + h);
  ::chmod(file.c_str(), 0600);
  const auto store = AccountStore::load(file);
  BOOST_TEST(store.size() == 2u);
  BOOST_TEST(store.check("carol", "pw").has_value());
  BOOST_TEST(store.check("dave", "pw").has_value());
}

BOOST_AUTO_TEST_CASE(malformed_lines_are_refused_naming_file_and_line) {
  test::TempDir dir;
  const auto file = dir / "accounts";
  const auto h = dock::web::hash_password("pw", kCheap);
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"no colons", "alice"},
      {"one colon", "alice:admin"},
      {"upper case name", "Alice:admin:" + h},
      {"empty name", ":admin:" + h},
      {"space in name", "al ice:admin:" + h},
      {"space before colon", "alice :admin:" + h},
      {"33 characters", std::string(33, 'a') + ":admin:" + h},
      {"unknown role", "alice:root:" + h},
      {"role case", "alice:Admin:" + h},
      {"no hash", "alice:admin:"},
      {"plain password", "alice:admin:hunter2"},
      {"extra field", "alice:admin:" + h + ":x"},
      {"cost out of range", "alice:admin:$scrypt$ln=30" + h.substr(12)},
  };
  for (const auto& [what, line] : cases) {
    write_text(file, "# accounts\n\n" + line + "\nzed:viewer:" + h + "\n");
    const auto msg = error_of(file);
    BOOST_TEST_CONTEXT(what << ": " << msg) {
      BOOST_TEST(msg.find("line 3") != std::string::npos);
      BOOST_TEST(msg.find(file.string()) != std::string::npos);
      BOOST_TEST(msg.find(h.substr(22)) == std::string::npos);  // never the hash
      BOOST_TEST(msg.find("hunter2") == std::string::npos);     // nor a stray password
    }
  }
  // The longest valid name is fine.
  write_text(file, std::string(32, 'a') + ":admin:" + h + "\n");
  BOOST_TEST(AccountStore::load(file).size() == 1u);
}

BOOST_AUTO_TEST_CASE(a_repeated_name_is_refused) {
  test::TempDir dir;
  const auto file = dir / "accounts";
  const auto h = dock::web::hash_password("pw", kCheap);
  write_text(file, "alice:admin:" + h + "\nbob:viewer:" + h + "\n# again\nalice:viewer:" + h + "\n");
  const auto msg = error_of(file);
  BOOST_TEST(msg.find("line 4") != std::string::npos, msg);
  BOOST_TEST(msg.find("line 1") != std::string::npos, msg);
  BOOST_TEST(msg.find("alice") != std::string::npos, msg);
}

BOOST_AUTO_TEST_CASE(a_group_readable_file_gives_a_warning) {
  test::TempDir dir;
  const auto file = dir / "accounts";
  write_text(file, "alice:admin:" + dock::web::hash_password("pw", kCheap) + "\n");
  ::chmod(file.c_str(), 0640);
  const auto store = AccountStore::load(file);
  BOOST_TEST(store.size() == 1u);
  BOOST_REQUIRE_EQUAL(store.warnings.size(), 1u);
  BOOST_TEST(store.warnings[0].find("0640") != std::string::npos, store.warnings[0]);
  ::chmod(file.c_str(), 0600);
  BOOST_TEST(AccountStore::load(file).warnings.empty());
}

BOOST_AUTO_TEST_CASE(check_refuses_unknown_names_wrong_and_empty_passwords) {
  AccountStore store;
  store.set("alice", Role::admin, "pw", kCheap);
  BOOST_TEST(!store.check("mallory", "pw"));
  BOOST_TEST(!store.check("", "pw"));
  BOOST_TEST(!store.check("ALICE", "pw"));
  BOOST_TEST(!store.check("alice", "PW"));
  BOOST_TEST(!store.check("alice", ""));
  BOOST_TEST(store.check("alice", "pw").has_value());
}

BOOST_AUTO_TEST_CASE(set_refuses_bad_names_and_empty_passwords) {
  AccountStore store;
  BOOST_CHECK_THROW(store.set("", Role::admin, "pw", kCheap), std::invalid_argument);
  BOOST_CHECK_THROW(store.set("a:b", Role::admin, "pw", kCheap), std::invalid_argument);
  BOOST_CHECK_THROW(store.set("eve\n", Role::admin, "pw", kCheap), std::invalid_argument);
  BOOST_CHECK_THROW(store.set("alice", Role::admin, "", kCheap), std::invalid_argument);
  BOOST_TEST(store.empty());
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(web_sessions)

const SessionStore::Clock::time_point t0{std::chrono::hours(1000)};

BOOST_AUTO_TEST_CASE(ids_are_unique_43_character_base64url) {
  SessionStore sessions;
  std::set<std::string> seen;
  for (int i = 0; i < 64; ++i) {
    const auto& s = sessions.create("alice", Role::admin, t0);
    BOOST_TEST(s.id.size() == 43u);
    BOOST_TEST(is_base64url(s.id), s.id);
    BOOST_TEST(s.csrf.size() == 43u);
    BOOST_TEST(is_base64url(s.csrf));
    BOOST_TEST(seen.insert(s.id).second);
    BOOST_TEST(seen.insert(s.csrf).second);
  }
  BOOST_TEST(sessions.size() == 64u);
}

BOOST_AUTO_TEST_CASE(find_refreshes_last_seen) {
  SessionStore sessions(15min, 8h);
  const auto id = sessions.create("alice", Role::viewer, t0).id;
  const auto* s = sessions.find(id, t0 + 10min);
  BOOST_REQUIRE(s);
  BOOST_TEST(s->user == "alice");
  BOOST_TEST((s->role == Role::viewer));
  BOOST_TEST((s->last_seen == t0 + 10min));
  BOOST_TEST((s->created == t0));
  BOOST_REQUIRE(sessions.find(id, t0 + 24min));  // 14 min after the last request
  BOOST_TEST((sessions.find(id, t0 + 24min)->last_seen == t0 + 24min));
}

BOOST_AUTO_TEST_CASE(a_session_ends_when_idle) {
  SessionStore sessions(15min, 8h);
  const auto used = sessions.create("alice", Role::admin, t0).id;
  const auto left = sessions.create("alice", Role::admin, t0).id;
  BOOST_REQUIRE(sessions.find(used, t0 + 15min - 1s));
  BOOST_TEST(!sessions.find(left, t0 + 15min));
  BOOST_TEST(sessions.size() == 1u);  // removed, not just hidden
  BOOST_TEST(!sessions.find(used, t0 + 30min - 1s));
  BOOST_TEST(sessions.size() == 0u);
}

BOOST_AUTO_TEST_CASE(a_session_ends_after_the_absolute_limit_however_busy) {
  SessionStore sessions(15min, 8h);
  const auto id = sessions.create("alice", Role::admin, t0).id;
  auto t = t0;
  while (t + 10min < t0 + 8h) {
    t += 10min;
    BOOST_REQUIRE(sessions.find(id, t));
  }
  BOOST_TEST(!sessions.find(id, t0 + 8h));
  BOOST_TEST(sessions.size() == 0u);
}

BOOST_AUTO_TEST_CASE(a_full_store_drops_the_least_recently_seen) {
  SessionStore sessions(15min, 8h, 3);
  const auto a = sessions.create("a", Role::viewer, t0).id;
  const auto b = sessions.create("b", Role::viewer, t0 + 1s).id;
  const auto c = sessions.create("c", Role::viewer, t0 + 2s).id;
  BOOST_REQUIRE(sessions.find(a, t0 + 3s));
  const auto d = sessions.create("d", Role::viewer, t0 + 4s).id;
  BOOST_TEST(sessions.size() == 3u);
  BOOST_TEST(!sessions.find(b, t0 + 5s));
  BOOST_TEST(sessions.find(a, t0 + 5s));
  BOOST_TEST(sessions.find(c, t0 + 5s));
  BOOST_TEST(sessions.find(d, t0 + 5s));
}

BOOST_AUTO_TEST_CASE(a_full_store_drops_expired_sessions_before_live_ones) {
  SessionStore sessions(15min, 8h, 2);
  const auto old = sessions.create("old", Role::viewer, t0).id;
  for (auto t = t0 + 10min; t <= t0 + 7h + 50min; t += 10min) BOOST_REQUIRE(sessions.find(old, t));
  const auto live = sessions.create("live", Role::viewer, t0 + 7h + 50min).id;
  BOOST_REQUIRE(sessions.find(old, t0 + 7h + 55min));  // seen more recently than `live`, but 8 h old soon
  sessions.create("new", Role::viewer, t0 + 8h + 1s);
  BOOST_TEST(sessions.find(live, t0 + 8h + 2s));
  BOOST_TEST(!sessions.find(old, t0 + 8h + 2s));
}

BOOST_AUTO_TEST_CASE(end_signs_out_one_browser_and_end_user_all) {
  SessionStore sessions;
  const auto a1 = sessions.create("alice", Role::admin, t0).id;
  const auto a2 = sessions.create("alice", Role::admin, t0).id;
  const auto b = sessions.create("bob", Role::viewer, t0).id;
  sessions.end(a1);
  BOOST_TEST(!sessions.find(a1, t0));
  BOOST_TEST(sessions.find(a2, t0));
  sessions.end("never-issued");
  BOOST_TEST(sessions.size() == 2u);
  sessions.create("alice", Role::admin, t0);
  sessions.end_user("alice");
  BOOST_TEST(sessions.size() == 1u);
  BOOST_TEST(!sessions.find(a2, t0));
  BOOST_TEST(sessions.find(b, t0));
}

BOOST_AUTO_TEST_CASE(session_fixation_a_planted_id_is_worthless) {
  SessionStore sessions;
  // An attacker plants a well-formed id in the victim's browser before sign-in.
  const std::string planted = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
  BOOST_TEST(!sessions.find(planted, t0));
  const auto& first = sessions.create("alice", Role::admin, t0);
  const auto first_id = first.id;
  BOOST_TEST(first_id != planted);
  BOOST_TEST(!sessions.find(planted, t0));
  // Signing in again gives another id; the lookup key (SHA-256 of the id) is not an id either.
  const auto second_id = sessions.create("alice", Role::admin, t0).id;
  BOOST_TEST(second_id != first_id);
  BOOST_TEST(sessions.find(first_id, t0));
  BOOST_TEST(sessions.find(second_id, t0));
  BOOST_TEST(!sessions.find(first_id.substr(0, 42), t0));
  BOOST_TEST(!sessions.find(first_id + "A", t0));
  BOOST_TEST(!sessions.find("", t0));
}

BOOST_AUTO_TEST_CASE(csrf_tokens_compare_exactly) {
  SessionStore sessions;
  const auto& s = sessions.create("alice", Role::admin, t0);
  BOOST_TEST(SessionStore::csrf_ok(s, s.csrf));
  auto wrong = s.csrf;
  wrong.back() = wrong.back() == 'A' ? 'B' : 'A';
  BOOST_TEST(!SessionStore::csrf_ok(s, wrong));
  BOOST_TEST(!SessionStore::csrf_ok(s, s.csrf.substr(0, 42)));
  BOOST_TEST(!SessionStore::csrf_ok(s, s.csrf + "A"));
  BOOST_TEST(!SessionStore::csrf_ok(s, ""));
  BOOST_TEST(!SessionStore::csrf_ok(s, s.id));
}

BOOST_AUTO_TEST_CASE(zero_limits_are_refused) {
  BOOST_CHECK_THROW(SessionStore(0s, 8h, 64), std::invalid_argument);
  BOOST_CHECK_THROW(SessionStore(15min, 0s, 64), std::invalid_argument);
  BOOST_CHECK_THROW(SessionStore(15min, 8h, 0), std::invalid_argument);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(web_login_throttle)

const LoginThrottle::Clock::time_point t0{std::chrono::hours(1000)};

BOOST_AUTO_TEST_CASE(five_free_failures_then_1_2_4_seconds_up_to_15_minutes) {
  LoginThrottle throttle;
  auto t = t0;
  for (int i = 0; i < 5; ++i) {
    BOOST_TEST(!throttle.blocked("10.0.0.9", t));
    throttle.failed("10.0.0.9", t);
    t += 1s;
  }
  BOOST_TEST(!throttle.blocked("10.0.0.9", t));
  const std::vector<long> expected = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 900, 900, 900};
  for (const auto wait : expected) {
    throttle.failed("10.0.0.9", t);
    const auto b = throttle.blocked("10.0.0.9", t);
    BOOST_REQUIRE(b);
    BOOST_TEST(b->count() == wait);
    BOOST_TEST(throttle.blocked("10.0.0.9", t + std::chrono::seconds(wait) - 1ms).has_value());
    t += std::chrono::seconds(wait);
    BOOST_TEST(!throttle.blocked("10.0.0.9", t));
  }
  BOOST_TEST(!throttle.blocked("alice", t));  // other keys are untouched
}

BOOST_AUTO_TEST_CASE(a_success_forgets_the_failures) {
  LoginThrottle throttle;
  for (int i = 0; i < 6; ++i) throttle.failed("alice", t0);
  BOOST_TEST(throttle.blocked("alice", t0).has_value());
  throttle.succeeded("alice");
  BOOST_TEST(!throttle.blocked("alice", t0));
  throttle.failed("alice", t0);
  BOOST_TEST(!throttle.blocked("alice", t0));  // counting starts again at one
  throttle.succeeded("never-failed");
}

BOOST_AUTO_TEST_CASE(failures_are_forgotten_after_15_quiet_minutes) {
  LoginThrottle throttle;
  for (int i = 0; i < 6; ++i) {
    throttle.failed("quiet", t0);
    throttle.failed("eager", t0);
  }
  // Locked until t0 + 1 s; quiet from then on.
  throttle.failed("eager", t0 + 1s + 15min - 1s);
  BOOST_TEST(throttle.blocked("eager", t0 + 1s + 15min - 1s)->count() == 2);
  throttle.failed("quiet", t0 + 1s + 15min);
  BOOST_TEST(!throttle.blocked("quiet", t0 + 1s + 15min));
}

BOOST_AUTO_TEST_CASE(a_flood_of_5000_keys_keeps_memory_bounded) {
  LoginThrottle throttle;
  for (int i = 0; i < 10; ++i) throttle.failed("first", t0);
  auto t = t0;
  for (int k = 0; k < 5000; ++k) {
    t += 1ms;
    throttle.failed("10.1." + std::to_string(k / 256) + "." + std::to_string(k % 256), t);
    if (k == 4000)
      for (int i = 0; i < 10; ++i) throttle.failed("late", t);
  }
  BOOST_TEST(throttle.size() == LoginThrottle::kMaxKeys);
  BOOST_TEST(!throttle.blocked("first", t));  // the oldest went
  BOOST_TEST(throttle.blocked("late", t).has_value());
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(web_cookies)

BOOST_AUTO_TEST_CASE(set_cookie_strings_are_exact) {
  BOOST_TEST(dock::web::session_cookie("abc-_09XYZ", false, 8h) ==
             "bodydock_session=abc-_09XYZ; Path=/; HttpOnly; SameSite=Strict; Max-Age=28800");
  BOOST_TEST(dock::web::session_cookie("abc", true, 900s) == "bodydock_session=abc; Path=/; HttpOnly; SameSite=Strict; Max-Age=900; Secure");
  BOOST_TEST(dock::web::clear_session_cookie(false) == "bodydock_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
  BOOST_TEST(dock::web::clear_session_cookie(true) == "bodydock_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0; Secure");
}

BOOST_AUTO_TEST_CASE(a_hostile_id_never_reaches_set_cookie) {
  for (const std::string id : {"", "a;b", "a b", "a\r\nSet-Cookie: x=y", "a=b", "a+b/c"})
    BOOST_CHECK_THROW(dock::web::session_cookie(id, true, 1s), std::invalid_argument);
}

BOOST_AUTO_TEST_CASE(cookie_header_parsing) {
  using dock::web::cookie_value;
  const std::string s = "bodydock_session";
  BOOST_TEST(!cookie_value("", s));
  BOOST_TEST(!cookie_value("theme=dark", s));
  BOOST_TEST(*cookie_value("bodydock_session=abc", s) == "abc");
  BOOST_TEST(*cookie_value("theme=dark;bodydock_session=abc", s) == "abc");
  BOOST_TEST(*cookie_value("  theme=dark ;   bodydock_session = abc  ;lang=nl", s) == "abc");
  BOOST_TEST(*cookie_value("\tbodydock_session=abc\t", s) == "abc");
  BOOST_TEST(*cookie_value("bodydock_session=first; bodydock_session=second", s) == "first");
  BOOST_TEST(*cookie_value("bodydock_session; bodydock_session=ok", s) == "ok");  // a pair without '=' is skipped
  BOOST_TEST(!cookie_value("xbodydock_session=abc; bodydock_sessionx=def; Bodydock_session=ghi", s));
  BOOST_TEST(!cookie_value("bodydock_session=", s));
  // Hostile values: a ';' only ends the value; anything outside base64url is no session at all.
  BOOST_TEST(*cookie_value("bodydock_session=abc;evil=1", s) == "abc");
  BOOST_TEST(!cookie_value("bodydock_session=abc\nSet-Cookie: x=y", s));
  BOOST_TEST(!cookie_value("bodydock_session=abc\r\n", s));
  BOOST_TEST(!cookie_value("bodydock_session=ab%3Bc", s));
  BOOST_TEST(!cookie_value("bodydock_session=\"abc\"", s));
  BOOST_TEST(!cookie_value("bodydock_session=a b", s));
  BOOST_TEST(!cookie_value(std::string("bodydock_session=ab\0c", 21), s));
  // Other cookies keep their value as sent, '=' included, but never control characters.
  BOOST_TEST(*cookie_value("theme=a=b", "theme") == "a=b");
  BOOST_TEST(!cookie_value("theme=da\nrk", "theme"));
}

BOOST_AUTO_TEST_CASE(a_cookie_from_a_new_session_finds_it) {
  SessionStore sessions;
  const auto now = SessionStore::Clock::time_point{} + 1h;
  const auto& s = sessions.create("alice", Role::admin, now);
  const auto set = dock::web::session_cookie(s.id, true, 8h);
  const auto header = "lang=nl; " + set.substr(0, set.find(';'));
  const auto id = dock::web::cookie_value(header, dock::web::kSessionCookie);
  BOOST_REQUIRE(id);
  BOOST_TEST(sessions.find(*id, now) == &s);
}

BOOST_AUTO_TEST_SUITE_END()
