// The audit log: appends chain by hash and survive a reopen; verification names exactly what
// was done to the file: an edited entry, a removed one, two swapped, a removed tail, an edited
// last entry; a torn final write is cut at reopen and the cut recorded; an append that fails
// half-way (a full disk) leaves nothing behind and the log goes on verifying.
#include "dock/audit.hpp"
#include "support/sandbox.hpp"

#include <boost/test/unit_test.hpp>

#include <sys/resource.h>

#include <csignal>
#include <fstream>

using namespace bodydock;
using dock::AuditEvent;
using dock::AuditLog;

namespace {

struct Fixture {
  test::TempDir dir;
  std::filesystem::path file = dir / "audit" / "audit.log";
  std::optional<std::pair<std::uint64_t, std::string>> anchor;

  void write(unsigned n) {
    AuditLog log(file);
    for (unsigned i = 0; i < n; ++i) {
      AuditEvent e;
      e.event = "stored";
      e.actor = "dock test";
      e.camera = "BC-0001";
      e.segment = i + 1;
      e.why = "storage confirmed";
      e.details["stored_sha256"] = std::string(64, 'a');
      anchor = log.append(e);
    }
  }
  std::vector<std::string> lines() const {
    std::ifstream in(file);
    std::vector<std::string> out;
    for (std::string l; std::getline(in, l);) out.push_back(l);
    return out;
  }
  void rewrite(const std::vector<std::string>& ls) const {
    std::ofstream out(file, std::ios::trunc);
    for (const auto& l : ls) out << l << "\n";
  }
  AuditLog::Report verify() const { return AuditLog::verify(file, anchor); }
  bool says(const AuditLog::Report& r, const std::string& text) const {
    for (const auto& p : r.problems)
      if (p.find(text) != std::string::npos) return true;
    BOOST_TEST_MESSAGE("problems: " << (r.problems.empty() ? "(none)" : r.problems.front()));
    return false;
  }
};

}  // namespace

BOOST_FIXTURE_TEST_SUITE(audit_log, Fixture)

BOOST_AUTO_TEST_CASE(appends_chain_and_continue_after_reopen) {
  write(3);
  write(2);  // reopened: the chain continues
  const auto r = verify();
  BOOST_CHECK(r.ok());
  BOOST_CHECK_EQUAL(r.entries, 5u);
  BOOST_CHECK_EQUAL(anchor->first, 5u);
  const auto ls = lines();
  BOOST_REQUIRE_EQUAL(ls.size(), 5u);
  BOOST_CHECK_NE(ls[0].find("\"prev\":\"" + dock::kAuditGenesis + "\""), std::string::npos);
  BOOST_CHECK_NE(ls[1].find("\"prev\":\"" + dock::audit_line_hash(ls[0]) + "\""), std::string::npos);
  BOOST_CHECK_NE(ls[4].find("\"seq\":5"), std::string::npos);
  BOOST_CHECK_NE(ls[2].find("\"camera\":\"BC-0001\",\"segment\":3"), std::string::npos);
}

BOOST_AUTO_TEST_CASE(an_edited_entry_is_named) {
  write(5);
  auto ls = lines();
  const auto at = ls[1].find("storage confirmed");
  ls[1].replace(at, 7, "STORAGE");
  rewrite(ls);
  const auto r = verify();
  BOOST_CHECK_EQUAL(r.problems.size(), 1u);
  BOOST_CHECK(says(r, "entry 2 was altered"));
}

BOOST_AUTO_TEST_CASE(a_removed_entry_is_named) {
  write(5);
  auto ls = lines();
  ls.erase(ls.begin() + 2);
  rewrite(ls);
  const auto r = verify();
  BOOST_CHECK_EQUAL(r.problems.size(), 1u);
  BOOST_CHECK(says(r, "entries 3..3 were removed"));
}

