// The fleet PKI: a CA, dock and camera certificates, revocation by CRL, and the checks mutual
// authentication will rely on, each failure with its reason: another fleet's CA, expired, not
// yet valid, revoked, wrong role, another camera's certificate. Bad material is refused clearly.
#include "dock/pki.hpp"
#include "support/sandbox.hpp"

#include <boost/test/unit_test.hpp>

#include <openssl/evp.h>
#include <openssl/pem.h>

#include <sys/stat.h>

#include <fstream>

using namespace bodydock;
using pki::Fleet;
using pki::PkiError;
using pki::Role;

namespace {

constexpr auto kDay = std::chrono::hours(24);

struct FleetFixture {
  test::TempDir dir;
  Fleet fleet = Fleet::create(dir / "fleet", "Gemeente Testdam handhaving");

  std::filesystem::path camera_key(const std::string& name) {
    const auto pub = dir / (name + ".pub.pem");
    pki::make_device_key(dir / (name + ".key.pem"), pub);
    return pub;
  }
  std::filesystem::path camera_cert(const std::string& serial) const { return dir / "fleet" / "cameras" / (serial + ".crt"); }
};

std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const PkiError& e) {
    return e.what();
  }
  return "(no error)";
}

bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

}  // namespace

BOOST_FIXTURE_TEST_SUITE(fleet_pki, FleetFixture)

BOOST_AUTO_TEST_CASE(ca_docks_and_cameras_are_issued_and_check_out) {
  struct stat st {};
  BOOST_REQUIRE_EQUAL(::stat((dir / "fleet" / "ca.key").c_str(), &st), 0);
  BOOST_CHECK_EQUAL(st.st_mode & 0777, 0600u);
  BOOST_REQUIRE_EQUAL(::stat((dir / "fleet").c_str(), &st), 0);
  BOOST_CHECK_EQUAL(st.st_mode & 0777, 0700u);

  auto f = Fleet::open(dir / "fleet");
  f.issue_dock("dock-01");
  BOOST_REQUIRE_EQUAL(::stat((dir / "fleet" / "docks" / "dock-01.key").c_str(), &st), 0);
  BOOST_CHECK_EQUAL(st.st_mode & 0777, 0600u);
  f.enrol_camera("BC-0001", "H-1234", camera_key("cam1"));

  BOOST_CHECK(!f.check(camera_cert("BC-0001"), Role::camera, "BC-0001"));
  BOOST_CHECK(!f.check(dir / "fleet" / "docks" / "dock-01.crt", Role::dock, "dock-01"));
  const auto items = f.list();
  BOOST_REQUIRE_EQUAL(items.size(), 2u);
  BOOST_CHECK(items[0].role == Role::dock && items[0].name == "dock-01");
  BOOST_CHECK(items[1].role == Role::camera && items[1].name == "BC-0001" && items[1].officer == "H-1234");
  BOOST_CHECK(!items[1].revoked && !items[1].expired);
}

BOOST_AUTO_TEST_CASE(each_bad_certificate_fails_with_its_reason) {
  fleet.issue_dock("dock-01");
  fleet.enrol_camera("BC-0001", "H-1", camera_key("cam1"));
  fleet.enrol_camera("BC-0002", "H-2", camera_key("cam2"));
  // A camera presenting another camera's certificate; a dock certificate offered as a camera's.
  BOOST_CHECK(has(*fleet.check(camera_cert("BC-0002"), Role::camera, "BC-0001"), "issued to 'BC-0002', not 'BC-0001'"));
  BOOST_CHECK(has(*fleet.check(dir / "fleet" / "docks" / "dock-01.crt", Role::camera), "not a camera certificate"));
  // Revoked.
  fleet.revoke("BC-0002", "lost on duty");
  BOOST_CHECK_EQUAL(*fleet.check(camera_cert("BC-0002"), Role::camera, "BC-0002"), "certificate revoked");
  BOOST_CHECK(fleet.list()[2].revoked);
  // Expired, and not yet valid.
  fleet.enrol_camera("BC-0003", "H-3", camera_key("cam3"), {-2 * kDay, 1 * kDay});
  BOOST_CHECK_EQUAL(*fleet.check(camera_cert("BC-0003"), Role::camera), "certificate has expired");
  fleet.enrol_camera("BC-0004", "H-4", camera_key("cam4"), {1 * kDay, 10 * kDay});
  BOOST_CHECK_EQUAL(*fleet.check(camera_cert("BC-0004"), Role::camera), "certificate is not yet valid");
  // Another organisation's CA.
  auto other = Fleet::create(dir / "other", "Another city");
  other.enrol_camera("BC-0001", "H-1", camera_key("rogue"));
  BOOST_CHECK(has(*fleet.check(dir / "other" / "cameras" / "BC-0001.crt", Role::camera, "BC-0001"), "unable to get local issuer certificate"));
  // Not a certificate at all.
  std::ofstream(dir / "junk.crt") << "-----BEGIN CERTIFICATE-----\nnot base64\n";
  BOOST_CHECK(has(*fleet.check(dir / "junk.crt", Role::camera), "not a PEM certificate"));
}

