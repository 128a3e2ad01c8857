/* The camera side of the bodydock protocol: see bd_device.h for the contract and
   proto/PROTOCOL.md for the rules each function below cites. The ERROR messages are part of the
   behaviour, not decoration: the dock logs them and its tests compare them word for word. */
#include "bd_device.h"

#include <string.h>

#if defined(BD_DEVICE_BROKEN_OVERSIZED_FRAME) && !defined(BD_DEVICE_CRASH)
#define BD_DEVICE_CRASH() __builtin_trap()
#endif

/* C99 has no _Static_assert; a negative array size stops the build instead. */
#define BD_STATIC_ASSERT(cond, name) typedef char bd_static_assert_##name[(cond) ? 1 : -1]

#define BD_MAGIC 0xB0DCu
#define BD_REQ_HEADROOM 8u
/* An ERASE payload is seq (8) + receipt length (4) + receipt; the receipt's signing input is a
   20-byte label followed by the receipt's fields. Writing the label over the 8 bytes of headroom
   and the 12 bytes of seq and length (both decoded by then) puts the whole signing input in one
   contiguous run without a second 4 KiB buffer. */
#define BD_RECEIPT_LABEL "bodydock-receipt-v2"
#define BD_RECEIPT_LABEL_SIZE 20u /* with its NUL */
BD_STATIC_ASSERT(sizeof(BD_RECEIPT_LABEL) == BD_RECEIPT_LABEL_SIZE, receipt_label_size);
BD_STATIC_ASSERT(BD_REQ_HEADROOM + 12u == BD_RECEIPT_LABEL_SIZE, receipt_label_fits_headroom);
/* DATA frames start with two headers (32 bytes) in the output buffer, followed by content. */
BD_STATIC_ASSERT(BD_DEVICE_OUT_CHUNK >= 64u && BD_DEVICE_OUT_CHUNK <= 65535u, out_chunk_size);
/* A transcript (label, two nonces, two certificate hashes, serial) fits the text buffer, and so
   does an ERROR message (at most 255 bytes). */
BD_STATIC_ASSERT(sizeof(((bd_device*)0)->text) >= 24u + 4u * 32u + 1u + BD_MAX_SERIAL, transcript_fits);
BD_STATIC_ASSERT(sizeof(((bd_device*)0)->text) >= BD_MAX_STRING + 1u, message_fits);
/* The signature AUTH_BEGIN_OK carries is made in the request buffer once the request is decoded. */
BD_STATIC_ASSERT(BD_MAX_REQUEST_PAYLOAD >= BD_MAX_AUTH_SIGNATURE, signature_fits);

/* The LIST_OK budget for manifest blobs (length prefixes included), as in PROTOCOL.md 4.6. */
#define BD_LIST_BUDGET (BD_MAX_PAYLOAD - 64u)

static const char kMsgHeader[] = "frame header refused";
static const char kMsgDecode[] = "cannot decode request";
static const char kMsgNoSegment[] = "no such segment";

/* ---- Little-endian fields ------------------------------------------------------------------ */

static void put_le(uint8_t* p, uint64_t v, unsigned n) {
  unsigned i;
  for (i = 0; i < n; ++i) p[i] = (uint8_t)(v >> (8u * i));
}

/* An i64 field's bits as a signed value, without relying on implementation-defined conversion. */
static int64_t to_i64(uint64_t v) { return v <= (uint64_t)INT64_MAX ? (int64_t)v : -(int64_t)(~v) - 1; }

static uint64_t get_le(const uint8_t* p, unsigned n) {
  uint64_t v = 0;
  unsigned i;
  for (i = 0; i < n; ++i) v |= (uint64_t)p[i] << (8u * i);
  return v;
}

#ifndef BD_DEVICE_BROKEN_ERASE_WITHOUT_RECEIPT
/* Compares digests that decide an erase without an early exit, so timing does not tell how many
   leading bytes matched. */
static bool equal_ct(const uint8_t* a, const uint8_t* b, size_t n) {
  uint8_t diff = 0;
  size_t i;
  for (i = 0; i < n; ++i) diff = (uint8_t)(diff | (a[i] ^ b[i]));
  return diff == 0;
}
#endif

static size_t bounded_strlen(const char* s, size_t max) {
  size_t n = 0;
  while (n <= max && s[n] != '\0') ++n;
  return n;
}

/* ---- Payload reader: bounds-checked, with a sticky first error (PROTOCOL.md 3) ---------------- */

typedef struct reader {
  const uint8_t* p;
  uint32_t avail; /* bytes actually held; less than total only for over-long requests */
  uint32_t total; /* the payload's length as the header announced it */
  uint32_t pos;
  bd_errc err;
} reader;

static void rd_fail(reader* r, bd_errc e) {
  if (r->err == BD_ERRC_OK) r->err = e;
}

static const uint8_t* rd_take(reader* r, uint32_t n) {
  const uint8_t* at;
  if (r->err != BD_ERRC_OK) return NULL;
  if (n > r->total - r->pos) {
    rd_fail(r, BD_ERRC_TRUNCATED);
    return NULL;
  }
  /* Unreachable by construction: no decoder reads past BD_MAX_REQUEST_PAYLOAD, which is what
     is held. Refused rather than read out of bounds should that ever change. */
  if (n > r->avail - r->pos) {
    rd_fail(r, BD_ERRC_MALFORMED_FRAME);
    return NULL;
  }
  at = r->p + r->pos;
  r->pos += n;
  return at;
}

static uint64_t rd_uint(reader* r, unsigned n) {
  const uint8_t* b = rd_take(r, n);
  return b ? get_le(b, n) : 0;
}

