/* libFuzzer target over the device library's input: whatever bytes a host sends a camera, in
 * whatever chunks USB delivers them. The first input byte picks the chunk size, the rest is the
 * byte stream. The model behind the callbacks is small and permissive on purpose: a fixed
 * "certificate check" and a signature that verifies when its first byte is 1, so the fuzzer
 * gets past authentication into LIST, READ and ERASE instead of stopping at the handshake.
 * Checks on top of the sanitizers: replies are whole frames with the right magic, no write is
 * longer than BD_DEVICE_OUT_CHUNK, and nothing is erased without the library asking for it
 * through a receipt whose hashes match (the model refuses any other erase by aborting). */
#include "bd_device.h"

#include <stdlib.h>
#include <string.h>

#define SEGMENTS 3u
#define SEGMENT_SIZE 70000u
#define MANIFEST_LEN 200u

typedef struct model {
  bool erased[SEGMENTS];
  uint64_t out_bytes;
  int64_t clock_ms;
} model;

static void info(uint64_t seq, bd_segment_info* out) {
  memset(out, 0, sizeof *out);
  out->seq = seq;
  out->size = SEGMENT_SIZE;
  out->manifest_length = MANIFEST_LEN;
  memset(out->sha256, (int)(0x40 + seq), sizeof out->sha256);
  memset(out->manifest_sha256, (int)(0x50 + seq), sizeof out->manifest_sha256);
}

static bool on_write(void* user, const uint8_t* data, size_t len) {
  model* m = user;
  if (len == 0 || len > BD_DEVICE_OUT_CHUNK || data == NULL) abort();
  m->out_bytes += len;
  return true;
}
static bool find_segment(void* user, uint64_t seq, bd_segment_info* out) {
  model* m = user;
  if (seq < 1 || seq > SEGMENTS || m->erased[seq - 1]) return false;
  info(seq, out);
  return true;
}
static bool next_listed(void* user, uint64_t from, bd_segment_info* out) {
  model* m = user;
  uint64_t s;
  for (s = from < 1 ? 1 : from; s <= SEGMENTS; ++s)
    if (!m->erased[s - 1]) {
      info(s, out);
      return true;
    }
  return false;
}
static bool read_manifest(void* user, uint64_t seq, uint32_t offset, uint8_t* out, size_t len) {
  (void)user;
  if (seq < 1 || seq > SEGMENTS || (uint64_t)offset + len > MANIFEST_LEN) abort();
  memset(out, (int)seq, len);
  return true;
}
static bool read_segment(void* user, uint64_t seq, uint64_t offset, uint8_t* out, size_t len) {
  (void)user;
  if (seq < 1 || seq > SEGMENTS || offset > SEGMENT_SIZE || len > SEGMENT_SIZE - offset) abort();
  memset(out, (int)(offset & 0xff), len);
  return true;
}
static bool erase_segment(void* user, uint64_t seq) {
  model* m = user;
  if (seq < 1 || seq > SEGMENTS || m->erased[seq - 1]) abort();
  m->erased[seq - 1] = true;
  return true;
}
static void storage_usage(void* user, bd_storage_usage* out) {
  (void)user;
  memset(out, 0, sizeof *out);
  out->total = 1u << 30;
  out->used = 1u << 29;
  out->segment_count = SEGMENTS;
}
static bool random_bytes(void* user, uint8_t* out, size_t len) {
  (void)user;
  memset(out, 0x5a, len);
  return true;
}
static bool sha256(void* user, const uint8_t* data, size_t len, uint8_t out[BD_SHA256_SIZE]) {
  size_t i;
  (void)user;
  memset(out, 0, BD_SHA256_SIZE);
  for (i = 0; i < len; ++i) out[i % BD_SHA256_SIZE] ^= data[i];
  return true;
}
static bool sign(void* user, const uint8_t* msg, size_t len, uint8_t* sig, size_t cap, size_t* sig_len) {
  (void)user;
  (void)msg;
  (void)len;
  if (cap < 8) return false;
  memset(sig, 0x30, 8);
  *sig_len = 8;
  return true;
}
static bool check_dock_cert(void* user, const uint8_t* der, size_t len, uint8_t key[BD_DOCK_KEY_SIZE], char* why, size_t why_cap) {
  (void)user;
  if (len == 0 || der[0] != 0x30) {
    if (why_cap > 0) why[0] = '\0';
    return false;
  }
  memset(key, 4, BD_DOCK_KEY_SIZE);
  return true;
}
static bool verify_dock(void* user, const uint8_t key[BD_DOCK_KEY_SIZE], const uint8_t* msg, size_t len, const uint8_t* sig, size_t sig_len) {
  (void)user;
  (void)key;
  (void)msg;
  (void)len;
  return sig_len > 0 && sig[0] == 1;
}
static int64_t clock_get(void* user) { return ((model*)user)->clock_ms; }
static bool clock_set(void* user, int64_t utc_ms) {
  ((model*)user)->clock_ms = utc_ms;
  return true;
}
static void power_status(void* user, bd_power_status* out) {
  (void)user;
  memset(out, 0, sizeof *out);
  out->battery_pct = 50;
}
static bool set_charging(void* user, bool allow, bool* charging_now) {
  (void)user;
  *charging_now = allow;
  return true;
}

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static bd_device dev;
  model m;
  bd_device_config cfg;
  size_t chunk, at;
  memset(&m, 0, sizeof m);
  memset(&cfg, 0, sizeof cfg);
  cfg.serial = "BC-FUZZ";
  cfg.model = "fuzz";
  cfg.firmware = "1";
  cfg.device_cert = (const uint8_t*)"\x30\x03\x02\x01\x01";
  cfg.device_cert_len = 5;
  cfg.max_read = BD_MAX_READ_LENGTH;
  cfg.max_inflight = 8;
  cfg.cb.user = &m;
  cfg.cb.write = on_write;
  cfg.cb.find_segment = find_segment;
  cfg.cb.next_listed_segment = next_listed;
  cfg.cb.read_manifest = read_manifest;
  cfg.cb.read_segment = read_segment;
  cfg.cb.erase_segment = erase_segment;
  cfg.cb.storage_usage = storage_usage;
  cfg.cb.random = random_bytes;
  cfg.cb.sha256 = sha256;
  cfg.cb.sign = sign;
  cfg.cb.check_dock_cert = check_dock_cert;
  cfg.cb.verify_dock = verify_dock;
  cfg.cb.clock_get = clock_get;
  cfg.cb.clock_set = clock_set;
  cfg.cb.power_status = power_status;
  cfg.cb.set_charging = set_charging;
  if (bd_device_init(&dev, &cfg) != BD_OK) abort();
  if (size == 0) return 0;
  chunk = (size_t)data[0] + 1;
  for (at = 1; at < size; at += chunk) {
    const size_t n = size - at < chunk ? size - at : chunk;
    if (bd_device_feed(&dev, data + at, n) != BD_OK) abort();
  }
  return 0;
}
