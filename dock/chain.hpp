#pragma once
/// The per-camera manifest chain (PROTOCOL.md 6.1, DESIGN section 4): each manifest names the
/// hash of the camera's previous one, so a missing, reordered, replayed or duplicated segment
/// shows as a broken link. The dock checks what a camera lists against itself and against what
/// the dock already holds for that camera, and reports every break; it never repairs one.

#include "proto/manifest.hpp"

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace bodydock::dock {

struct ChainFinding {
  std::uint64_t seq = 0;   ///< the segment whose link is wrong
  std::string what;        ///< in words, naming the segments involved
};

struct KnownSegment {
  proto::Digest manifest_hash{};
  proto::Digest sha256{};
  bool erased = false;     ///< the camera already erased it on this dock's request
};

/// `listed`: what the camera lists now, ascending seq. `known`: what this dock holds for the
/// camera from earlier dockings, by seq. A camera first seen here may start its chain at a
/// predecessor the dock never saw (another dock took it): that is not a finding.
/// `pruned_through`: the highest seq whose row this dock pruned (StateDb::prune_purged): every
/// seq up to it that `known` lacks is gone from the camera, so listing one again is a replay.
std::vector<ChainFinding> check_chain(const std::vector<proto::Manifest>& listed, const std::map<std::uint64_t, KnownSegment>& known,
                                      std::uint64_t pruned_through = 0);

}  // namespace bodydock::dock
