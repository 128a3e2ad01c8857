#include "dock/pki.hpp"

#include "dock/files.hpp"
#include "proto/manifest.hpp"
#include "proto/openssl_util.hpp"

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <ctime>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <system_error>
#include <variant>

namespace bodydock::pki {

namespace fs = std::filesystem;

namespace {

using proto::ossl::Bio;
using proto::ossl::Bn;
using proto::ossl::bio_text;
using proto::ossl::Cert;
using proto::ossl::Crl;
using proto::ossl::Free;
using proto::ossl::Key;
using proto::ossl::name_entry;

std::string openssl_error() {
  std::string out;
  while (const unsigned long e = ERR_get_error()) {
    char b[256];
    ERR_error_string_n(e, b, sizeof b);
    if (!out.empty()) out += "; ";
    out += b;
  }
  return out.empty() ? "unknown OpenSSL error" : out;
}

[[noreturn]] void fail(const std::string& what) {
  const auto detail = openssl_error();
  throw PkiError(what + (detail == "unknown OpenSSL error" ? "" : " (" + detail + ")"));
}

std::string read_text(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) throw PkiError(p.string() + ": cannot read (" + std::generic_category().message(errno) + ")");
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

/// Writes atomically with `mode`: a crash leaves the old file or the new one, never half of one.
void write_file(const fs::path& p, const std::string& content, unsigned mode) {
  if (auto ec = dock::write_file_atomic(p, content, mode)) throw PkiError(p.string() + ": cannot write (" + ec.message() + ")");
}

using proto::ossl::mem_bio;

Cert load_cert(const fs::path& p) {
  const auto text = read_text(p);
  auto b = mem_bio(text);
  Cert c(PEM_read_bio_X509(b.get(), nullptr, nullptr, nullptr));
  if (!c) fail(p.string() + ": not a PEM certificate");
  return c;
}

Key load_private_key(const fs::path& p) {
  struct stat st {};
  if (::stat(p.c_str(), &st) != 0) throw PkiError(p.string() + ": missing (" + std::generic_category().message(errno) + ")");
  if (st.st_mode & 077) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    throw PkiError(p.string() + ": private key readable by others (mode " + mode + "); chmod 600 it");
  }
  const auto text = read_text(p);
  auto b = mem_bio(text);
  Key k(PEM_read_bio_PrivateKey(b.get(), nullptr, nullptr, nullptr));
  if (!k) fail(p.string() + ": not a PEM private key");
  return k;
}

void require_p256(EVP_PKEY* k, const std::string& what) {
  std::string curve;
  if (!proto::ossl::is_p256(k, &curve))
    throw PkiError(what + ": not an ECDSA P-256 key" + (curve.empty() ? std::string() : " (curve " + curve + ")"));
}

Key new_p256_key() {
  Key k(EVP_EC_gen("P-256"));
  if (!k) fail("cannot generate a P-256 key");
  return k;
}

std::string key_pem(EVP_PKEY* k) {
  Bio b(BIO_new(BIO_s_mem()));
  if (!PEM_write_bio_PrivateKey(b.get(), k, nullptr, nullptr, 0, nullptr, nullptr)) fail("cannot encode a private key");
  return bio_text(b.get());
}

std::string cert_pem(X509* c) {
  Bio b(BIO_new(BIO_s_mem()));
  if (!PEM_write_bio_X509(b.get(), c)) fail("cannot encode a certificate");
  return bio_text(b.get());
}


std::string serial_hex(X509* c) {
  Bn bn(ASN1_INTEGER_to_BN(X509_get0_serialNumber(c), nullptr));
  char* hex = BN_bn2hex(bn.get());
  std::string s(hex ? hex : "");
  OPENSSL_free(hex);
  return s;
}

std::string time_text(const ASN1_TIME* t) {
  std::tm tm{};
  if (ASN1_TIME_to_tm(t, &tm) != 1) return "?";
  char b[32];
  std::strftime(b, sizeof b, "%Y-%m-%d %H:%M:%S", &tm);
  return b;
}

void add_ext(X509* x, X509V3_CTX* ctx, int nid, const char* value) {
  X509_EXTENSION* e = X509V3_EXT_conf_nid(nullptr, ctx, nid, value);
  if (!e) fail(std::string("cannot make extension ") + OBJ_nid2sn(nid));
  X509_add_ext(x, e, -1);
  X509_EXTENSION_free(e);
}

struct Subject {
  std::string cn;
  std::string ou;
  std::string officer;  ///< pseudonym
};

Cert make_cert(const Subject& who, EVP_PKEY* pub, X509* issuer, EVP_PKEY* issuer_key, Validity v, bool ca) {
  Cert x(X509_new());
  X509_set_version(x.get(), X509_VERSION_3);
  Bn bn(BN_new());
  if (!bn || !BN_rand(bn.get(), 127, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) || !BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(x.get())))
    fail("cannot make a serial number");
  X509_gmtime_adj(X509_getm_notBefore(x.get()), static_cast<long>(v.not_before.count()));
  X509_gmtime_adj(X509_getm_notAfter(x.get()), static_cast<long>((v.not_before + v.lifetime).count()));
  X509_NAME* n = X509_get_subject_name(x.get());
  auto add = [&](int nid, const std::string& value) {
    if (!value.empty() &&
        !X509_NAME_add_entry_by_NID(n, nid, MBSTRING_UTF8, reinterpret_cast<const unsigned char*>(value.c_str()), -1, -1, 0))
      fail("cannot set " + std::string(OBJ_nid2sn(nid)));
  };
  add(NID_organizationalUnitName, who.ou);
  add(NID_commonName, who.cn);
  add(NID_pseudonym, who.officer);
  X509_set_issuer_name(x.get(), issuer ? X509_get_subject_name(issuer) : n);
  X509_set_pubkey(x.get(), pub);
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, issuer ? issuer : x.get(), x.get(), nullptr, nullptr, 0);
  add_ext(x.get(), &ctx, NID_basic_constraints, ca ? "critical,CA:TRUE,pathlen:0" : "critical,CA:FALSE");
  add_ext(x.get(), &ctx, NID_key_usage, ca ? "critical,keyCertSign,cRLSign" : "critical,digitalSignature");
  add_ext(x.get(), &ctx, NID_subject_key_identifier, "hash");
  if (!ca) add_ext(x.get(), &ctx, NID_authority_key_identifier, "keyid:always");
  if (!X509_sign(x.get(), issuer_key, EVP_sha256())) fail("cannot sign a certificate");
  return x;
}