static uint8_t rd_u8(reader* r) { return (uint8_t)rd_uint(r, 1); }
static uint16_t rd_u16(reader* r) { return (uint16_t)rd_uint(r, 2); }
static uint32_t rd_u32(reader* r) { return (uint32_t)rd_uint(r, 4); }
static uint64_t rd_u64(reader* r) { return rd_uint(r, 8); }

static const uint8_t* rd_str(reader* r, uint32_t* len) {
  const uint32_t n = rd_u8(r);
  const uint8_t* s = rd_take(r, n);
  *len = s ? n : 0;
  return s;
}

/* A u32-prefixed blob, refused above `max` before any of it is looked at. */
static const uint8_t* rd_blob(reader* r, uint32_t max, uint32_t* len) {
  const uint32_t n = rd_u32(r);
  *len = 0;
  if (r->err != BD_ERRC_OK) return NULL;
  if (n > max) {
    rd_fail(r, BD_ERRC_TOO_LARGE);
    return NULL;
  }
  *len = n;
  return rd_take(r, n);
}

/* The decoder's last word: the first error, else trailing bytes, else fine. */
static bd_errc rd_finish(const reader* r) {
  if (r->err != BD_ERRC_OK) return r->err;
  return r->pos == r->total ? BD_ERRC_OK : BD_ERRC_MALFORMED_FRAME;
}

/* ---- Output: frames go to the transport in pieces of BD_DEVICE_OUT_CHUNK --------------------- */

static void out_flush(bd_device* dev) {
  if (dev->out_len > 0 && !dev->io_failed && !dev->cfg.cb.write(dev->cfg.cb.user, dev->out, dev->out_len)) dev->io_failed = true;
  dev->out_len = 0;
}

static void out_bytes(bd_device* dev, const uint8_t* data, size_t n) {
  while (n > 0) {
    size_t room = BD_DEVICE_OUT_CHUNK - dev->out_len;
    if (room == 0) {
      out_flush(dev);
      continue;
    }
    if (room > n) room = n;
    memcpy(dev->out + dev->out_len, data, room);
    dev->out_len = (uint16_t)(dev->out_len + room);
    data += room;
    n -= room;
  }
}

static void out_zeros(bd_device* dev, uint64_t n) {
  while (n > 0) {
    size_t room = BD_DEVICE_OUT_CHUNK - dev->out_len;
    if (room == 0) {
      out_flush(dev);
      continue;
    }
    if (room > n) room = (size_t)n;
    memset(dev->out + dev->out_len, 0, room);
    dev->out_len = (uint16_t)(dev->out_len + room);
    n -= room;
  }
}

static void out_uint(bd_device* dev, uint64_t v, unsigned n) {
  uint8_t b[8];
  put_le(b, v, n);
  out_bytes(dev, b, n);
}

static void out_str(bd_device* dev, const char* s, size_t n) {
  out_uint(dev, n, 1);
  out_bytes(dev, (const uint8_t*)s, n);
}

static void out_frame_header(bd_device* dev, bd_msg_type type, uint32_t request_id, uint32_t length) {
  uint8_t h[BD_HEADER_SIZE];
  put_le(h, BD_MAGIC, 2);
  h[2] = BD_FRAME_VERSION;
  h[3] = (uint8_t)type;
  put_le(h + 4, request_id, 4);
  put_le(h + 8, length, 4);
  put_le(h + 12, 0, 4); /* reserved */
  out_bytes(dev, h, sizeof h);
}

/* A reply whose payload is already assembled in `payload`. */
static void reply(bd_device* dev, bd_msg_type type, uint32_t id, const uint8_t* payload, uint32_t len) {
  out_frame_header(dev, type, id, len);
  out_bytes(dev, payload, len);
  out_flush(dev);
}

/* ERROR with a message of `len` bytes (cut at the 255 a str field holds). */
static void reply_error_n(bd_device* dev, uint32_t id, bd_errc code, const char* msg, size_t len) {
  if (len > BD_MAX_STRING) len = BD_MAX_STRING;
  out_frame_header(dev, BD_MSG_ERROR, id, (uint32_t)(3u + len));
  out_uint(dev, (uint16_t)code, 2);
  out_str(dev, msg, len);
  out_flush(dev);
  ++dev->stats.errors_sent;
}

static void reply_error(bd_device* dev, uint32_t id, bd_errc code, const char* msg) {
  reply_error_n(dev, id, code, msg, bounded_strlen(msg, BD_MAX_STRING));
}

/* ERROR whose message is `prefix` followed by a text a callback wrote into dev->text after it. */
static void reply_error_text(bd_device* dev, uint32_t id, bd_errc code, size_t prefix_len) {
  char* text = (char*)dev->text;
  text[sizeof dev->text - 1] = '\0'; /* whatever the callback did */
  reply_error_n(dev, id, code, text, prefix_len + bounded_strlen(text + prefix_len, sizeof dev->text - 1 - prefix_len));
}

/* Copies a NUL-terminated prefix into dev->text; returns where the rest goes. */
static size_t text_prefix(bd_device* dev, const char* prefix) {
  const size_t n = bounded_strlen(prefix, 64);
  memcpy(dev->text, prefix, n);
  dev->text[n] = '\0';
  return n;
}

/* ---- Authentication (PROTOCOL.md 4.11, 4.12, 5.5) ------------------------------------------- */

/* T(role) = label(role) 0x00 || dock_nonce || camera_nonce || SHA-256(dock_cert) ||
   SHA-256(camera_cert) || str(serial), built in dev->text. Returns its length. */
