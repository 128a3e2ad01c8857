#pragma once
/// The fleet PKI (DESIGN section 4): a small certificate authority for one organisation's docks
/// and cameras, on OpenSSL 3. ECDSA P-256 throughout: it is what camera secure elements offer,
/// and one curve keeps the camera side small.
///
/// Layout of a fleet directory (0700):
///   ca.key (0600), ca.crt            the fleet CA
///   crl.pem, revoked.txt             revocations (the CRL is re-signed on every change)
///   docks/<id>.key (0600), .crt      dock identities
///   cameras/<serial>.crt             camera certificates; the private key never leaves the
///                                    camera's secure element: enrolment takes its public key
/// Certificates name their role in OU (`dock` / `camera`); a camera's carries its serial as CN
/// and the assigned officer's id as `pseudonym`.
/// Errors are PkiError with a message that says what is wrong with which file.

#include "proto/crypto.hpp"

#include <chrono>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace bodydock::pki {

struct PkiError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

enum class Role { ca, dock, camera };
const char* role_name(Role r) noexcept;

/// One issued certificate, as `list` shows it.
struct Issued {
  Role role = Role::dock;
  std::string name;       ///< dock id or camera serial
  std::string officer;    ///< cameras only
  std::string serial_hex; ///< certificate serial number
  std::string not_after;  ///< UTC, e.g. "2031-11-29 18:00:00"
  bool revoked = false;
  bool expired = false;
};

/// Validity of a new certificate. `not_before` may lie in the past (tests make expired ones).
struct Validity {
  std::chrono::seconds not_before{0};          ///< relative to now
  std::chrono::seconds lifetime{std::chrono::hours(24 * 825)};
};

class Fleet {
 public:
  /// Creates a new fleet CA in `dir` (which must not hold one).
  static Fleet create(const std::filesystem::path& dir, const std::string& name, Validity v = {std::chrono::seconds(0), std::chrono::hours(24 * 3650)});
  /// Opens an existing fleet; checks that its key matches its certificate.
  static Fleet open(const std::filesystem::path& dir);

  /// A dock identity: new key (0600) and certificate.
  void issue_dock(const std::string& id, Validity v = {});
  /// A camera's certificate for the public key its secure element made (PEM file).
  void enrol_camera(const std::string& serial, const std::string& officer, const std::filesystem::path& public_key_pem,
                    Validity v = {std::chrono::seconds(0), std::chrono::hours(24 * 1825)});
  /// Binds an enrolled camera to another officer: a new certificate for the same device key,
  /// the old one revoked (the CRL re-signed). The camera must be given the new certificate.
  void reassign_camera(const std::string& serial, const std::string& officer,
                       Validity v = {std::chrono::seconds(0), std::chrono::hours(24 * 1825)});
  /// Revokes the dock or camera called `name`; the CRL is re-signed.
  void revoke(const std::string& name, const std::string& reason);
  [[nodiscard]] std::vector<Issued> list() const;

  /// Checks a certificate (PEM file) against this fleet: signed by the CA, in its validity
  /// period, not revoked, of the expected role (and name, if given). nullopt when it is good,
  /// else why not, in words.
  [[nodiscard]] std::optional<std::string> check(const std::filesystem::path& cert_pem, Role role, const std::string& name = {}) const;

  [[nodiscard]] const std::filesystem::path& dir() const { return dir_; }

 private:
  explicit Fleet(std::filesystem::path dir) : dir_(std::move(dir)) {}
  void write_crl() const;
  /// Appends certificate `serial_hex` (of `name`) to revoked.txt and re-signs the CRL.
  void add_revocation(const std::string& serial_hex, const std::string& name, const std::string& reason);
  std::filesystem::path dir_;
};

/// What a dock needs to take part in mutual authentication and to sign custody receipts: the
/// fleet CA and CRL it checks cameras against, its own key and certificate. Never the CA key.
/// On disk (a "trust directory", 0700): ca.crt, crl.pem, dock.key (0600), dock.crt.
struct DockIdentity {
  proto::crypto::TrustAnchor fleet;
  proto::crypto::PrivateKey key;
  proto::Bytes cert;   ///< DER
  std::string id;      ///< the certificate's CN
};
/// Loads and checks a trust directory: the dock certificate must verify under the CA and CRL
/// and belong to the key; errors name the file and what is wrong.
DockIdentity load_dock_identity(const std::filesystem::path& trust_dir);
/// Writes the trust directory for dock `id` from a fleet (CA certificate, CRL, the dock's key
/// and certificate), as an installer would; issues the dock's certificate first if it has none.
void provision_dock(Fleet& fleet, const std::string& id, const std::filesystem::path& trust_dir);

/// Makes an ECDSA P-256 key pair the way a camera's secure element would, writing the private
/// key (0600) and the public key as PEM (for tests, the emulator and vendor bring-up).
void make_device_key(const std::filesystem::path& private_pem, const std::filesystem::path& public_pem);

/// True when `name` may be used as a dock id or camera serial (file names, certificate CNs).
bool valid_name(const std::string& name);

}  // namespace bodydock::pki
