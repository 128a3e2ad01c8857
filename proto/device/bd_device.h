/// bd_device: the camera side of the bodydock dock protocol (proto/PROTOCOL.md, version 2) as a
/// small C99 library to compile into camera firmware.
///
/// What it does: it reassembles request frames from whatever byte chunks the USB bulk OUT
/// endpoint delivers, validates them exactly as PROTOCOL.md sections 2 to 9 require, and writes
/// one reply frame per request to the bulk IN endpoint: HELLO and version negotiation, the
/// camera's half of mutual authentication, STATUS, SET_TIME, LIST from a cursor, READ at any
/// offset, ERASE only with a valid custody receipt, SET_CHARGING, and ERROR replies with the
/// codes of section 7 for everything malformed.
///
/// What it leaves to you, behind callbacks (struct bd_device_callbacks): the transport (USB),
/// the flash (segments, their manifests and content, erasing), the crypto (random numbers,
/// SHA-256, signing with the device key, checking the dock's certificate and signatures: your
/// secure element), the clock and the battery/charger.
///
/// Resources: no heap, no threads, no libc beyond memcpy/memset, no floating point. All state
/// lives in one struct bd_device that you allocate (statically, typically); sizeof(bd_device)
/// is about 5 KiB, most of it one request buffer sized for the largest request the protocol
/// allows (an ERASE with a 4 KiB custody receipt). Replies are never buffered whole: a 1 MiB
/// DATA frame or a LIST_OK with many manifests is streamed to the transport in pieces of
/// BD_DEVICE_OUT_CHUNK bytes, read from your storage piece by piece.
///
/// Threading: the library is not reentrant. Call every bd_device_* function for one device from
/// one context (a USB task, or the main loop); callbacks are only ever called from inside
/// bd_device_feed().
///
/// Typical use:
///
///     static bd_device dev;
///     bd_device_config cfg = {0};
///     cfg.serial = "BC-0001"; cfg.model = "..."; cfg.firmware = "...";
///     cfg.device_cert = cert_der; cfg.device_cert_len = cert_der_len;
///     cfg.cb = my_callbacks;                          // all fields required
///     if (bd_device_init(&dev, &cfg) != BD_OK) { ... }  // a mistake in cfg
///     ...
///     on USB bulk OUT data:   bd_device_feed(&dev, buf, len);
///     on USB reset/unplug:    bd_device_reset_session(&dev);
#ifndef BODYDOCK_BD_DEVICE_H
#define BODYDOCK_BD_DEVICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Protocol constants (PROTOCOL.md sections 2.2 and 10.1) ---------------------------------- */

#define BD_PROTOCOL_VERSION 2u              ///< the only protocol version this library speaks
#define BD_FRAME_VERSION 1u                 ///< header layout version
#define BD_HEADER_SIZE 16u                  ///< frame header bytes
#define BD_MAX_READ_LENGTH UINT32_C(1048576)  ///< largest READ length / DATA content (1 MiB)
#define BD_MAX_PAYLOAD UINT32_C(1052672)    ///< largest payload of any frame (1 MiB + 4096)
#define BD_MAX_STRING 255u                  ///< longest str field
#define BD_MAX_SERIAL 64u                   ///< longest camera serial
#define BD_MAX_LIST_COUNT 256u              ///< LIST max_count upper bound
#define BD_MAX_RECEIPT 4096u                ///< ERASE receipt blob upper bound
#define BD_MAX_CERTIFICATE 2048u            ///< DER certificate in AUTH messages and receipts
#define BD_MAX_AUTH_SIGNATURE 256u          ///< signature in AUTH_BEGIN_OK / AUTH_FINISH
#define BD_MAX_RECEIPT_SIGNATURE 72u        ///< ECDSA P-256 DER signature in a custody receipt
#define BD_MAX_MANIFEST UINT32_C(614400)    ///< largest encoded manifest (600 KiB)
#define BD_NONCE_SIZE 32u                   ///< authentication nonces
#define BD_SHA256_SIZE 32u
/// Bytes the library keeps of a dock's public key between check_dock_cert and verify_dock. The
/// reference emulator stores an uncompressed P-256 point (0x04 || X || Y); the library never
/// interprets it, so a secure element may put a key slot number or handle here instead.
#define BD_DOCK_KEY_SIZE 65u
/// Largest request payload the protocol allows (an ERASE: seq, blob length, 4096-byte receipt).
/// Longer request frames are still read (up to BD_MAX_PAYLOAD) and answered per PROTOCOL.md
/// section 3; only their first BD_MAX_REQUEST_PAYLOAD bytes are kept, which is all a decoder
/// ever looks at.
#define BD_MAX_REQUEST_PAYLOAD (8u + 4u + BD_MAX_RECEIPT)
/// Size of the pieces replies are written to the transport in (at most this many bytes per
/// write callback; a reply may take many calls). 512 is one USB 2.0 High-Speed bulk packet.
#define BD_DEVICE_OUT_CHUNK 512u