static size_t build_transcript(bd_device* dev, const char* label) {
  uint8_t* t = dev->text;
  size_t n = bounded_strlen(label, 32) + 1; /* with the NUL */
  memcpy(t, label, n);
  memcpy(t + n, dev->dock_nonce, BD_NONCE_SIZE);
  n += BD_NONCE_SIZE;
  memcpy(t + n, dev->camera_nonce, BD_NONCE_SIZE);
  n += BD_NONCE_SIZE;
  memcpy(t + n, dev->dock_cert_sha256, BD_SHA256_SIZE);
  n += BD_SHA256_SIZE;
  memcpy(t + n, dev->camera_cert_sha256, BD_SHA256_SIZE);
  n += BD_SHA256_SIZE;
  t[n++] = dev->serial_len;
  memcpy(t + n, dev->cfg.serial, dev->serial_len);
  return n + dev->serial_len;
}

static void serve_auth_begin(bd_device* dev, uint32_t id, reader* r) {
  static const uint8_t kEmpty[1] = {0};
  const bd_device_callbacks* cb = &dev->cfg.cb;
  const uint8_t* nonce = rd_take(r, BD_NONCE_SIZE);
  uint32_t cert_len = 0;
  const uint8_t* cert = rd_blob(r, BD_MAX_CERTIFICATE, &cert_len);
  uint8_t* sig = dev->req + BD_REQ_HEADROOM; /* the request is consumed before this is written */
  size_t sig_len = 0;
  const uint8_t* own_cert = dev->cfg.device_cert_len > 0 ? dev->cfg.device_cert : kEmpty;
  bd_errc e = rd_finish(r);
  if (e != BD_ERRC_OK) {
    reply_error(dev, id, e, kMsgDecode);
    return;
  }
  /* Any AUTH_BEGIN ends what authentication there was. */
  dev->auth_pending = false;
  dev->authenticated = false;
  /* Refuse a dock outside the fleet before signing anything for it. */
  {
    const size_t n = text_prefix(dev, "dock certificate: ");
    if (!cb->check_dock_cert(cb->user, cert ? cert : kEmpty, cert_len, dev->dock_key, (char*)dev->text + n, sizeof dev->text - n)) {
      reply_error_text(dev, id, BD_ERRC_AUTH_FAILED, n);
      return;
    }
  }
  memcpy(dev->dock_nonce, nonce, BD_NONCE_SIZE);
  if (!cb->sha256(cb->user, cert ? cert : kEmpty, cert_len, dev->dock_cert_sha256) ||
      !cb->sha256(cb->user, own_cert, dev->cfg.device_cert_len, dev->camera_cert_sha256)) {
    reply_error(dev, id, BD_ERRC_INTERNAL, "cannot hash a certificate");
    return;
  }
#ifdef BD_DEVICE_BROKEN_REPLAYED_NONCE
  /* Test-only: a nonce drawn once and kept, so an earlier docking's answers verify again. */
  if (!dev->camera_nonce_set) {
#endif
    if (!cb->random(cb->user, dev->camera_nonce, BD_NONCE_SIZE)) {
      reply_error(dev, id, BD_ERRC_INTERNAL, "no random bytes");
      return;
    }
#ifdef BD_DEVICE_BROKEN_REPLAYED_NONCE
  }
#endif
  dev->camera_nonce_set = true;
  {
    const size_t t_len = build_transcript(dev, "bodydock-auth-v2 camera");
    if (!cb->sign(cb->user, dev->text, t_len, sig, BD_MAX_AUTH_SIGNATURE, &sig_len) || sig_len > BD_MAX_AUTH_SIGNATURE) {
      reply_error(dev, id, BD_ERRC_INTERNAL, "cannot sign");
      return;
    }
  }
  out_frame_header(dev, BD_MSG_AUTH_BEGIN_OK, id, (uint32_t)(BD_NONCE_SIZE + 4u + dev->cfg.device_cert_len + 4u + sig_len));
  out_bytes(dev, dev->camera_nonce, BD_NONCE_SIZE);
  out_uint(dev, dev->cfg.device_cert_len, 4);
  out_bytes(dev, own_cert, dev->cfg.device_cert_len);
  out_uint(dev, sig_len, 4);
  out_bytes(dev, sig, sig_len);
  out_flush(dev);
  dev->auth_pending = true;
}

static void serve_auth_finish(bd_device* dev, uint32_t id, reader* r) {
  static const uint8_t kEmpty[1] = {0};
  const bd_device_callbacks* cb = &dev->cfg.cb;
  uint32_t sig_len = 0;
  const uint8_t* sig = rd_blob(r, BD_MAX_AUTH_SIGNATURE, &sig_len);
  bd_errc e = rd_finish(r);
  size_t t_len;
  if (e != BD_ERRC_OK) {
    reply_error(dev, id, e, kMsgDecode);
    return;
  }
  if (!dev->auth_pending) {
    reply_error(dev, id, BD_ERRC_BAD_STATE, "AUTH_BEGIN first");
    return;
  }
  dev->auth_pending = false; /* one answer per challenge: a second try needs a new AUTH_BEGIN */
  t_len = build_transcript(dev, "bodydock-auth-v2 dock");
  if (!cb->verify_dock(cb->user, dev->dock_key, dev->text, t_len, sig ? sig : kEmpty, sig_len)) {
    reply_error(dev, id, BD_ERRC_AUTH_FAILED, "dock signature does not verify");
    return;
  }
  dev->authenticated = true;
  reply(dev, BD_MSG_AUTH_FINISH_OK, id, NULL, 0);
}

/* ---- Requests ------------------------------------------------------------------------------- */