struct Revocation {
  std::string serial_hex;
  std::time_t when = 0;
  std::string name;
  std::string reason;
};

std::vector<Revocation> read_revoked(const fs::path& dir) {
  std::vector<Revocation> out;
  std::ifstream in(dir / "revoked.txt");
  for (std::string line; std::getline(in, line);) {
    std::istringstream f(line);
    Revocation r;
    std::string when;
    if (std::getline(f, r.serial_hex, '\t') && std::getline(f, when, '\t') && std::getline(f, r.name, '\t')) {
      std::getline(f, r.reason);
      r.when = static_cast<std::time_t>(std::stoll(when));
      out.push_back(r);
    }
  }
  return out;
}

fs::path cert_path(const fs::path& dir, Role r, const std::string& name) {
  return dir / (r == Role::dock ? "docks" : "cameras") / (name + ".crt");
}

}  // namespace

const char* role_name(Role r) noexcept {
  switch (r) {
    case Role::ca: return "fleet-ca";
    case Role::dock: return "dock";
    case Role::camera: return "camera";
  }
  return "?";
}

bool valid_name(const std::string& name) { return proto::valid_serial(name); }

Fleet Fleet::create(const fs::path& dir, const std::string& name, Validity v) {
  if (fs::exists(dir / "ca.key") || fs::exists(dir / "ca.crt")) throw PkiError(dir.string() + ": already holds a fleet CA");
  if (name.empty() || name.size() > 64) throw PkiError("the fleet name must be 1..64 characters");
  fs::create_directories(dir / "docks");
  fs::create_directories(dir / "cameras");
  fs::permissions(dir, fs::perms::owner_all, fs::perm_options::replace);
  auto key = new_p256_key();
  auto cert = make_cert({name, role_name(Role::ca), {}}, key.get(), nullptr, key.get(), v, true);
  write_file(dir / "ca.key", key_pem(key.get()), 0600);
  write_file(dir / "ca.crt", cert_pem(cert.get()), 0644);
  Fleet f(dir);
  f.write_crl();
  return f;
}

