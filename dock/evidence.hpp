#pragma once
/// Evidence verification for the centre (`dockctl evidence verify STORE`): for every camera in a
/// store laid out as the embedded sink writes it (STORE/<serial>/<seq:08>-<sha256>.seg beside
/// its .manifest.json), checks each manifest against its own hash, each segment's size, chunk
/// hashes and whole hash against its manifest, and the hash chain from one segment to the next.
/// Every finding names the camera and segment: an altered byte (and its chunk), a missing or
/// swapped file, an edited manifest, a gap in the chain, a signature that does not verify with
/// the camera's certificate (carried in the dock's custody note), and, given the fleet CA, a
/// certificate the fleet never issued to that camera. Nothing is ever repaired.
///
/// `decrypt_segment` is the one place footage becomes viewable: it needs the organisation's
/// recording private key and a stated purpose, and logs both who and why.

#include "proto/crypto.hpp"

#include <cstdint>
#include <optional>
#include <filesystem>
#include <string>
#include <vector>

namespace bodydock::dock {

struct EvidenceReport {
  std::uint64_t cameras = 0;
  std::uint64_t segments = 0;       ///< manifests found
  std::uint64_t intact = 0;         ///< segments whose every check passed
  std::vector<std::string> problems;
  std::vector<std::string> notes;   ///< limits of the check, not findings
  [[nodiscard]] bool ok() const { return problems.empty(); }
};

/// `fleet`: the fleet CA to check camera certificates against (without it, only the signature
/// is checked against the certificate the dock recorded, and the report says so).
EvidenceReport verify_evidence(const std::filesystem::path& store, const std::optional<proto::crypto::TrustAnchor>& fleet = std::nullopt);

/// Lawful purposes for viewing footage (AVG/GDPR: access needs a stated purpose).
inline constexpr const char* kDecryptPurposes[] = {"investigation", "complaint", "subject-access-request", "training"};

struct DecryptRequest {
  std::filesystem::path segment;      ///< a stored .seg; its .manifest.json must be beside it
  std::filesystem::path key;          ///< the organisation's recording private key (PEM)
  std::filesystem::path out;          ///< plaintext goes here (0600); never over an existing file
  std::string purpose;                ///< one of kDecryptPurposes
  std::string who;                    ///< the person decrypting
  std::string reference;              ///< case or request number, free text (may be empty)
  std::filesystem::path access_log;   ///< hash-chained log of every decryption
};
/// Verifies the segment against its manifest, logs the access (before any plaintext exists),
/// unwraps the segment key and decrypts chunk by chunk, every chunk authenticated. Throws
/// std::runtime_error naming what failed; a partial output is removed.
std::uint64_t decrypt_segment(const DecryptRequest& r);

}  // namespace bodydock::dock