static void serve_hello(bd_device* dev, uint32_t id, reader* r) {
  const uint16_t host_min = rd_u16(r);
  const uint16_t host_max = rd_u16(r);
  uint32_t host_id_len;
  uint16_t version;
  bd_errc e;
  (void)rd_str(r, &host_id_len);
  if (r->err == BD_ERRC_OK && (host_min == 0 || host_min > host_max)) {
    reply_error(dev, id, BD_ERRC_BAD_REQUEST, kMsgDecode);
    return;
  }
  e = rd_finish(r);
  if (e != BD_ERRC_OK) {
    reply_error(dev, id, e, kMsgDecode);
    return;
  }
#ifdef BD_DEVICE_BROKEN_UNKNOWN_VERSION
  /* Test-only: answers with its own version whatever the host offered. */
  version = BD_PROTOCOL_VERSION;
#else
  {
    /* The highest version both sides speak (PROTOCOL.md 5.2); this device speaks [2, 2]. */
    const uint16_t lo = host_min > BD_PROTOCOL_VERSION ? host_min : (uint16_t)BD_PROTOCOL_VERSION;
    const uint16_t hi = host_max < BD_PROTOCOL_VERSION ? host_max : (uint16_t)BD_PROTOCOL_VERSION;
    version = lo <= hi ? hi : 0;
  }
#endif
  if (version == 0) {
    reply_error(dev, id, BD_ERRC_UNSUPPORTED_VERSION, "this camera speaks protocol 2");
    return;
  }
  dev->hello_done = true;
  dev->authenticated = false; /* a new handshake needs a new authentication */
  dev->auth_pending = false;
  out_frame_header(dev, BD_MSG_HELLO_OK, id, 2u + 3u + dev->serial_len + dev->model_len + dev->firmware_len + 4u + 2u);
  out_uint(dev, version, 2);
  out_str(dev, dev->cfg.serial, dev->serial_len);
  out_str(dev, dev->cfg.model, dev->model_len);
  out_str(dev, dev->cfg.firmware, dev->firmware_len);
  out_uint(dev, dev->cfg.max_read, 4);
  out_uint(dev, dev->cfg.max_inflight, 2);
  out_flush(dev);
}

static void serve_status(bd_device* dev, uint32_t id, reader* r) {
  const bd_device_callbacks* cb = &dev->cfg.cb;
  bd_power_status power;
  bd_storage_usage usage;
  uint8_t p[32];
  bd_errc e = rd_finish(r);
  if (e != BD_ERRC_OK) {
    reply_error(dev, id, e, kMsgDecode);
    return;
  }
  memset(&power, 0, sizeof power);
  memset(&usage, 0, sizeof usage);
  cb->power_status(cb->user, &power);
  cb->storage_usage(cb->user, &usage);
  /* The host refuses a STATUS with these out of range (PROTOCOL.md 4.4): keep it valid. */
  p[0] = power.battery_pct > 100 ? 100 : power.battery_pct;
  p[1] = power.charging ? 1 : 0;
  put_le(p + 2, (uint16_t)power.temperature_dc, 2);
  put_le(p + 4, usage.used < usage.total ? usage.used : usage.total, 8);
  put_le(p + 12, usage.total, 8);
  put_le(p + 20, (uint64_t)cb->clock_get(cb->user), 8);
  put_le(p + 28, usage.segment_count, 4);
  reply(dev, BD_MSG_STATUS, id, p, sizeof p);
}

static void serve_set_time(bd_device* dev, uint32_t id, reader* r) {
  const bd_device_callbacks* cb = &dev->cfg.cb;
  const uint64_t utc = rd_u64(r);
  uint64_t before;
  uint8_t p[8];
  bd_errc e = rd_finish(r);
  if (e != BD_ERRC_OK) {
    reply_error(dev, id, e, kMsgDecode);
    return;
  }
  before = (uint64_t)cb->clock_get(cb->user);
  if (!cb->clock_set(cb->user, to_i64(utc))) {
    reply_error(dev, id, BD_ERRC_INTERNAL, "cannot set the clock");
    return;
  }
  /* adjusted_by_ms = utc_ms - clock before; in unsigned arithmetic, so extreme values wrap in
     two's complement as the i64 on the wire does instead of overflowing. */
  put_le(p, utc - before, 8);
  reply(dev, BD_MSG_SET_TIME_OK, id, p, sizeof p);
}

/* Streams one manifest (`len` bytes) from storage; a failed read becomes zeros, keeping the
   frame's announced length (the host then refuses the manifest). */
static void out_manifest(bd_device* dev, uint64_t seq, uint32_t len) {
  const bd_device_callbacks* cb = &dev->cfg.cb;
  uint32_t done = 0;
  while (done < len) {
    size_t room = BD_DEVICE_OUT_CHUNK - dev->out_len;
    if (room == 0) {
      out_flush(dev);
      continue;
    }
    if (room > len - done) room = len - done;
    if (!cb->read_manifest(cb->user, seq, done, dev->out + dev->out_len, room)) {
      ++dev->stats.storage_read_failures;
      out_zeros(dev, len - done);
      return;
    }
    dev->out_len = (uint16_t)(dev->out_len + room);
    done += (uint32_t)room;
  }
}