BOOST_AUTO_TEST_CASE(a_revoked_camera_can_be_enrolled_again_with_a_new_key) {
  const auto key = camera_key("cam1");
  fleet.enrol_camera("BC-0001", "H-1", key);
  BOOST_CHECK(has(message_of([&] { fleet.enrol_camera("BC-0001", "H-1", camera_key("cam1b")); }), "already enrolled; revoke it first"));
  fleet.revoke("BC-0001", "secure element replaced");
  BOOST_CHECK(has(message_of([&] { fleet.revoke("BC-0001", "again"); }), "already revoked"));
  fleet.enrol_camera("BC-0001", "H-1", camera_key("cam1c"));
  BOOST_CHECK(!fleet.check(camera_cert("BC-0001"), Role::camera, "BC-0001"));
}

BOOST_AUTO_TEST_CASE(bad_material_is_refused_with_a_clear_message) {
  BOOST_CHECK(has(message_of([&] { Fleet::create(dir / "fleet", "again"); }), "already holds a fleet CA"));
  BOOST_CHECK(has(message_of([&] { Fleet::open(dir / "nowhere"); }), "no fleet CA here"));
  // One key for two cameras would let one pass as the other.
  const auto key = camera_key("cam1");
  fleet.enrol_camera("BC-0001", "H-1", key);
  BOOST_CHECK(has(message_of([&] { fleet.enrol_camera("BC-0002", "H-2", key); }), "already enrolled as camera 'BC-0001'"));
  std::ofstream(dir / "garbage.pem") << "hello";
  BOOST_CHECK(has(message_of([&] { fleet.enrol_camera("BC-0003", "H-3", dir / "garbage.pem"); }), "not a PEM public key"));
  {
    EVP_PKEY* p384 = EVP_EC_gen("P-384");
    FILE* f = std::fopen((dir / "p384.pem").c_str(), "w");
    PEM_write_PUBKEY(f, p384);
    std::fclose(f);
    EVP_PKEY_free(p384);
  }
  BOOST_CHECK(has(message_of([&] { fleet.enrol_camera("BC-0003", "H-3", dir / "p384.pem"); }), "not an ECDSA P-256 key"));
  BOOST_CHECK(has(message_of([&] { fleet.enrol_camera("../etc", "H-3", key); }), "not a valid camera serial"));
  BOOST_CHECK(has(message_of([&] { fleet.enrol_camera("BC-0009", "", key); }), "not a valid officer id"));
  BOOST_CHECK(has(message_of([&] { fleet.revoke("BC-7777", "?"); }), "no dock or camera called 'BC-7777'"));
  // A CA key others can read is refused; a key from another fleet does not match.
  std::filesystem::permissions(dir / "fleet" / "ca.key", std::filesystem::perms::group_read, std::filesystem::perm_options::add);
  BOOST_CHECK(has(message_of([&] { Fleet::open(dir / "fleet"); }), "readable by others (mode 0640)"));
  std::filesystem::permissions(dir / "fleet" / "ca.key", std::filesystem::perms::group_read, std::filesystem::perm_options::remove);
  Fleet::create(dir / "other", "Another city");
  std::filesystem::copy_file(dir / "other" / "ca.key", dir / "fleet" / "ca.key", std::filesystem::copy_options::overwrite_existing);
  BOOST_CHECK(has(message_of([&] { Fleet::open(dir / "fleet"); }), "does not belong to"));
}

BOOST_AUTO_TEST_SUITE_END()
