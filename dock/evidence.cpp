#include "dock/evidence.hpp"

#include "dock/audit.hpp"
#include "dock/files.hpp"
#include "proto/manifest.hpp"
#include "proto/sha256.hpp"
#include "proto/trust.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <boost/json.hpp>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <system_error>
#include <variant>

namespace bodydock::dock {

namespace fs = std::filesystem;

namespace {

struct Entry {
  fs::path manifest_file;
  std::optional<proto::Manifest> manifest;
};

std::string seg_name(const std::string& serial, std::uint64_t seq) { return serial + " segment " + std::to_string(seq); }

/// Hashes a segment file chunk by chunk; the first chunk that differs, or the whole hash.
void check_segment(const std::string& serial, const proto::Manifest& m, const fs::path& file,
                   const std::map<std::string, std::uint64_t>& seq_of_sha, std::vector<std::string>& problems, bool& good) {
  std::error_code ec;
  const auto size = fs::file_size(file, ec);
  if (ec) {
    problems.push_back(seg_name(serial, m.seq) + ": segment file missing (" + file.filename().string() + "), its manifest is present");
    good = false;
    return;
  }
  std::ifstream in(file, std::ios::binary);
  proto::Sha256 whole;
  proto::Bytes buf(m.chunk_size);
  std::optional<std::uint64_t> bad_chunk;
  for (std::uint64_t i = 0; i < m.chunk_count() && in; ++i) {
    const auto n = m.chunk_length(i);
    in.read(reinterpret_cast<char*>(buf.data()), n);
    const auto got = static_cast<std::size_t>(in.gcount());
    const proto::ByteView part(buf.data(), got);
    whole.update(part);
    if (!bad_chunk && (got != n || !proto::digest_equal(proto::Sha256::of(part), m.chunk_sha256[i]))) bad_chunk = i;
  }
  const auto digest = whole.finish();
  if (size == m.size && !bad_chunk && proto::digest_equal(digest, m.sha256)) return;
  good = false;
  // Whole-file hash of what is there, to recognise another segment's content (a swap).
  std::uint64_t ignored = 0;
  const auto whole_file = hash_file(file, ignored);
  const auto actual = whole_file ? proto::to_hex(*whole_file) : std::string();
  if (auto it = seq_of_sha.find(actual); it != seq_of_sha.end() && it->second != m.seq) {
    problems.push_back(seg_name(serial, m.seq) + ": the file holds segment " + std::to_string(it->second) + "'s content (files swapped or replaced)");
  } else if (size != m.size) {
    problems.push_back(seg_name(serial, m.seq) + ": " + std::to_string(size) + " bytes where the manifest says " + std::to_string(m.size) +
                       " (truncated or extended)");
  } else if (bad_chunk) {
    problems.push_back(seg_name(serial, m.seq) + ": chunk " + std::to_string(*bad_chunk) + " (bytes " + std::to_string(*bad_chunk * m.chunk_size) +
                       "..) does not match its hash (altered)");
  } else {
    problems.push_back(seg_name(serial, m.seq) + ": content does not match the manifest's SHA-256 (altered)");
  }
}

}  // namespace

std::optional<proto::Bytes> from_hex(std::string_view hex) {
  if (hex.size() % 2 != 0) return std::nullopt;
  proto::Bytes out;
  out.reserve(hex.size() / 2);
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  for (std::size_t i = 0; i < hex.size(); i += 2) {
    const int hi = nibble(hex[i]);
    const int lo = nibble(hex[i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out.push_back(static_cast<std::uint8_t>(hi * 16 + lo));
  }
  return out;
}

/// The camera's signature over the manifest, with the certificate the dock recorded in its
/// custody note; empty when it verifies, else why not.
std::string signature_problem(const boost::json::object& o, const proto::Manifest& m, const std::optional<proto::crypto::TrustAnchor>& fleet) {
  const auto* custody = o.if_contains("custody");
  const auto* cert_hex = custody && custody->is_object() ? custody->as_object().if_contains("camera_certificate") : nullptr;
  if (!cert_hex || !cert_hex->is_string()) return "no camera certificate in the custody note: the signature cannot be checked";
  const auto der = from_hex(cert_hex->as_string());
  if (!der) return "the custody note's camera certificate is not hex";
  std::optional<proto::crypto::PublicKey> key;
  if (fleet) {
    const auto verdict = fleet->check(*der, "camera", m.camera_serial);
    if (const auto* why = std::get_if<std::string>(&verdict)) return "camera certificate: " + *why;
    key = std::get<proto::crypto::CertInfo>(verdict).key;
  } else {
    // Without the fleet CA: the key of the certificate as recorded (the report says so).
    try {
      key = proto::crypto::cert_public_key(*der);
    } catch (const proto::crypto::CryptoError& e) {
      return std::string("the custody note's camera certificate: ") + e.what();
    }
  }
  if (!proto::manifest_signature_valid(m, *key)) return "the camera's signature does not verify (manifest altered, or not made by this camera)";
  return {};
}

EvidenceReport verify_evidence(const fs::path& store, const std::optional<proto::crypto::TrustAnchor>& fleet) {
  EvidenceReport r;
  if (!fleet) r.notes.push_back("camera certificates not checked against the fleet CA (give --ca): signatures are checked with the certificates the docks recorded");
  if (!fs::is_directory(store)) {
    r.problems.push_back(store.string() + ": not a directory");
    return r;
  }
  std::vector<fs::path> cameras;
  // One directory per camera; "audit" holds the docks' audit log chunks, not footage.
  for (const auto& e : fs::directory_iterator(store))
    if (e.is_directory() && e.path().filename() != "audit") cameras.push_back(e.path());
  std::sort(cameras.begin(), cameras.end());
  for (const auto& dir : cameras) {
    const auto serial = dir.filename().string();
    ++r.cameras;
    std::map<std::uint64_t, Entry> by_seq;
    std::map<std::string, std::uint64_t> seq_of_sha;
    std::vector<fs::path> seg_files;
    for (const auto& e : fs::directory_iterator(dir)) {
      const auto name = e.path().filename().string();
      if (name.ends_with(".seg")) {
        seg_files.push_back(e.path());
        continue;
      }
      if (!name.ends_with(".manifest.json")) continue;
      ++r.segments;
      std::ifstream in(e.path(), std::ios::binary);
      std::stringstream text;
      text << in.rdbuf();
      boost::system::error_code ec;
      const auto v = boost::json::parse(text.str(), ec);
      auto m = ec ? boost::system::result<proto::Manifest>(proto::make_error_code(proto::errc::malformed_frame)) : proto::manifest_from_json(v);
      if (!m) {
        // NOLINTNEXTLINE(performance-inefficient-string-concatenation): one report line per unreadable manifest
        r.problems.push_back(serial + ": " + name + ": not a readable manifest (" + m.error().message() + ")");
        continue;
      }
      // A manifest names its own hash: an edited field no longer matches it.
      const auto& o = v.as_object();
      const auto claimed = o.contains("manifest_sha256") && o.at("manifest_sha256").is_string() ? std::string(o.at("manifest_sha256").as_string()) : "";
      if (claimed != proto::to_hex(proto::manifest_hash(*m)))
        r.problems.push_back(seg_name(serial, m->seq) + ": manifest edited (its fields no longer hash to its manifest_sha256)");
      if (m->camera_serial != serial)
        r.problems.push_back(seg_name(serial, m->seq) + ": manifest of camera '" + m->camera_serial + "' filed under '" + serial + "'");
      if (const auto why = signature_problem(o, *m, fleet); !why.empty()) r.problems.push_back(seg_name(serial, m->seq) + ": " + why);
      seq_of_sha[proto::to_hex(m->sha256)] = m->seq;
      by_seq[m->seq] = Entry{e.path(), std::move(*m)};
    }
    // Segment files without a manifest.
    for (const auto& f : seg_files) {
      const auto stem = f.filename().string();
      const auto seq = std::strtoull(stem.substr(0, 8).c_str(), nullptr, 10);
      if (!by_seq.contains(seq)) r.problems.push_back(seg_name(serial, seq) + ": segment file without a manifest (" + stem + ")");
    }
    const proto::Manifest* prev = nullptr;
    for (auto& [seq, entry] : by_seq) {
      const auto& m = *entry.manifest;
      bool good = true;
      auto file = entry.manifest_file;
      file.replace_filename(entry.manifest_file.filename().string().substr(0, entry.manifest_file.filename().string().size() - 14) + ".seg");
      check_segment(serial, m, file, seq_of_sha, r.problems, good);
      // The chain: each manifest names the hash of the one before it.
      const proto::Digest zero{};
      if (prev && prev->seq + 1 == seq) {
        if (!proto::digest_equal(m.prev_manifest_sha256, proto::manifest_hash(*prev))) {
          r.problems.push_back(seg_name(serial, seq) + ": does not chain to segment " + std::to_string(prev->seq) + " (reordered, replaced or replayed)");
          good = false;
        }
      } else if (prev) {
        r.problems.push_back(serial + ": segments " + std::to_string(prev->seq + 1) + ".." + std::to_string(seq - 1) + " are missing (gap in the chain)");
      } else if (!proto::digest_equal(m.prev_manifest_sha256, zero)) {
        r.problems.push_back(serial + ": segments before " + std::to_string(seq) + " are not in this store (the chain starts later)");
      }
      if (good) ++r.intact;
      prev = &m;
    }
  }
  return r;
}

std::uint64_t decrypt_segment(const DecryptRequest& req) {
  if (std::find(std::begin(kDecryptPurposes), std::end(kDecryptPurposes), req.purpose) == std::end(kDecryptPurposes))
    throw std::runtime_error("purpose '" + req.purpose + "' is not one of investigation, complaint, subject-access-request, training");
  if (req.who.empty()) throw std::runtime_error("who is decrypting must be named");
  auto manifest_file = req.segment;
  manifest_file.replace_extension(".manifest.json");
  std::ifstream in(manifest_file, std::ios::binary);
  if (!in) throw std::runtime_error(manifest_file.string() + ": no manifest beside the segment");
  std::stringstream text;
  text << in.rdbuf();
  boost::system::error_code ec;
  const auto v = boost::json::parse(text.str(), ec);
  auto m = ec ? boost::system::result<proto::Manifest>(proto::make_error_code(proto::errc::malformed_frame)) : proto::manifest_from_json(v);
  if (!m) throw std::runtime_error(manifest_file.string() + ": not a readable manifest (" + m.error().message() + ")");
  // Only the segment its manifest describes is decrypted: hash first, then every chunk's tag.
  std::uint64_t size = 0;
  const auto digest = hash_file(req.segment, size);
  if (!digest) throw std::runtime_error(req.segment.string() + ": cannot read (" + digest.error().message() + ")");
  if (size != m->size || !proto::digest_equal(*digest, m->sha256))
    throw std::runtime_error(req.segment.string() + ": does not match its manifest's SHA-256 (altered); not decrypted");
  std::ifstream key_in(req.key, std::ios::binary);
  if (!key_in) throw std::runtime_error(req.key.string() + ": cannot read the recording key");
  std::stringstream key_text;
  key_text << key_in.rdbuf();
  const auto org = proto::crypto::PrivateKey::from_pem(key_text.str());
  auto key = proto::unwrap_segment_key(m->key_wrap, org, m->camera_serial, m->seq);
  if (fs::exists(req.out)) throw std::runtime_error(req.out.string() + ": exists; not overwritten");

  // The access is on record before a single plaintext byte exists.
  {
    AuditLog log(req.access_log);
    AuditEvent e;
    e.event = "decrypt";
    e.actor = "person " + req.who;
    e.camera = m->camera_serial;
    e.segment = m->seq;
    e.why = req.purpose;
    e.details["purpose"] = req.purpose;
    if (!req.reference.empty()) e.details["reference"] = req.reference;
    e.details["segment_sha256"] = proto::to_hex(m->sha256);
    e.details["recording_id"] = m->recording_id;
    e.details["output"] = fs::absolute(req.out).string();
    log.append(e);
  }

  const int fd = ::open(req.out.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) throw std::runtime_error(req.out.string() + ": cannot create (" + std::generic_category().message(errno) + ")");
  std::ifstream seg(req.segment, std::ios::binary);
  proto::Bytes sealed(m->chunk_size);
  proto::Bytes plain(m->chunk_size);
  std::uint64_t written = 0;
  std::string failure;
  for (std::uint64_t i = 0; i < m->chunk_count() && failure.empty(); ++i) {
    const auto n = m->chunk_length(i);
    seg.read(reinterpret_cast<char*>(sealed.data()), n);
    if (static_cast<std::uint32_t>(seg.gcount()) != n || n <= proto::crypto::kGcmTag) {
      failure = "segment shorter than its manifest";
      break;
    }
    const std::span<std::uint8_t> out(plain.data(), n - proto::crypto::kGcmTag);
    if (!proto::open_chunk(key, m->camera_serial, m->seq, i, i + 1 == m->chunk_count(), proto::ByteView(sealed.data(), n), out)) {
      failure = "chunk " + std::to_string(i) + " does not authenticate";
      break;
    }
    for (std::size_t done = 0; done < out.size();) {
      const auto k = ::write(fd, out.data() + done, out.size() - done);
      if (k < 0 && errno == EINTR) continue;
      if (k < 0) {
        failure = std::string("write failed: ") + std::generic_category().message(errno);
        break;
      }
      done += static_cast<std::size_t>(k);
    }
    written += out.size();
  }
  std::fill(key.begin(), key.end(), std::uint8_t{0});
  std::fill(plain.begin(), plain.end(), std::uint8_t{0});
  if (failure.empty() && ::fsync(fd) != 0) failure = std::string("fsync failed: ") + std::generic_category().message(errno);
  ::close(fd);
  if (!failure.empty()) {
    fs::remove(req.out);
    throw std::runtime_error(req.segment.string() + ": " + failure + "; nothing written");
  }
  return written;
}

}  // namespace bodydock::dock
