#include "dock/evidence.hpp"

#include "dock/files.hpp"
#include "proto/manifest.hpp"
#include "proto/sha256.hpp"

#include <boost/json.hpp>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>

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

EvidenceReport verify_evidence(const fs::path& store) {
  EvidenceReport r;
  if (!fs::is_directory(store)) {
    r.problems.push_back(store.string() + ": not a directory");
    return r;
  }
  std::vector<fs::path> cameras;
  for (const auto& e : fs::directory_iterator(store))
    if (e.is_directory()) cameras.push_back(e.path());
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

}  // namespace bodydock::dock