static void serve_list(bd_device* dev, uint32_t id, reader* r) {
  const bd_device_callbacks* cb = &dev->cfg.cb;
  const uint64_t cursor = rd_u64(r);
  const uint16_t max_count = rd_u16(r);
  bd_segment_info seg;
  uint32_t count = 0;
  uint32_t blobs = 0; /* bytes of the manifest blobs, length prefixes included */
  uint32_t budget = BD_LIST_BUDGET;
  uint64_t next_cursor = cursor;
  uint64_t from = cursor;
  bool more = false;
  bool end = false;
  bd_errc e;
  if (r->err == BD_ERRC_OK && (max_count == 0 || max_count > BD_MAX_LIST_COUNT)) {
    reply_error(dev, id, BD_ERRC_BAD_REQUEST, kMsgDecode);
    return;
  }
  e = rd_finish(r);
  if (e != BD_ERRC_OK) {
    reply_error(dev, id, e, kMsgDecode);
    return;
  }
  /* First pass: what fits (PROTOCOL.md 4.6), so the frame length is known before any of it is
     sent. Nothing is kept per manifest: the second pass asks storage again. */
  while (!end && cb->next_listed_segment(cb->user, from, &seg) && seg.seq >= from) {
    uint32_t size;
    if (seg.manifest_length == 0 || seg.manifest_length > BD_MAX_MANIFEST) {
      reply_error(dev, id, BD_ERRC_INTERNAL, "a stored manifest is over its size limit");
      return;
    }
    size = seg.manifest_length + 4u;
    if (count == max_count || size > budget) {
      more = true;
      break;
    }
    budget -= size;
    blobs += size;
    ++count;
    next_cursor = seg.seq + 1;
    end = seg.seq == UINT64_MAX; /* nothing can follow it */
    from = seg.seq + 1;
  }
  out_frame_header(dev, BD_MSG_LIST_OK, id, 2u + blobs + 8u + 1u);
  out_uint(dev, count, 2);
  from = cursor;
  {
    uint32_t sent = 0;
    uint32_t i;
    for (i = 0; i < count; ++i) {
      uint32_t len;
      /* Storage does not change between the passes (nothing else runs), but should it, the
         frame keeps the length it announced. */
      if (!cb->next_listed_segment(cb->user, from, &seg) || seg.seq < from || seg.manifest_length + 4u > blobs - sent) break;
      len = seg.manifest_length;
      out_uint(dev, len, 4);
      out_manifest(dev, seg.seq, len);
      sent += len + 4u;
      from = seg.seq + 1;
    }
    if (sent < blobs) {
      ++dev->stats.storage_read_failures;
      out_zeros(dev, blobs - sent);
    }
  }
  out_uint(dev, next_cursor, 8);
  out_uint(dev, more ? 1 : 0, 1);
  out_flush(dev);
}

static void serve_read(bd_device* dev, uint32_t id, reader* r) {
  const bd_device_callbacks* cb = &dev->cfg.cb;
  const uint64_t seq = rd_u64(r);
  const uint64_t offset = rd_u64(r);
  const uint32_t length = rd_u32(r);
  bd_segment_info seg;
  uint32_t n;
  uint32_t done;
  size_t piece;
  uint64_t base;
  bd_errc e;
  if (r->err == BD_ERRC_OK && length == 0) {
    reply_error(dev, id, BD_ERRC_BAD_REQUEST, kMsgDecode);
    return;
  }
  if (r->err == BD_ERRC_OK && length > BD_MAX_READ_LENGTH) {
    reply_error(dev, id, BD_ERRC_TOO_LARGE, kMsgDecode);
    return;
  }
  e = rd_finish(r);
  if (e != BD_ERRC_OK) {
    reply_error(dev, id, e, kMsgDecode);
    return;
  }
  if (length > dev->cfg.max_read) {
    reply_error(dev, id, BD_ERRC_TOO_LARGE, "READ longer than max_read");
    return;
  }
  if (!cb->find_segment(cb->user, seq, &seg)) {
    reply_error(dev, id, BD_ERRC_NOT_FOUND, kMsgNoSegment);
    return;
  }
  if (offset >= seg.size) {
    reply_error(dev, id, BD_ERRC_OUT_OF_RANGE, "offset past the end");
    return;
  }
  /* Clipped at the end of the segment, not refused (PROTOCOL.md 4.7). */
  n = seg.size - offset < length ? (uint32_t)(seg.size - offset) : length;
#ifdef BD_DEVICE_BROKEN_IGNORES_OFFSET
  base = 0; /* test-only: content from the start whatever was asked */
#else
  base = offset;
#endif
  out_flush(dev);
  /* The first piece is read before anything is sent, so a segment that cannot be read at all
     gets an ERROR instead of a DATA frame of zeros. Replies start with an empty buffer. */
  piece = BD_DEVICE_OUT_CHUNK - 2u * BD_HEADER_SIZE;
  if (piece > n) piece = n;
  if (!cb->read_segment(cb->user, seq, base, dev->out + (size_t)2u * BD_HEADER_SIZE, piece)) {
    ++dev->stats.storage_read_failures;
    reply_error(dev, id, BD_ERRC_INTERNAL, "cannot read segment");
    return;
  }
  {
    uint8_t h[BD_HEADER_SIZE];
    put_le(h, BD_MAGIC, 2);
    h[2] = BD_FRAME_VERSION;
    h[3] = BD_MSG_DATA;
    put_le(h + 4, id, 4);
    put_le(h + 8, BD_HEADER_SIZE + n, 4);
    put_le(h + 12, 0, 4);
    memcpy(dev->out, h, BD_HEADER_SIZE);
    put_le(dev->out + BD_HEADER_SIZE, seq, 8);
    put_le(dev->out + BD_HEADER_SIZE + 8, offset, 8);
  }
  dev->out_len = (uint16_t)((size_t)2u * BD_HEADER_SIZE + piece);
  done = (uint32_t)piece;
  while (done < n) {
    out_flush(dev);
    piece = n - done < BD_DEVICE_OUT_CHUNK ? n - done : BD_DEVICE_OUT_CHUNK;
    if (!cb->read_segment(cb->user, seq, base + done, dev->out, piece)) {
      ++dev->stats.storage_read_failures;
      out_zeros(dev, n - done);
      break;
    }
    dev->out_len = (uint16_t)piece;
    done += (uint32_t)piece;
  }
  out_flush(dev);
}