Fleet Fleet::open(const fs::path& dir) {
  if (!fs::exists(dir / "ca.crt")) throw PkiError(dir.string() + ": no fleet CA here (ca.crt missing); create one with `dockctl pki init`");
  auto cert = load_cert(dir / "ca.crt");
  auto key = load_private_key(dir / "ca.key");
  if (X509_check_private_key(cert.get(), key.get()) != 1) {
    ERR_clear_error();
    throw PkiError((dir / "ca.key").string() + " does not belong to " + (dir / "ca.crt").string());
  }
  if (X509_cmp_current_time(X509_get0_notAfter(cert.get())) < 0)
    throw PkiError("the fleet CA expired on " + time_text(X509_get0_notAfter(cert.get())) + " UTC");
  return Fleet(dir);
}

void Fleet::issue_dock(const std::string& id, Validity v) {
  if (!valid_name(id)) throw PkiError("'" + id + "' is not a valid dock id (1..64 of A-Z a-z 0-9 . _ -)");
  const auto crt = cert_path(dir_, Role::dock, id);
  const auto revoked = read_revoked(dir_);
  if (fs::exists(crt)) {
    const auto old = serial_hex(load_cert(crt).get());
    if (std::none_of(revoked.begin(), revoked.end(), [&](const auto& r) { return r.serial_hex == old; }))
      throw PkiError("dock '" + id + "' already has a certificate; revoke it first");
  }
  auto ca = load_cert(dir_ / "ca.crt");
  auto ca_key = load_private_key(dir_ / "ca.key");
  auto key = new_p256_key();
  auto cert = make_cert({id, role_name(Role::dock), {}}, key.get(), ca.get(), ca_key.get(), v, false);
  write_file(dir_ / "docks" / (id + ".key"), key_pem(key.get()), 0600);
  write_file(crt, cert_pem(cert.get()), 0644);
}

void Fleet::enrol_camera(const std::string& serial, const std::string& officer, const fs::path& public_key_pem, Validity v) {
  if (!valid_name(serial)) throw PkiError("'" + serial + "' is not a valid camera serial (1..64 of A-Z a-z 0-9 . _ -)");
  if (officer.empty() || officer.size() > 64 || !valid_name(officer))
    throw PkiError("'" + officer + "' is not a valid officer id (1..64 of A-Z a-z 0-9 . _ -)");
  const auto text = read_text(public_key_pem);
  auto b = mem_bio(text);
  Key pub(PEM_read_bio_PUBKEY(b.get(), nullptr, nullptr, nullptr));
  if (!pub) fail(public_key_pem.string() + ": not a PEM public key");
  require_p256(pub.get(), public_key_pem.string());
  const auto revoked = read_revoked(dir_);
  auto is_revoked = [&](X509* c) {
    const auto s = serial_hex(c);
    return std::any_of(revoked.begin(), revoked.end(), [&](const auto& r) { return r.serial_hex == s; });
  };
  // One key, one camera: a key already enrolled elsewhere would let one camera pass as another.
  for (const auto& e : fs::directory_iterator(dir_ / "cameras")) {
    if (e.path().extension() != ".crt") continue;
    auto other = load_cert(e.path());
    if (is_revoked(other.get())) continue;
    const auto other_name = e.path().stem().string();
    if (other_name == serial) throw PkiError("camera '" + serial + "' is already enrolled; revoke it first");
    if (EVP_PKEY_eq(X509_get0_pubkey(other.get()), pub.get()) == 1)
      throw PkiError(public_key_pem.string() + ": this key is already enrolled as camera '" + other_name + "'");
  }
  auto ca = load_cert(dir_ / "ca.crt");
  auto ca_key = load_private_key(dir_ / "ca.key");
  auto cert = make_cert({serial, role_name(Role::camera), officer}, pub.get(), ca.get(), ca_key.get(), v, false);
  write_file(cert_path(dir_, Role::camera, serial), cert_pem(cert.get()), 0644);
}

void Fleet::reassign_camera(const std::string& serial, const std::string& officer, Validity v) {
  if (officer.empty() || officer.size() > 64 || !valid_name(officer))
    throw PkiError("'" + officer + "' is not a valid officer id (1..64 of A-Z a-z 0-9 . _ -)");
  const auto crt = valid_name(serial) ? cert_path(dir_, Role::camera, serial) : fs::path();
  if (crt.empty() || !fs::exists(crt)) throw PkiError("no camera called '" + serial + "' in this fleet");
  auto old = load_cert(crt);
  const auto old_serial = serial_hex(old.get());
  const auto revoked = read_revoked(dir_);
  if (std::any_of(revoked.begin(), revoked.end(), [&](const auto& r) { return r.serial_hex == old_serial; }))
    throw PkiError("camera '" + serial + "' is revoked; enrol it again instead");
  // The same secure-element key, bound to the new officer. The new certificate is made first;
  // then the old one is revoked by its serial number (a camera still showing it is refused
  // until it carries the new one), and the new one takes its place.
  Key pub(X509_get_pubkey(old.get()));
  if (!pub) fail(crt.string() + ": no public key");
  auto ca = load_cert(dir_ / "ca.crt");
  auto ca_key = load_private_key(dir_ / "ca.key");
  auto cert = make_cert({serial, role_name(Role::camera), officer}, pub.get(), ca.get(), ca_key.get(), v, false);
  const auto pem = cert_pem(cert.get());
  add_revocation(old_serial, serial, "reassigned to officer " + officer);
  write_file(crt, pem, 0644);
}