/// Frame types (PROTOCOL.md section 4.2).
typedef enum bd_msg_type {
  BD_MSG_HELLO = 0x01,
  BD_MSG_STATUS_GET = 0x02,
  BD_MSG_SET_TIME = 0x03,
  BD_MSG_LIST = 0x04,
  BD_MSG_READ = 0x05,
  BD_MSG_ERASE = 0x06,
  BD_MSG_SET_CHARGING = 0x07,
  BD_MSG_AUTH_BEGIN = 0x08,
  BD_MSG_AUTH_FINISH = 0x09,
  BD_MSG_HELLO_OK = 0x81,
  BD_MSG_STATUS = 0x82,
  BD_MSG_SET_TIME_OK = 0x83,
  BD_MSG_LIST_OK = 0x84,
  BD_MSG_DATA = 0x85,
  BD_MSG_ERASE_OK = 0x86,
  BD_MSG_SET_CHARGING_OK = 0x87,
  BD_MSG_AUTH_BEGIN_OK = 0x88,
  BD_MSG_AUTH_FINISH_OK = 0x89,
  BD_MSG_ERROR = 0xFF
} bd_msg_type;

/// Error codes carried by ERROR frames (PROTOCOL.md section 7).
typedef enum bd_errc {
  BD_ERRC_OK = 0,
  BD_ERRC_MALFORMED_FRAME = 1,
  BD_ERRC_UNSUPPORTED_VERSION = 2,
  BD_ERRC_UNKNOWN_TYPE = 3,
  BD_ERRC_TOO_LARGE = 4,
  BD_ERRC_BAD_REQUEST = 5,
  BD_ERRC_NOT_FOUND = 6,
  BD_ERRC_OUT_OF_RANGE = 7,
  BD_ERRC_BUSY = 8,
  BD_ERRC_NOT_AUTHENTICATED = 9,
  BD_ERRC_RECEIPT_REJECTED = 10,
  BD_ERRC_STORAGE_FULL = 11,
  BD_ERRC_INTERNAL = 12,
  BD_ERRC_BAD_STATE = 13,
  BD_ERRC_TRUNCATED = 14,
  BD_ERRC_AUTH_FAILED = 15
} bd_errc;

/// Results of the library's own functions (not wire codes).
typedef enum bd_result {
  BD_OK = 0,
  BD_E_CONFIG = -1,     ///< bd_device_init: a required field is missing or out of its range
  BD_E_TRANSPORT = -2,  ///< bd_device_feed: the write callback failed; reset the session
  BD_E_ARGUMENT = -3    ///< a NULL device, or NULL data with a non-zero length
} bd_result;

/* ---- What the callbacks exchange ------------------------------------------------------------ */

/// One stored segment, as the library needs to know it. Fill every field.
typedef struct bd_segment_info {
  uint64_t seq;              ///< the segment's sequence number
  uint64_t size;             ///< bytes of (encrypted) content, the manifest's `size`
  uint32_t manifest_length;  ///< bytes of the encoded manifest as listed (signature included)
  uint8_t sha256[BD_SHA256_SIZE];           ///< the manifest's `sha256` (whole content)
  uint8_t manifest_sha256[BD_SHA256_SIZE];  ///< the manifest hash (PROTOCOL.md 6.1): SHA-256 of its signed part
} bd_segment_info;