#ifndef BD_DEVICE_BROKEN_ERASE_WITHOUT_RECEIPT
/* PROTOCOL.md 9, step 3: writes why the receipt (`len` bytes at `receipt`, which sits at
   dev->req + 20) does not let `seg` be erased into dev->text and returns false, or returns true.
   The checks and their messages are in the order of the reference device. */
static bool receipt_valid(bd_device* dev, uint64_t seq, const bd_segment_info* seg, uint8_t* receipt, uint32_t len) {
  const bd_device_callbacks* cb = &dev->cfg.cb;
  reader r;
  uint32_t serial_len = 0, stored_at_len = 0, cert_len = 0, sig_len = 0, signed_len = 0;
  const uint8_t *serial = NULL, *sha = NULL, *manifest_sha = NULL, *cert = NULL, *sig = NULL;
  uint64_t receipt_seq = 0;
  bd_errc e;
  r.p = receipt;
  r.avail = len;
  r.total = len;
  r.pos = 0;
  r.err = BD_ERRC_OK;
  if (rd_u8(&r) != 2u && r.err == BD_ERRC_OK) {
    e = BD_ERRC_UNSUPPORTED_VERSION;
  } else {
    serial = rd_str(&r, &serial_len);
    receipt_seq = rd_u64(&r);
    sha = rd_take(&r, BD_SHA256_SIZE);
    manifest_sha = rd_take(&r, BD_SHA256_SIZE);
    (void)rd_str(&r, &stored_at_len);
    (void)rd_u64(&r);
    cert = rd_blob(&r, BD_MAX_CERTIFICATE, &cert_len);
    signed_len = r.pos; /* everything up to the signature is signed */
    sig = rd_blob(&r, BD_MAX_RECEIPT_SIGNATURE, &sig_len);
    e = rd_finish(&r);
    if (e == BD_ERRC_OK && (!bd_valid_serial((const char*)serial, serial_len) || cert_len == 0 || sig_len == 0)) e = BD_ERRC_BAD_REQUEST;
  }
  if (e != BD_ERRC_OK) {
    size_t n = text_prefix(dev, "not a signed custody receipt (");
    const char* name = bd_errc_name(e);
    const size_t name_len = bounded_strlen(name, 64);
    memcpy(dev->text + n, name, name_len);
    n += name_len;
    dev->text[n++] = ')';
    dev->text[n] = '\0';
    return false;
  }
  if (serial_len != dev->serial_len || memcmp(serial, dev->cfg.serial, serial_len) != 0 || receipt_seq != seq) {
    text_prefix(dev, "receipt is for another segment");
    return false;
  }
  if (!equal_ct(sha, seg->sha256, BD_SHA256_SIZE)) {
    text_prefix(dev, "receipt does not match the segment's SHA-256");
    return false;
  }
  if (!equal_ct(manifest_sha, seg->manifest_sha256, BD_SHA256_SIZE)) {
    text_prefix(dev, "receipt does not match the segment's manifest");
    return false;
  }
  {
    uint8_t key[BD_DOCK_KEY_SIZE];
    const size_t n = text_prefix(dev, "receipt signer: ");
    if (!cb->check_dock_cert(cb->user, cert, cert_len, key, (char*)dev->text + n, sizeof dev->text - n)) {
      dev->text[sizeof dev->text - 1] = '\0';
      return false;
    }
    /* The signing input, "bodydock-receipt-v2" 0x00 followed by the signed fields, in place:
       the label overwrites seq and the blob length in front of the receipt (both used). */
    memcpy(receipt - BD_RECEIPT_LABEL_SIZE, BD_RECEIPT_LABEL, BD_RECEIPT_LABEL_SIZE);
    if (!cb->verify_dock(cb->user, key, receipt - BD_RECEIPT_LABEL_SIZE, BD_RECEIPT_LABEL_SIZE + signed_len, sig, sig_len)) {
      text_prefix(dev, "receipt signature does not verify");
      return false;
    }
  }
  return true;
}
#endif

static void serve_erase(bd_device* dev, uint32_t id, reader* r) {
  const bd_device_callbacks* cb = &dev->cfg.cb;
  const uint64_t seq = rd_u64(r);
  uint32_t receipt_len = 0;
  bd_segment_info seg;
  uint8_t p[8];
  bd_errc e;
  (void)rd_blob(r, BD_MAX_RECEIPT, &receipt_len); /* verified where it lies, see receipt_valid */
  e = rd_finish(r);
  if (e != BD_ERRC_OK) {
    reply_error(dev, id, e, kMsgDecode);
    return;
  }
  if (!cb->find_segment(cb->user, seq, &seg)) {
    reply_error(dev, id, BD_ERRC_NOT_FOUND, kMsgNoSegment);
    return;
  }
#ifdef BD_DEVICE_BROKEN_ERASE_WITHOUT_RECEIPT
  (void)receipt_len; /* test-only: any receipt, or none, erases */
#else
  /* The receipt sits at payload offset 12: right behind the label's room (see the top). */
  if (!receipt_valid(dev, seq, &seg, dev->req + BD_RECEIPT_LABEL_SIZE, receipt_len)) {
    ++dev->stats.receipts_rejected;
    reply_error_text(dev, id, BD_ERRC_RECEIPT_REJECTED, 0);
    return;
  }
#endif
  /* Persisted before it is acknowledged: an erase the dock saw confirmed is never undone. */
  if (!cb->erase_segment(cb->user, seq)) {
    reply_error(dev, id, BD_ERRC_INTERNAL, "cannot persist erase");
    return;
  }
  put_le(p, seq, 8);
  reply(dev, BD_MSG_ERASE_OK, id, p, sizeof p);
}