void Fleet::revoke(const std::string& name, const std::string& reason) {
  fs::path crt;
  for (Role r : {Role::camera, Role::dock})
    if (valid_name(name) && fs::exists(cert_path(dir_, r, name))) crt = cert_path(dir_, r, name);
  if (crt.empty()) throw PkiError("no dock or camera called '" + name + "' in this fleet");
  auto cert = load_cert(crt);
  const auto s = serial_hex(cert.get());
  auto revoked = read_revoked(dir_);
  if (std::any_of(revoked.begin(), revoked.end(), [&](const auto& r) { return r.serial_hex == s; }))
    throw PkiError("'" + name + "' is already revoked");
  add_revocation(s, name, reason);
}

void Fleet::add_revocation(const std::string& s, const std::string& name, const std::string& reason) {
  std::string clean = reason;
  std::replace_if(clean.begin(), clean.end(), [](char c) { return c == '\t' || c == '\n' || c == '\r'; }, ' ');
  std::string lines = fs::exists(dir_ / "revoked.txt") ? read_text(dir_ / "revoked.txt") : std::string();
  lines += s + "\t" + std::to_string(std::time(nullptr)) + "\t" + name + "\t" + clean + "\n";
  write_file(dir_ / "revoked.txt", lines, 0644);
  write_crl();
}

void Fleet::write_crl() const {
  auto ca = load_cert(dir_ / "ca.crt");
  auto ca_key = load_private_key(dir_ / "ca.key");
  Crl crl(X509_CRL_new());
  X509_CRL_set_version(crl.get(), X509_CRL_VERSION_2);
  X509_CRL_set_issuer_name(crl.get(), X509_get_subject_name(ca.get()));
  const std::time_t now = std::time(nullptr);
  std::unique_ptr<ASN1_TIME, Free<ASN1_TIME, ASN1_TIME_free>> last(ASN1_TIME_set(nullptr, now));
  std::unique_ptr<ASN1_TIME, Free<ASN1_TIME, ASN1_TIME_free>> next(ASN1_TIME_set(nullptr, now + 30L * 24 * 3600));
  X509_CRL_set1_lastUpdate(crl.get(), last.get());
  X509_CRL_set1_nextUpdate(crl.get(), next.get());
  for (const auto& r : read_revoked(dir_)) {
    BIGNUM* raw = nullptr;
    if (!BN_hex2bn(&raw, r.serial_hex.c_str())) throw PkiError((dir_ / "revoked.txt").string() + ": bad serial '" + r.serial_hex + "'");
    Bn bn(raw);
    X509_REVOKED* rev = X509_REVOKED_new();
    ASN1_INTEGER* serial = BN_to_ASN1_INTEGER(bn.get(), nullptr);
    std::unique_ptr<ASN1_TIME, Free<ASN1_TIME, ASN1_TIME_free>> when(ASN1_TIME_set(nullptr, r.when));
    X509_REVOKED_set_serialNumber(rev, serial);
    X509_REVOKED_set_revocationDate(rev, when.get());
    ASN1_INTEGER_free(serial);
    X509_CRL_add0_revoked(crl.get(), rev);
  }
  X509_CRL_sort(crl.get());
  if (!X509_CRL_sign(crl.get(), ca_key.get(), EVP_sha256())) fail("cannot sign the CRL");
  Bio b(BIO_new(BIO_s_mem()));
  if (!PEM_write_bio_X509_CRL(b.get(), crl.get())) fail("cannot encode the CRL");
  write_file(dir_ / "crl.pem", bio_text(b.get()), 0644);
}