/// Storage figures for STATUS.
typedef struct bd_storage_usage {
  uint64_t used;           ///< bytes held by segments not erased (clamped to `total` on the wire)
  uint64_t total;          ///< storage size in bytes
  uint32_t segment_count;  ///< segments held and not erased
} bd_storage_usage;

/// Battery and charger figures for STATUS.
typedef struct bd_power_status {
  uint8_t battery_pct;     ///< 0..100 (clamped to 100 on the wire)
  bool charging;           ///< the battery charges now
  int16_t temperature_dc;  ///< device temperature, tenths of a degree Celsius
} bd_power_status;

/// Everything the library asks of the firmware. Every pointer is required. `user` is passed
/// back unchanged as the first argument of each call. Callbacks returning bool return true for
/// success (or "found", "valid"); a false is answered on the wire as the protocol says.
/// Callbacks must not call bd_device_* functions of the same device.
typedef struct bd_device_callbacks {
  void* user;

  /* -- Transport -- */
  /// Queues `len` bytes (1..BD_DEVICE_OUT_CHUNK) on the bulk IN endpoint, in order. A reply
  /// frame usually takes several calls; frame boundaries carry no meaning on the wire. Return
  /// false when the link is gone: bd_device_feed stops and returns BD_E_TRANSPORT.
  bool (*write)(void* user, const uint8_t* data, size_t len);

  /* -- Storage (flash) -- */
  /// Looks up a held (not erased) segment by `seq`: false when there is none.
  bool (*find_segment)(void* user, uint64_t seq, bd_segment_info* out);
  /// The held segment with the lowest seq >= `from_seq` that LIST shows: false when none is
  /// left. (Normally every held segment; separate from find_segment so that a test device can
  /// hide one from LIST while still serving it.)
  bool (*next_listed_segment)(void* user, uint64_t from_seq, bd_segment_info* out);
  /// Copies `len` bytes of the segment's encoded manifest starting at `offset`. Manifests MUST
  /// be byte-identical every time they are listed (PROTOCOL.md 6.3).
  bool (*read_manifest)(void* user, uint64_t seq, uint32_t offset, uint8_t* out, size_t len);
  /// Copies `len` bytes of segment content starting at `offset` (never past its size). Called
  /// in pieces of at most BD_DEVICE_OUT_CHUNK bytes. A failure on the first piece of a READ is
  /// answered with ERROR internal; later in the same DATA frame the frame's length is already
  /// on the wire, so the rest of it is sent as zeros (the host's chunk hash catches that and it
  /// reads again) and counted in bd_device_stats.storage_read_failures.
  bool (*read_segment)(void* user, uint64_t seq, uint64_t offset, uint8_t* out, size_t len);
  /// Erases a segment for good (PROTOCOL.md 9): return true only once the erase is persisted
  /// and survives a power loss. Called only after the custody receipt was verified.
  bool (*erase_segment)(void* user, uint64_t seq);
  /// Storage figures for STATUS.
  void (*storage_usage)(void* user, bd_storage_usage* out);

  /* -- Crypto (your secure element; the library never sees a private key) -- */
  /// Fills `out` with `len` cryptographically random bytes (the camera's nonce).
  bool (*random)(void* user, uint8_t* out, size_t len);
  /// SHA-256 of `len` bytes (used on certificates for the authentication transcript).
  bool (*sha256)(void* user, const uint8_t* data, size_t len, uint8_t out[BD_SHA256_SIZE]);
  /// Signs `msg` with the device key: ECDSA P-256 / SHA-256, DER encoded, at most `cap` bytes
  /// (BD_MAX_AUTH_SIGNATURE). Sets *sig_len.
  bool (*sign)(void* user, const uint8_t* msg, size_t len, uint8_t* sig, size_t cap, size_t* sig_len);
  /// Checks a DER certificate presented as a dock's: issued by the fleet CA the camera carries,
  /// within its validity period, role (OU) "dock". On success stores the certificate's public
  /// key in `key` (BD_DOCK_KEY_SIZE bytes, handed back to verify_dock later) and returns true;
  /// otherwise writes a short NUL-terminated reason into `why` (at most `why_cap` bytes with
  /// the NUL; it goes into the ERROR message) and returns false.
  bool (*check_dock_cert)(void* user, const uint8_t* der, size_t len, uint8_t key[BD_DOCK_KEY_SIZE], char* why, size_t why_cap);
  /// Verifies an ECDSA P-256 / SHA-256 DER signature over `msg` with a key check_dock_cert
  /// returned. Malformed signatures are simply false.
  bool (*verify_dock)(void* user, const uint8_t key[BD_DOCK_KEY_SIZE], const uint8_t* msg, size_t len, const uint8_t* sig,
                      size_t sig_len);

  /* -- Clock -- */
  /// The device clock: milliseconds since 1970-01-01T00:00:00Z.
  int64_t (*clock_get)(void* user);
  /// Sets the device clock so that it reads `utc_ms` now.
  bool (*clock_set)(void* user, int64_t utc_ms);

  /* -- Power -- */
  /// Battery and charger state for STATUS (called once per STATUS_GET).
  void (*power_status)(void* user, bd_power_status* out);
  /// Allows (`allow`) or stops charging from the dock (PROTOCOL.md 4.10); after a stop the
  /// charger MUST be off before this returns. Sets *charging_now to whether the battery charges
  /// after the change. A new docking starts with charging allowed: that is the power path's job
  /// when the port powers up, not this library's.
  bool (*set_charging)(void* user, bool allow, bool* charging_now);
} bd_device_callbacks;