BOOST_AUTO_TEST_CASE(swapped_entries_are_named) {
  write(5);
  auto ls = lines();
  std::swap(ls[1], ls[2]);
  rewrite(ls);
  const auto r = verify();
  BOOST_CHECK(!r.ok());
  BOOST_CHECK(says(r, "entry 3 follows entry 1: entries 2..2 were removed"));
  BOOST_CHECK(says(r, "entry 2 comes after entry 3: entries were reordered"));
}

BOOST_AUTO_TEST_CASE(a_removed_tail_and_an_edited_last_entry_are_caught_by_the_anchor) {
  write(4);
  auto ls = lines();
  ls.pop_back();
  rewrite(ls);
  BOOST_CHECK(says(verify(), "entry 4 was written but is not in the log"));

  Fixture f2;
  f2.write(4);
  auto ls2 = f2.lines();
  const auto at = ls2[3].find("BC-0001");
  ls2[3].replace(at, 7, "BC-0002");
  f2.rewrite(ls2);
  const auto r = f2.verify();
  BOOST_CHECK_EQUAL(r.problems.size(), 1u);
  BOOST_CHECK(f2.says(r, "entry 4 differs from its anchored hash"));
  BOOST_CHECK(!AuditLog::verify(f2.dir / "nothing.log", f2.anchor).ok());  // a deleted log
}

BOOST_AUTO_TEST_CASE(a_torn_last_write_is_cut_at_reopen_and_recorded) {
  write(2);
  {
    std::ofstream out(file, std::ios::app);
    out << R"({"seq":3,"time":"2026-)";  // the crash
  }
  BOOST_CHECK(!AuditLog::verify(file, anchor).ok());
  write(1);
  const auto r = verify();
  BOOST_CHECK(r.ok());
  BOOST_CHECK_EQUAL(r.entries, 3u);
  BOOST_CHECK_NE(lines().back().find("\"torn_entry_cut\":\"22 bytes\""), std::string::npos);
}

BOOST_AUTO_TEST_CASE(an_append_that_fails_half_way_leaves_nothing_and_the_chain_goes_on) {
  // What chaos seed 14 found: the disk filled in the middle of an entry; its first bytes stayed,
  // and the next entry followed them on the same line, so the log no longer verified. A file
  // size limit (RLIMIT_FSIZE) stands in for the full disk: the write is cut short the same way.
  write(2);
  const auto size = std::filesystem::file_size(file);
  AuditLog log(file);
  AuditEvent e;
  e.event = "docking";
  e.actor = "dock test";
  e.why = std::string(300, 'x');  // longer than the room left
  rlimit old{};
  BOOST_REQUIRE_EQUAL(::getrlimit(RLIMIT_FSIZE, &old), 0);
  const auto was = std::signal(SIGXFSZ, SIG_IGN);
  rlimit small = old;
  small.rlim_cur = size + 100;
  BOOST_REQUIRE_EQUAL(::setrlimit(RLIMIT_FSIZE, &small), 0);
  BOOST_CHECK_THROW(log.append(e), std::system_error);
  BOOST_CHECK_THROW(log.append(e), std::system_error);  // still full: still nothing left behind
  ::setrlimit(RLIMIT_FSIZE, &old);
  std::signal(SIGXFSZ, was);
  BOOST_CHECK_EQUAL(std::filesystem::file_size(file), size);
  BOOST_CHECK_EQUAL(log.last_seq(), 2u);
  // Space is back: the next entry follows the last good one and says what was cut.
  anchor = log.append(e);
  BOOST_CHECK_EQUAL(anchor->first, 3u);
  const auto r = verify();
  BOOST_CHECK_MESSAGE(r.ok(), (r.problems.empty() ? std::string() : r.problems.front()));
  BOOST_CHECK_EQUAL(r.entries, 3u);
  BOOST_CHECK_NE(lines().back().find("\"torn_entry_cut\":\"100 bytes (File too large)\""), std::string::npos);
}

BOOST_AUTO_TEST_SUITE_END()
