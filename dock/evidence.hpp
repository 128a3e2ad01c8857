#pragma once
/// Evidence verification for the centre (`dockctl evidence verify STORE`): for every camera in a
/// store laid out as the embedded sink writes it (STORE/<serial>/<seq:08>-<sha256>.seg beside
/// its .manifest.json), checks each manifest against its own hash, each segment's size, chunk
/// hashes and whole hash against its manifest, and the hash chain from one segment to the next.
/// Every finding names the camera and segment: an altered byte (and its chunk), a missing or
/// swapped file, an edited manifest, a gap in the chain. Nothing is ever repaired.
/// (Camera signatures are checked once cameras sign their manifests.)

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace bodydock::dock {

struct EvidenceReport {
  std::uint64_t cameras = 0;
  std::uint64_t segments = 0;       ///< manifests found
  std::uint64_t intact = 0;         ///< segments whose every check passed
  std::vector<std::string> problems;
  [[nodiscard]] bool ok() const { return problems.empty(); }
};

EvidenceReport verify_evidence(const std::filesystem::path& store);

}  // namespace bodydock::dock