/// Device identity and limits. Strings are NUL-terminated and are not copied: they and the
/// certificate must stay valid, unchanged, for as long as the bd_device is used.
typedef struct bd_device_config {
  const char* serial;    ///< 1..64 of A-Z a-z 0-9 . _ -, not starting with '.' or '-' (PROTOCOL.md 4.3)
  const char* model;     ///< free text, at most 255 bytes
  const char* firmware;  ///< free text, at most 255 bytes
  const uint8_t* device_cert;  ///< DER certificate the fleet CA issued to this camera; NULL/0 if never enrolled
  size_t device_cert_len;      ///< at most BD_MAX_CERTIFICATE
  uint32_t max_read;      ///< largest READ served, 4096..1048576; 0 means 1048576
  uint16_t max_inflight;  ///< announced in HELLO_OK; 0 means 8 (the library itself never answers busy)
  bd_device_callbacks cb;
} bd_device_config;

/// Counters for diagnostics; they survive bd_device_reset_session.
typedef struct bd_device_stats {
  uint32_t requests;                 ///< complete request frames answered
  uint32_t errors_sent;              ///< ERROR replies, header errors included
  uint32_t header_errors;            ///< sticky stream errors (PROTOCOL.md 2.4)
  uint32_t refused_unauthenticated;  ///< SET_TIME/LIST/READ/ERASE refused before authentication
  uint32_t receipts_rejected;        ///< ERASE requests refused for their custody receipt
  uint32_t storage_read_failures;    ///< read_segment/read_manifest failures inside a reply
} bd_device_stats;