std::vector<Issued> Fleet::list() const {
  std::vector<Issued> out;
  const auto revoked = read_revoked(dir_);
  for (Role r : {Role::dock, Role::camera}) {
    const auto sub = dir_ / (r == Role::dock ? "docks" : "cameras");
    std::vector<fs::path> files;
    for (const auto& e : fs::directory_iterator(sub))
      if (e.path().extension() == ".crt") files.push_back(e.path());
    std::sort(files.begin(), files.end());
    for (const auto& p : files) {
      auto c = load_cert(p);
      Issued i;
      i.role = r;
      i.name = name_entry(c.get(), NID_commonName);
      i.officer = name_entry(c.get(), NID_pseudonym);
      i.serial_hex = serial_hex(c.get());
      i.not_after = time_text(X509_get0_notAfter(c.get()));
      i.expired = X509_cmp_current_time(X509_get0_notAfter(c.get())) < 0;
      i.revoked = std::any_of(revoked.begin(), revoked.end(), [&](const auto& rv) { return rv.serial_hex == i.serial_hex; });
      out.push_back(std::move(i));
    }
  }
  return out;
}

std::optional<std::string> Fleet::check(const fs::path& cert_file, Role role, const std::string& name) const {
  proto::Bytes der;
  try {
    der = proto::crypto::cert_der(read_text(cert_file));
  } catch (const PkiError& e) {
    return std::string(e.what());  // cannot read it
  } catch (const proto::crypto::CryptoError&) {
    return cert_file.string() + ": not a PEM certificate";
  }
  // The same check a dock makes at docking (proto::crypto::TrustAnchor), with this fleet's CRL.
  const auto anchor = [&] {
    try {
      return proto::crypto::TrustAnchor::from_pem(read_text(dir_ / "ca.crt"), read_text(dir_ / "crl.pem"));
    } catch (const proto::crypto::CryptoError& e) {
      throw PkiError(dir_.string() + ": " + e.what());
    }
  }();
  const auto verdict = anchor.check(der, role_name(role), name);
  if (const auto* why = std::get_if<std::string>(&verdict)) return *why;
  return std::nullopt;
}

DockIdentity load_dock_identity(const fs::path& dir) {
  const auto ca = read_text(dir / "ca.crt");
  const auto crl = read_text(dir / "crl.pem");
  const auto cert_pem = read_text(dir / "dock.crt");
  auto key = load_private_key(dir / "dock.key");  // refuses a key others can read
  require_p256(key.get(), (dir / "dock.key").string());
  auto cert = load_cert(dir / "dock.crt");
  if (X509_check_private_key(cert.get(), key.get()) != 1) {
    ERR_clear_error();
    throw PkiError((dir / "dock.key").string() + " does not belong to " + (dir / "dock.crt").string());
  }
  auto anchor = [&] {
    try {
      return proto::crypto::TrustAnchor::from_pem(ca, crl);
    } catch (const proto::crypto::CryptoError& e) {
      throw PkiError(dir.string() + ": " + e.what());
    }
  }();
  auto der = proto::crypto::cert_der(cert_pem);
  const auto verdict = anchor.check(der, role_name(Role::dock));
  if (const auto* why = std::get_if<std::string>(&verdict)) throw PkiError((dir / "dock.crt").string() + ": " + *why);
  return DockIdentity{anchor, proto::crypto::PrivateKey::from_pem(key_pem(key.get())), std::move(der),
                      std::get<proto::crypto::CertInfo>(verdict).name};
}

void provision_dock(Fleet& fleet, const std::string& id, const fs::path& trust_dir) {
  const auto crt = cert_path(fleet.dir(), Role::dock, id);
  if (!fs::exists(crt)) fleet.issue_dock(id);
  fs::create_directories(trust_dir);
  fs::permissions(trust_dir, fs::perms::owner_all, fs::perm_options::replace);
  write_file(trust_dir / "ca.crt", read_text(fleet.dir() / "ca.crt"), 0644);
  write_file(trust_dir / "crl.pem", read_text(fleet.dir() / "crl.pem"), 0644);
  write_file(trust_dir / "dock.key", read_text(fleet.dir() / "docks" / (id + ".key")), 0600);
  write_file(trust_dir / "dock.crt", read_text(crt), 0644);
}

void make_device_key(const fs::path& private_pem, const fs::path& public_pem) {
  auto key = new_p256_key();
  write_file(private_pem, key_pem(key.get()), 0600);
  Bio b(BIO_new(BIO_s_mem()));
  if (!PEM_write_bio_PUBKEY(b.get(), key.get())) fail("cannot encode a public key");
  write_file(public_pem, bio_text(b.get()), 0644);
}

}  // namespace bodydock::pki
