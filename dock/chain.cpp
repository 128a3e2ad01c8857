#include "dock/chain.hpp"

#include "dock/log.hpp"
#include "proto/sha256.hpp"

namespace bodydock::dock {

std::vector<ChainFinding> check_chain(const std::vector<proto::Manifest>& listed, const std::map<std::uint64_t, KnownSegment>& known,
                                      std::uint64_t pruned_through) {
  std::vector<ChainFinding> out;
  // Every manifest this camera is known to have made: seq -> manifest hash.
  std::map<std::uint64_t, proto::Digest> all;
  for (const auto& [seq, k] : known) all[seq] = k.manifest_hash;
  std::map<proto::Digest, std::uint64_t> by_hash;
  std::map<proto::Digest, std::uint64_t> by_content;
  for (const auto& m : listed) all[m.seq] = proto::manifest_hash(m);
  for (const auto& [seq, h] : all) by_hash.emplace(h, seq);
  for (const auto& [seq, k] : known) by_content.emplace(k.sha256, seq);

  const proto::Digest zero{};
  for (const auto& m : listed) {
    if (auto k = known.find(m.seq); k != known.end() && k->second.erased) {
      out.push_back({m.seq, cat("segment ", m.seq, " was erased on this dock's request and is listed again (replayed)")});
      continue;
    }
    if (m.seq <= pruned_through && !known.contains(m.seq)) {
      out.push_back({m.seq, cat("segment ", m.seq, " is at or before segment ", pruned_through,
                                ", which was erased on this dock's request long ago, and is listed again (replayed)")});
      continue;
    }
    if (auto c = by_content.find(m.sha256); c != by_content.end() && c->second != m.seq) {
      out.push_back({m.seq, cat("segment ", m.seq, " has the same content as segment ", c->second, " (duplicated)")});
    }
    by_content.emplace(m.sha256, m.seq);
    // The predecessor this dock knows of: the highest seq below this one.
    auto below = all.lower_bound(m.seq);
    const bool has_pred = below != all.begin();
    const auto pred_seq = has_pred ? std::prev(below)->first : 0;
    if (m.prev_manifest_sha256 == zero) {
      if (has_pred) out.push_back({m.seq, cat("segment ", m.seq, " starts a new chain although segment ", pred_seq, " comes before it")});
      continue;
    }
    auto link = by_hash.find(m.prev_manifest_sha256);
    if (link == by_hash.end()) {
      // Points at a manifest never seen here: fine for the first segment a dock sees of a
      // camera; with a known predecessor, something between them is missing.
      if (has_pred) out.push_back({m.seq, cat("segment(s) missing between segment ", pred_seq, " and segment ", m.seq)});
      continue;
    }
    const auto to = link->second;
    if (to >= m.seq) out.push_back({m.seq, cat("segment ", m.seq, " claims to follow segment ", to, " (out of order)")});
    else if (to != pred_seq)
      out.push_back({m.seq, cat("segment ", m.seq, " follows segment ", to, ", skipping segment ", pred_seq, " (inserted or reordered)")});
  }
  return out;
}

}  // namespace bodydock::dock