/// The device's whole state. Allocate it yourself (a static is typical) and treat every field
/// as private: it is only declared here so that you can. It holds no pointers into itself.
typedef struct bd_device {
  bd_device_config cfg;
  uint8_t serial_len, model_len, firmware_len;
  /* Frame parser: the header being assembled, then the payload of a valid header. */
  uint8_t head[BD_HEADER_SIZE];
  uint8_t head_have;
  bool in_payload;
  uint8_t type;
  uint32_t request_id;
  uint32_t length;
  uint32_t have;
  /* Session. */
  bool hello_done;
  bool authenticated;
  bool auth_pending;
  bool camera_nonce_set;
  bool io_failed;
  uint8_t dock_nonce[BD_NONCE_SIZE];
  uint8_t camera_nonce[BD_NONCE_SIZE];
  uint8_t dock_cert_sha256[BD_SHA256_SIZE];
  uint8_t camera_cert_sha256[BD_SHA256_SIZE];
  uint8_t dock_key[BD_DOCK_KEY_SIZE];
  bd_device_stats stats;
  /* Transcripts and ERROR messages are assembled here. */
  uint8_t text[256];
  /* Reply bytes not yet handed to the write callback. */
  uint16_t out_len;
  uint8_t out[BD_DEVICE_OUT_CHUNK];
  /* The request payload, behind 8 bytes of headroom (see bd_device.c: the custody receipt's
     signing label is written there, in front of the receipt, so it is verified in place). */
  uint8_t req[8u + BD_MAX_REQUEST_PAYLOAD];
} bd_device;

/* ---- API ------------------------------------------------------------------------------------ */

/// Sets up `dev` from `cfg` (copied; the strings and certificate it points to are not). Returns
/// BD_E_CONFIG when a callback is missing, the serial breaks the serial rule, a string is over
/// 255 bytes, the certificate is over 2048 bytes or max_read is out of range. Calls no callback.
bd_result bd_device_init(bd_device* dev, const bd_device_config* cfg);

/// Feeds bytes received on the bulk OUT endpoint, in any chunking (one byte at a time works).
/// Every request completed by these bytes is answered, in order, through the write callback
/// before this returns. After a bad frame header the rest of `data` is dropped and the next
/// byte fed starts a new header (PROTOCOL.md 2.4). Returns BD_OK, or BD_E_TRANSPORT once a
/// write failed (then nothing more is processed until bd_device_reset_session).
bd_result bd_device_feed(bd_device* dev, const uint8_t* data, size_t len);

/// A new docking (USB reset, unplug, port power cycle): forgets the handshake, the
/// authentication and any partial frame. Statistics are kept.
void bd_device_reset_session(bd_device* dev);

/// Whether the current session completed mutual authentication.
bool bd_device_authenticated(const bd_device* dev);

/// Counters since bd_device_init.
const bd_device_stats* bd_device_get_stats(const bd_device* dev);

/// Short stable name of a wire error code, as PROTOCOL.md and the reference dock's logs use it
/// (e.g. "truncated payload"); "unknown protocol error" for codes outside section 7.
const char* bd_errc_name(unsigned code);

/// Whether `s` (`len` bytes) is a valid camera serial (PROTOCOL.md 4.3).
bool bd_valid_serial(const char* s, size_t len);

/* ---- Test-only builds ---------------------------------------------------------------------- */
/// Deliberately broken builds for the conformance suite, which must catch each one. Define ONE
/// of these when compiling bd_device.c for a test device, never for a camera. Each breaks exactly
/// one rule and nothing else; none changes the layout of bd_device.
///
///   BD_DEVICE_BROKEN_REPLAYED_NONCE    the camera nonce is drawn once and reused by every later
///                                      AUTH_BEGIN, so a recorded AUTH_BEGIN/AUTH_FINISH pair
///                                      authenticates again (5.5: fresh nonces each docking)
///   BD_DEVICE_BROKEN_ERASE_WITHOUT_RECEIPT  ERASE skips the custody receipt checks (9, step 3)
///   BD_DEVICE_BROKEN_IGNORES_OFFSET    READ serves content from the start of the segment
///                                      whatever its offset (4.7); the DATA header still echoes it
///   BD_DEVICE_BROKEN_OVERSIZED_FRAME   a header over kMaxPayload is not refused but "buffered":
///                                      the device crashes (2.2), through BD_DEVICE_CRASH(),
///                                      by default __builtin_trap(); a harness may define it
///   BD_DEVICE_BROKEN_UNKNOWN_VERSION   HELLO is answered with version 2 whatever range the host
///                                      offered, instead of unsupported_version (5.2)

#ifdef __cplusplus
}  // extern "C"
#endif

#endif  // BODYDOCK_BD_DEVICE_H