static void serve_set_charging(bd_device* dev, uint32_t id, reader* r) {
  const bd_device_callbacks* cb = &dev->cfg.cb;
  const uint8_t allow = rd_u8(r);
  bool charging = false;
  uint8_t p[1];
  bd_errc e;
  if (r->err == BD_ERRC_OK && allow > 1) {
    reply_error(dev, id, BD_ERRC_BAD_REQUEST, kMsgDecode);
    return;
  }
  e = rd_finish(r);
  if (e != BD_ERRC_OK) {
    reply_error(dev, id, e, kMsgDecode);
    return;
  }
  if (!cb->set_charging(cb->user, allow == 1, &charging)) {
    reply_error(dev, id, BD_ERRC_INTERNAL, "cannot switch the charger");
    return;
  }
  p[0] = charging ? 1 : 0;
  reply(dev, BD_MSG_SET_CHARGING_OK, id, p, sizeof p);
}

/* One complete request frame (PROTOCOL.md 4.1, 5.1). */
static void serve(bd_device* dev) {
  const uint32_t id = dev->request_id;
  const uint8_t type = dev->type;
  reader r;
  r.p = dev->req + BD_REQ_HEADROOM;
  r.total = dev->length;
  r.avail = dev->length < BD_MAX_REQUEST_PAYLOAD ? dev->length : BD_MAX_REQUEST_PAYLOAD;
  r.pos = 0;
  r.err = BD_ERRC_OK;
  ++dev->stats.requests;
  if (!dev->hello_done && type != BD_MSG_HELLO) {
    reply_error(dev, id, BD_ERRC_BAD_STATE, "HELLO first");
    return;
  }
  /* Charge-only needs status and charging control; everything that touches footage, the clock
     or the flash needs a dock that proved itself (PROTOCOL.md 5.5). */
  if ((type == BD_MSG_SET_TIME || type == BD_MSG_LIST || type == BD_MSG_READ || type == BD_MSG_ERASE) && !dev->authenticated) {
    ++dev->stats.refused_unauthenticated;
    reply_error(dev, id, BD_ERRC_NOT_AUTHENTICATED, "authenticate first");
    return;
  }
  switch (type) {
    case BD_MSG_HELLO: serve_hello(dev, id, &r); break;
    case BD_MSG_STATUS_GET: serve_status(dev, id, &r); break;
    case BD_MSG_SET_TIME: serve_set_time(dev, id, &r); break;
    case BD_MSG_LIST: serve_list(dev, id, &r); break;
    case BD_MSG_READ: serve_read(dev, id, &r); break;
    case BD_MSG_ERASE: serve_erase(dev, id, &r); break;
    case BD_MSG_SET_CHARGING: serve_set_charging(dev, id, &r); break;
    case BD_MSG_AUTH_BEGIN: serve_auth_begin(dev, id, &r); break;
    case BD_MSG_AUTH_FINISH: serve_auth_finish(dev, id, &r); break;
    default: reply_error(dev, id, BD_ERRC_BAD_REQUEST, "reply types are not requests"); break;
  }
}

/* ---- Framing (PROTOCOL.md 2) ---------------------------------------------------------------- */

static bool known_type(uint8_t t) {
  return (t >= BD_MSG_HELLO && t <= BD_MSG_AUTH_FINISH) || (t >= BD_MSG_HELLO_OK && t <= BD_MSG_AUTH_FINISH_OK) || t == BD_MSG_ERROR;
}

/* The checks of PROTOCOL.md 2.3, in order. */
static bd_errc check_header(bd_device* dev) {
  const uint8_t* h = dev->head;
  if (get_le(h, 2) != BD_MAGIC || get_le(h + 12, 4) != 0) return BD_ERRC_MALFORMED_FRAME;
  if (h[2] != BD_FRAME_VERSION) return BD_ERRC_UNSUPPORTED_VERSION;
  if (get_le(h + 8, 4) > BD_MAX_PAYLOAD) {
#ifdef BD_DEVICE_BROKEN_OVERSIZED_FRAME
    BD_DEVICE_CRASH(); /* test-only: a device that would buffer it and overrun its memory */
#endif
    return BD_ERRC_TOO_LARGE;
  }
  if (!known_type(h[3])) return BD_ERRC_UNKNOWN_TYPE;
  return BD_ERRC_OK;
}

static void parser_reset(bd_device* dev) {
  dev->head_have = 0;
  dev->in_payload = false;
  dev->have = 0;
}

