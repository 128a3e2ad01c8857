// What trust costs, in figures (release build): one docking's mutual authentication (both
// halves, the camera's through its real request handler), the dock's verification per GiB
// (chunk and whole-segment SHA-256 while streaming, plus one manifest signature per segment),
// the camera's encryption and the centre's decryption per GiB.
//
//   build/release/tests/bench/trust_bench [WORLD_DIR]
#include "dock/emulated_fleet.hpp"
#include "hw/camera_device.hpp"
#include "proto/sha256.hpp"
#include "proto/trust.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <stdexcept>
#include <vector>

using namespace bodydock;
using Clock = std::chrono::steady_clock;

namespace {

double cpu_seconds() {
  timespec t{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) / 1e9;
}

proto::Frame ask(hw::CameraDevice& dev, proto::MsgType type, const proto::Bytes& payload) {
  static std::uint32_t id = 1;
  auto out = dev.handle(*proto::encode_frame(type, id++, payload));
  proto::FrameParser p;
  if (p.feed(out)) throw std::runtime_error("bad reply");
  auto f = p.next();
  if (!f) throw std::runtime_error("no reply");
  return std::move(*f);
}

/// One docking's handshake as the dock does it (session.cpp): HELLO, AUTH_BEGIN, the camera
/// certificate against CA + CRL, its signature, the dock's signature, AUTH_FINISH.
void handshake(hw::CameraDevice& cam, const pki::DockIdentity& me) {
  cam.reset_session();
  ask(cam, proto::MsgType::hello, proto::encode(proto::Hello{}));
  proto::AuthBegin begin;
  const auto nonce = proto::crypto::random_bytes(32);
  std::copy(nonce.begin(), nonce.end(), begin.dock_nonce.begin());
  begin.dock_cert = me.cert;
  auto f = ask(cam, proto::MsgType::auth_begin, proto::encode(begin));
  auto answer = proto::decode_auth_begin_ok(f.payload);
  if (!answer) throw std::runtime_error("AUTH_BEGIN refused");
  const auto verdict = me.fleet.check(answer->camera_cert, "camera", cam.spec().serial);
  const auto& cert = std::get<proto::crypto::CertInfo>(verdict);
  if (!cert.key.verify(proto::auth_transcript(proto::AuthRole::camera, begin.dock_nonce, answer->camera_nonce, me.cert, answer->camera_cert,
                                              cam.spec().serial),
                       answer->signature))
    throw std::runtime_error("camera signature");
  proto::AuthFinish fin;
  fin.signature = me.key.sign(
      proto::auth_transcript(proto::AuthRole::dock, begin.dock_nonce, answer->camera_nonce, me.cert, answer->camera_cert, cam.spec().serial));
  if (ask(cam, proto::MsgType::auth_finish, proto::encode(fin)).header.type != proto::MsgType::auth_finish_ok) throw std::runtime_error("refused");
}

}  // namespace

int main(int argc, char** argv) {
  const std::filesystem::path world_dir =
      argc > 1 ? std::filesystem::path(argv[1]) : std::filesystem::temp_directory_path() / "bodydock-trust-bench-world";
  dock::EmulatedFleet world(world_dir);
  const auto me = world.dock("bench-dock", world_dir / "dock-trust");
  hw::CameraSpec spec;
  spec.serial = "BC-BENCH";
  spec.segments = 1;
  spec.segment_bytes = 64u << 20;
  spec.chunk_size = 256 * 1024;
  spec.trust = world.camera(spec.serial, "officer-1");
  const auto c_record = cpu_seconds();
  hw::CameraDevice cam(spec);  // encrypts, hashes and signs 64 MiB
  const double record_cpu = cpu_seconds() - c_record;
  const auto& m = cam.recorded()[0];

  // 1. The handshake, both halves.
  constexpr int kHandshakes = 200;
  std::vector<double> ms;
  for (int i = 0; i < kHandshakes; ++i) {
    const auto t = Clock::now();
    handshake(cam, *me);
    ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t).count());
  }
  std::sort(ms.begin(), ms.end());
  std::printf("handshake (both halves, %d runs): median %.3f ms, p95 %.3f ms\n", kHandshakes, ms[ms.size() / 2], ms[ms.size() * 95 / 100]);

  // 2. The dock's verification of 1 GiB of 64 MiB segments: chunk SHA-256 and whole SHA-256 over
  //    every byte (as the session streams it), one signature per segment.
  std::vector<std::uint8_t> seg(m.size);
  cam.content(m.seq, 0, seg);
  const double gib_per_seg = static_cast<double>(m.size) / (1u << 30);
  const int segs = static_cast<int>(1.0 / gib_per_seg + 0.5);
  auto c0 = cpu_seconds();
  for (int s = 0; s < segs; ++s) {
    proto::Sha256 whole, chunk;
    for (std::uint64_t i = 0; i < m.chunk_count(); ++i) {
      const proto::ByteView part(seg.data() + i * m.chunk_size, m.chunk_length(i));
      chunk.update(part);
      if (!proto::digest_equal(chunk.finish(), m.chunk_sha256[i])) throw std::runtime_error("chunk");
      whole.update(part);
    }
    if (!proto::digest_equal(whole.finish(), m.sha256)) throw std::runtime_error("whole");
  }
  const double hash_cpu = cpu_seconds() - c0;
  const auto camera_key = spec.trust->device_key.public_key();
  constexpr int kSigs = 2000;
  c0 = cpu_seconds();
  for (int i = 0; i < kSigs; ++i)
    if (!proto::manifest_signature_valid(m, camera_key)) throw std::runtime_error("signature");
  const double sig_each = (cpu_seconds() - c0) / kSigs;
  std::printf("dock verification per GiB: SHA-256 chunk + whole %.3f CPU s; manifest signatures %.4f CPU s (%d x %.3f ms, 64 MiB segments)\n",
              hash_cpu, sig_each * segs, segs, sig_each * 1e3);

  // 3. The camera's encryption and the centre's decryption per GiB.
  std::printf("camera (emulator) record 64 MiB: generate + encrypt + hash + sign %.3f CPU s (%.2f CPU s/GiB)\n", record_cpu, record_cpu / gib_per_seg);
  const auto org = proto::crypto::PrivateKey::from_pem([&] {
    std::FILE* f = std::fopen(world.recording_key_file().c_str(), "rb");
    std::string text(4096, '\0');
    text.resize(std::fread(text.data(), 1, text.size(), f));
    std::fclose(f);
    return text;
  }());
  c0 = cpu_seconds();
  const auto key = proto::unwrap_segment_key(m.key_wrap, org, m.camera_serial, m.seq);
  std::vector<std::uint8_t> plain(m.chunk_size);
  for (int s = 0; s < segs; ++s)
    for (std::uint64_t i = 0; i < m.chunk_count(); ++i) {
      const auto n = m.chunk_length(i);
      if (!proto::open_chunk(key, m.camera_serial, m.seq, i, i + 1 == m.chunk_count(), proto::ByteView(seg.data() + i * m.chunk_size, n),
                             std::span(plain.data(), n - 16)))
        throw std::runtime_error("decrypt");
    }
  std::printf("centre decryption per GiB (AES-256-GCM, tags checked): %.3f CPU s\n", cpu_seconds() - c0);
  std::filesystem::remove_all(world_dir);
  return 0;
}