bd_result bd_device_feed(bd_device* dev, const uint8_t* data, size_t len) {
  if (dev == NULL || (data == NULL && len > 0)) return BD_E_ARGUMENT;
  while (len > 0 && !dev->io_failed) {
    if (!dev->in_payload) {
      size_t n = BD_HEADER_SIZE - dev->head_have;
      bd_errc e;
      if (n > len) n = len;
      memcpy(dev->head + dev->head_have, data, n);
      dev->head_have = (uint8_t)(dev->head_have + n);
      data += n;
      len -= n;
      if (dev->head_have < BD_HEADER_SIZE) break;
      e = check_header(dev);
      if (e != BD_ERRC_OK) {
        /* A sticky stream error (PROTOCOL.md 2.4): answer with the id the bad header carries,
           then drop the rest of this transfer; the next byte starts a fresh header. */
        ++dev->stats.header_errors;
        parser_reset(dev);
        reply_error(dev, (uint32_t)get_le(dev->head + 4, 4), e, kMsgHeader);
        break;
      }
      dev->type = dev->head[3];
      dev->request_id = (uint32_t)get_le(dev->head + 4, 4);
      dev->length = (uint32_t)get_le(dev->head + 8, 4);
      dev->have = 0;
      dev->in_payload = true;
    } else {
      size_t n = dev->length - dev->have;
      if (n > len) n = len;
      /* Only what a decoder can look at is kept; the rest of an over-long request is counted
         and dropped, and its reply is the same as if it had been kept (PROTOCOL.md 3). */
      if (dev->have < BD_MAX_REQUEST_PAYLOAD) {
        size_t keep = BD_MAX_REQUEST_PAYLOAD - dev->have;
        if (keep > n) keep = n;
        memcpy(dev->req + BD_REQ_HEADROOM + dev->have, data, keep);
      }
      dev->have += (uint32_t)n;
      data += n;
      len -= n;
    }
    if (dev->in_payload && dev->have == dev->length) {
      parser_reset(dev);
      serve(dev);
    }
  }
  return dev->io_failed ? BD_E_TRANSPORT : BD_OK;
}

/* ---- Set-up --------------------------------------------------------------------------------- */

bool bd_valid_serial(const char* s, size_t len) {
  size_t i;
  if (s == NULL || len == 0 || len > BD_MAX_SERIAL || s[0] == '.' || s[0] == '-') return false;
  for (i = 0; i < len; ++i) {
    const char c = s[i];
    const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

bd_result bd_device_init(bd_device* dev, const bd_device_config* cfg) {
  const bd_device_callbacks* cb;
  size_t serial_len, model_len, firmware_len;
  if (dev == NULL || cfg == NULL) return BD_E_ARGUMENT;
  cb = &cfg->cb;
  if (!cb->write || !cb->find_segment || !cb->next_listed_segment || !cb->read_manifest || !cb->read_segment || !cb->erase_segment ||
      !cb->storage_usage || !cb->random || !cb->sha256 || !cb->sign || !cb->check_dock_cert || !cb->verify_dock || !cb->clock_get ||
      !cb->clock_set || !cb->power_status || !cb->set_charging)
    return BD_E_CONFIG;
  if (cfg->serial == NULL || cfg->model == NULL || cfg->firmware == NULL) return BD_E_CONFIG;
  serial_len = bounded_strlen(cfg->serial, BD_MAX_SERIAL);
  model_len = bounded_strlen(cfg->model, BD_MAX_STRING);
  firmware_len = bounded_strlen(cfg->firmware, BD_MAX_STRING);
  if (!bd_valid_serial(cfg->serial, serial_len) || model_len > BD_MAX_STRING || firmware_len > BD_MAX_STRING) return BD_E_CONFIG;
  if (cfg->device_cert_len > BD_MAX_CERTIFICATE || (cfg->device_cert_len > 0 && cfg->device_cert == NULL)) return BD_E_CONFIG;
  if (cfg->max_read != 0 && (cfg->max_read < 4096u || cfg->max_read > BD_MAX_READ_LENGTH)) return BD_E_CONFIG;
  memset(dev, 0, sizeof *dev);
  dev->cfg = *cfg;
  if (dev->cfg.max_read == 0) dev->cfg.max_read = BD_MAX_READ_LENGTH;
  if (dev->cfg.max_inflight == 0) dev->cfg.max_inflight = 8;
  dev->serial_len = (uint8_t)serial_len;
  dev->model_len = (uint8_t)model_len;
  dev->firmware_len = (uint8_t)firmware_len;
  return BD_OK;
}

void bd_device_reset_session(bd_device* dev) {
  if (dev == NULL) return;
  parser_reset(dev);
  dev->hello_done = false;
  dev->authenticated = false;
  dev->auth_pending = false;
  dev->io_failed = false;
  dev->out_len = 0;
}

bool bd_device_authenticated(const bd_device* dev) { return dev != NULL && dev->authenticated; }

const bd_device_stats* bd_device_get_stats(const bd_device* dev) { return dev != NULL ? &dev->stats : NULL; }

const char* bd_errc_name(unsigned code) {
  switch (code) {
    case BD_ERRC_OK: return "ok";
    case BD_ERRC_MALFORMED_FRAME: return "malformed frame";
    case BD_ERRC_UNSUPPORTED_VERSION: return "unsupported protocol version";
    case BD_ERRC_UNKNOWN_TYPE: return "unknown frame type";
    case BD_ERRC_TOO_LARGE: return "over a size limit";
    case BD_ERRC_BAD_REQUEST: return "bad request";
    case BD_ERRC_NOT_FOUND: return "no such segment";
    case BD_ERRC_OUT_OF_RANGE: return "offset or length out of range";
    case BD_ERRC_BUSY: return "busy";
    case BD_ERRC_NOT_AUTHENTICATED: return "not authenticated";
    case BD_ERRC_RECEIPT_REJECTED: return "custody receipt rejected";
    case BD_ERRC_STORAGE_FULL: return "device storage full";
    case BD_ERRC_INTERNAL: return "internal device error";
    case BD_ERRC_BAD_STATE: return "request out of order";
    case BD_ERRC_TRUNCATED: return "truncated payload";
    case BD_ERRC_AUTH_FAILED: return "authentication failed";
    default: return "unknown protocol error";
  }
}
