#include "hw/umockdev_bus.hpp"

#include <umockdev.h>

#include <linux/usbdevice_fs.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <functional>
#include <optional>
#include <stdexcept>

namespace bodydock::hw {

bool ensure_umockdev_preload(const std::vector<std::string>& argv) {
  const char* preload = std::getenv("LD_PRELOAD");  // NOLINT(concurrency-mt-unsafe): at start-up, before any thread
  if (preload && std::string(preload).find("libumockdev-preload") != std::string::npos) return true;
  std::string value = "libumockdev-preload.so.0";
  if (preload && *preload) value += std::string(":") + preload;
  ::setenv("LD_PRELOAD", value.c_str(), 1);  // NOLINT(concurrency-mt-unsafe): at start-up, before any thread
  // In sanitizer builds the preload library comes before the ASan runtime; tell ASan that is fine.
  const char* asan_options = std::getenv("ASAN_OPTIONS");  // NOLINT(concurrency-mt-unsafe): at start-up, before any thread
  const std::string asan = asan_options ? asan_options : "";
  // NOLINTNEXTLINE(concurrency-mt-unsafe): at start-up, before any thread
  ::setenv("ASAN_OPTIONS", (asan.empty() ? "" : asan + ":").append("verify_asan_link_order=0").c_str(), 1);
  std::vector<std::string> args = argv;
  std::vector<char*> c_argv;
  c_argv.reserve(args.size() + 1);
  for (auto& a : args) c_argv.push_back(a.data());
  c_argv.push_back(nullptr);
  ::execv("/proc/self/exe", c_argv.data());
  return false;
}
namespace {

std::string hex(const std::vector<std::uint8_t>& bytes) {
  static constexpr char d[] = "0123456789abcdef";
  std::string s;
  for (auto b : bytes) {
    s.push_back(d[b >> 4]);
    s.push_back(d[b & 15]);
  }
  return s;
}

void put16(std::vector<std::uint8_t>& v, std::uint16_t x) {
  v.push_back(static_cast<std::uint8_t>(x));
  v.push_back(static_cast<std::uint8_t>(x >> 8));
}

/// sysfs `descriptors`: device descriptor, then the configuration with everything in it.
std::vector<std::uint8_t> descriptors(std::uint8_t device_class, std::uint16_t vid, std::uint16_t pid, std::uint8_t iface_class, bool bulk_pair) {
  std::vector<std::uint8_t> v = {18, 1};
  put16(v, 0x0200);
  v.insert(v.end(), {device_class, 0, 0, 64});
  put16(v, vid);
  put16(v, pid);
  put16(v, 0x0100);
  v.insert(v.end(), {0, 0, 0, 1});
  const std::uint16_t total = static_cast<std::uint16_t>(9 + 9 + (bulk_pair ? 14 : 7));
  v.insert(v.end(), {9, 2});
  put16(v, total);
  v.insert(v.end(), {1, 1, 0, 0x80, 250});
  v.insert(v.end(), {9, 4, 0, 0, static_cast<std::uint8_t>(bulk_pair ? 2 : 1), iface_class, 0, 0, 0});
  if (bulk_pair) {
    v.insert(v.end(), {7, 5, 0x02, 0x02});
    put16(v, 512);
    v.push_back(0);
    v.insert(v.end(), {7, 5, 0x81, 0x02});
    put16(v, 512);
    v.push_back(0);
  } else {  // a hub's status-change interrupt endpoint
    v.insert(v.end(), {7, 5, 0x81, 0x03});
    put16(v, 1);
    v.push_back(12);
  }
  return v;
}

std::string record(const std::string& syspath, int devnum, const std::vector<std::uint8_t>& desc) {
  char node[32];
  std::snprintf(node, sizeof node, "bus/usb/001/%03d", devnum);
  char props[256];
  std::snprintf(props, sizeof props,
                "E: SUBSYSTEM=usb\nE: DEVTYPE=usb_device\nE: DRIVER=usb\nE: BUSNUM=001\nE: DEVNUM=%03d\nE: DEVNAME=/dev/%s\n", devnum, node);
  return "P: " + syspath + "\nN: " + node + "\n" + props + "A: busnum=1\\n\nA: devnum=" + std::to_string(devnum) +
         "\\n\nA: speed=480\\n\nA: bConfigurationValue=1\\n\nH: descriptors=" + hex(desc) + "\n\n";
}

}  // namespace

/// One emulated port: the device model and the URBs libusb has in flight on it. Touched by the
/// umockdev worker thread (handler) and the owning thread (plug/unplug/faults): one mutex.
struct UmockdevBus::Port {
  std::mutex m;
  CameraDevice* device = nullptr;
  std::string syspath;
  std::string devnode;
  int devnum = 0;
  UMockdevIoctlBase* handler = nullptr;
  struct Urb {
    UMockdevIoctlData* data;
    bool discarded = false;
  };
  std::deque<Urb> in_urbs;                   ///< bulk IN, waiting for data
  std::deque<Urb> done;                      ///< completed (OUT), ready to reap
  /// Bytes the device queued on IN, as the replies it produced; `in_front` bytes of the first
  /// are already sent.
  std::deque<proto::Bytes> in_stream;
  std::size_t in_front = 0;
  std::size_t in_queued = 0;
  /// Whether the ioctl client (libusb) runs in this process, so URB buffers can be written in
  /// place instead of copied through umockdev's socket; probed on the first URB.
  std::optional<bool> client_here;
  int wake_fd = -1;  ///< the bus's readiness eventfd: signalled when a reap may succeed
  bool unplugged = false;   ///< the cable is out: URBs fail with ENODEV
  bool removed = false;     ///< the removal uevent went out
  bool hang = false;
  bool stall_next = false;
  std::uint64_t bytes_in = 0;
  std::uint64_t unplug_at = UINT64_MAX;
  std::uint64_t hang_at = UINT64_MAX;

  // The hub 1-1 only: per-port power switching and what is attached, for hub class requests.
  bool is_hub = false;
  std::array<bool, 16> powered{};
  std::array<bool, 16> connected{};   ///< something is attached (enumerated or not)
  std::array<bool, 16> enumerated{};  ///< ...and it shows on the bus
  std::function<void(unsigned, bool)> on_port_power;
};

namespace {

constexpr unsigned kHubPorts = 15;

/// A hub class request on the emulated hub (USB 2.0 section 11.24): port power, port status and
/// the hub descriptor (per-port power switching). Returns the URB status; `power_event` is set
/// when a port is switched.
int hub_control(UmockdevBus::Port& hub, std::uint8_t* buf, int buffer_length, int& actual,
                std::optional<std::pair<unsigned, bool>>& power_event) {
  if (buffer_length < 8) return -EINVAL;
  const std::uint8_t type = buf[0], request = buf[1];
  const unsigned value = buf[2] | (buf[3] << 8), index = buf[4] | (buf[5] << 8), length = buf[6] | (buf[7] << 8);
  std::uint8_t* data = buf + 8;
  const unsigned room = std::min<unsigned>(length, static_cast<unsigned>(buffer_length - 8));
  actual = 0;
  const bool port_ok = index >= 1 && index <= kHubPorts;
  if (type == 0xA0 && request == 0x06 && (value >> 8) == 0x29) {  // hub descriptor
    const std::uint8_t desc[] = {11, 0x29, kHubPorts, 0x01, 0x00, 50, 100, 0, 0, 0xFF, 0xFF};  // 0x0001: per-port power
    actual = static_cast<int>(std::min<unsigned>(room, sizeof desc));
    std::memcpy(data, desc, static_cast<std::size_t>(actual));
    return 0;
  }
  if (type == 0xA3 && request == 0x00 && port_ok && room >= 4) {  // port status
    const bool on = hub.powered[index];
    unsigned bits = on ? 0x0100 : 0;
    if (on && hub.connected[index]) bits |= 0x0001 | 0x0400;  // connected, high speed
    if (on && hub.enumerated[index]) bits |= 0x0002;           // enabled
    const std::uint8_t status[4] = {static_cast<std::uint8_t>(bits), static_cast<std::uint8_t>(bits >> 8), 0, 0};
    std::memcpy(data, status, 4);
    actual = 4;
    return 0;
  }
  if (type == 0x23 && (request == 0x01 || request == 0x03) && value == 8 && port_ok) {  // PORT_POWER
    const bool on = request == 0x03;
    if (hub.powered[index] != on) power_event = std::make_pair(index, on);
    hub.powered[index] = on;
    return 0;
  }
  return -EPIPE;  // a request this hub does not support: stall, as a real one does
}

usbdevfs_urb* urb_of(UMockdevIoctlData* d) { return reinterpret_cast<usbdevfs_urb*>(d->data); }

/// True when the URB at the client's address reads, in this process's own memory, exactly as
/// umockdev's copy of it: the ioctl came from this process. process_vm_readv on ourselves
/// cannot fault, whatever the address.
bool client_in_this_process(const UMockdevIoctlData* urb) {
  std::array<std::uint8_t, sizeof(usbdevfs_urb)> here{};
  iovec local{here.data(), here.size()};
  // NOLINTNEXTLINE(performance-no-int-to-ptr): client_addr is the URB's address as the client passed it; it only goes to process_vm_readv
  iovec remote{reinterpret_cast<void*>(urb->client_addr), here.size()};
  if (::process_vm_readv(::getpid(), &local, 1, &remote, 1, 0) != static_cast<ssize_t>(here.size())) return false;
  return std::memcmp(here.data(), urb->data, here.size()) == 0;
}

/// Tells the host a reap may now succeed, as the kernel does by making a usbfs fd writable.
void wake(const UmockdevBus::Port& port) {
  if (port.wake_fd >= 0) (void)::eventfd_write(port.wake_fd, 1);
}

/// Moves `n` queued IN bytes to `dst`.
void take_in(UmockdevBus::Port& port, std::uint8_t* dst, std::size_t n) {
  port.in_queued -= n;
  while (n > 0) {
    auto& front = port.in_stream.front();
    const auto k = std::min(n, front.size() - port.in_front);
    std::memcpy(dst, front.data() + port.in_front, k);
    dst += k;
    n -= k;
    port.in_front += k;
    if (port.in_front == front.size()) {
      port.in_stream.pop_front();
      port.in_front = 0;
    }
  }
}

/// Hands one URB back to libusb through the REAPURBNDELAY argument.
void reap(UMockdevIoctlClient* client, UMockdevIoctlData* arg, UMockdevIoctlData* urb) {
  UMockdevIoctlData* slot = umockdev_ioctl_data_resolve(arg, 0, sizeof(void*), nullptr);
  umockdev_ioctl_data_set_ptr(slot, 0, urb);
  umockdev_ioctl_client_complete(client, 0, 0);
  g_object_unref(slot);
  g_object_unref(urb);
}

gboolean serve_ioctl(UMockdevIoctlBase*, UMockdevIoctlClient* client, gpointer user);

gboolean on_ioctl(UMockdevIoctlBase* base, UMockdevIoctlClient* client, gpointer user) {
  const gulong request = umockdev_ioctl_client_get_request(client);
  auto* port = static_cast<UmockdevBus::Port*>(user);
  const gboolean handled = serve_ioctl(base, client, user);
  if (request == USBDEVFS_SUBMITURB || request == USBDEVFS_DISCARDURB) {
    bool reapable = false;
    {
      std::lock_guard lock(port->m);
      reapable = !port->done.empty() || port->unplugged || port->stall_next ||
                 std::any_of(port->in_urbs.begin(), port->in_urbs.end(), [](const auto& u) { return u.discarded; }) ||
                 (!port->in_urbs.empty() && port->in_queued > 0 && !port->hang);
    }
    if (reapable) wake(*port);
  }
  return handled;
}

gboolean serve_ioctl(UMockdevIoctlBase*, UMockdevIoctlClient* client, gpointer user) {
  auto* port = static_cast<UmockdevBus::Port*>(user);
  UMockdevIoctlData* arg = umockdev_ioctl_client_get_arg(client);
  const gulong request = umockdev_ioctl_client_get_request(client);
  std::unique_lock lock(port->m);
  const bool is_reap = request == USBDEVFS_REAPURBNDELAY || request == USBDEVFS_REAPURB;
  if (port->unplugged && !is_reap) {
    umockdev_ioctl_client_complete(client, -1, ENODEV);
    return TRUE;
  }
  switch (request) {
    case USBDEVFS_GET_CAPABILITIES: {
      UMockdevIoctlData* d = umockdev_ioctl_data_resolve(arg, 0, sizeof(guint32), nullptr);
      *reinterpret_cast<guint32*>(d->data) = USBDEVFS_CAP_BULK_SCATTER_GATHER | USBDEVFS_CAP_BULK_CONTINUATION |
                                             USBDEVFS_CAP_NO_PACKET_SIZE_LIM | USBDEVFS_CAP_REAP_AFTER_DISCONNECT | USBDEVFS_CAP_ZERO_PACKET;
      umockdev_ioctl_client_complete(client, 0, 0);
      g_object_unref(d);
      return TRUE;
    }
    case USBDEVFS_CLAIMINTERFACE:
    case USBDEVFS_RELEASEINTERFACE:
    case USBDEVFS_DISCONNECT_CLAIM:
    case USBDEVFS_SETINTERFACE:
    case USBDEVFS_CLEAR_HALT:
    case USBDEVFS_RESETEP:
      umockdev_ioctl_client_complete(client, 0, 0);
      return TRUE;
    case USBDEVFS_GETDRIVER:
    case USBDEVFS_IOCTL:
      umockdev_ioctl_client_complete(client, -1, ENODATA);  // no kernel driver bound
      return TRUE;
    case USBDEVFS_SUBMITURB: {
      UMockdevIoctlData* ud = umockdev_ioctl_data_resolve(arg, 0, sizeof(usbdevfs_urb), nullptr);
      usbdevfs_urb* u = urb_of(ud);
      if (!port->client_here) port->client_here = client_in_this_process(ud);
      // An IN buffer's old contents are of no use: it is filled at reap time, in place when
      // libusb runs in this process (no copy through umockdev's socket), else resolved then.
      const bool need_buffer = u->buffer_length > 0 && !(u->type == USBDEVFS_URB_TYPE_BULK && (u->endpoint & 0x80));
      UMockdevIoctlData* bd = need_buffer ? umockdev_ioctl_data_resolve(ud, offsetof(usbdevfs_urb, buffer), static_cast<gsize>(u->buffer_length), nullptr) : nullptr;
      if (u->type == USBDEVFS_URB_TYPE_CONTROL && port->is_hub && bd) {
        std::optional<std::pair<unsigned, bool>> power_event;
        int actual = 0;
        u->status = hub_control(*port, static_cast<std::uint8_t*>(bd->data), u->buffer_length, actual, power_event);
        u->actual_length = actual;
        port->done.push_back({ud});
        g_object_unref(bd);
        umockdev_ioctl_client_complete(client, 0, 0);
        auto hook = port->on_port_power;
        lock.unlock();
        if (power_event && hook) hook(power_event->first, power_event->second);
        return TRUE;
      }
      if (u->type != USBDEVFS_URB_TYPE_BULK) {
        if (bd) g_object_unref(bd);
        g_object_unref(ud);
        umockdev_ioctl_client_complete(client, -1, EINVAL);
        return TRUE;
      }
      if (u->endpoint & 0x80) {
        port->in_urbs.push_back({ud});
      } else {
        if (!port->hang && bd) {
          auto reply = port->device->handle({bd->data, static_cast<std::size_t>(u->buffer_length)});
          if (!reply.empty()) {
            port->in_queued += reply.size();
            port->in_stream.push_back(std::move(reply));
          }
        }
        u->actual_length = u->buffer_length;
        u->status = 0;
        port->done.push_back({ud});
      }
      if (bd) g_object_unref(bd);
      umockdev_ioctl_client_complete(client, 0, 0);
      return TRUE;
    }
    case USBDEVFS_REAPURB:
    case USBDEVFS_REAPURBNDELAY: {
      if (!port->done.empty()) {
        auto urb = port->done.front();
        port->done.pop_front();
        if (urb.discarded) urb_of(urb.data)->status = -ENOENT;
        reap(client, arg, urb.data);
        return TRUE;
      }
      for (auto it = port->in_urbs.begin(); it != port->in_urbs.end(); ++it) {
        usbdevfs_urb* u = urb_of(it->data);
        if (it->discarded || port->unplugged) {
          u->status = it->discarded ? -ENOENT : -ENODEV;
          u->actual_length = 0;
          auto* d = it->data;
          port->in_urbs.erase(it);
          reap(client, arg, d);
          return TRUE;
        }
      }
      if (!port->in_urbs.empty() && port->stall_next) {
        port->stall_next = false;
        auto urb = port->in_urbs.front();
        port->in_urbs.pop_front();
        urb_of(urb.data)->status = -EPIPE;
        urb_of(urb.data)->actual_length = 0;
        reap(client, arg, urb.data);
        return TRUE;
      }
      if (!port->in_urbs.empty() && port->in_queued > 0 && !port->hang) {
        auto urb = port->in_urbs.front();
        port->in_urbs.pop_front();
        usbdevfs_urb* u = urb_of(urb.data);
        auto n = std::min<std::size_t>(static_cast<std::size_t>(u->buffer_length), port->in_queued);
        if (port->bytes_in + n >= port->unplug_at) {
          n = static_cast<std::size_t>(port->unplug_at - std::min(port->bytes_in, port->unplug_at));
          port->unplugged = true;  // this transfer still carries the bytes before the cut
        }
        if (port->bytes_in + n >= port->hang_at) {
          n = static_cast<std::size_t>(port->hang_at - std::min(port->bytes_in, port->hang_at));
          port->hang = true;  // firmware wedged: silent from here on
        }
        UMockdevIoctlData* bd = nullptr;
        auto* dst = static_cast<std::uint8_t*>(u->buffer);  // the client's address
        if (n > 0 && !*port->client_here) {
          bd = umockdev_ioctl_data_resolve(urb.data, offsetof(usbdevfs_urb, buffer), n, nullptr);
          dst = bd->data;
        }
        take_in(*port, dst, n);
        if (bd) g_object_unref(bd);
        u->actual_length = static_cast<int>(n);
        u->status = 0;
        port->bytes_in += n;
        reap(client, arg, urb.data);
        return TRUE;
      }
      umockdev_ioctl_client_complete(client, -1, port->unplugged ? ENODEV : EAGAIN);
      return TRUE;
    }
    case USBDEVFS_DISCARDURB: {
      const auto addr = reinterpret_cast<gulong>(*reinterpret_cast<void**>(arg->data));
      for (auto* q : {&port->in_urbs, &port->done})
        for (auto& urb : *q)
          if (urb.data->client_addr == addr && !urb.discarded) {
            urb.discarded = true;
            umockdev_ioctl_client_complete(client, 0, 0);
            return TRUE;
          }
      umockdev_ioctl_client_complete(client, -1, EINVAL);
      return TRUE;
    }
    default:
      return FALSE;
  }
}

}  // namespace

struct UmockdevBus::Impl {
  UMockdevTestbed* testbed = nullptr;
  std::unique_ptr<Port> hub;
  int wake_fd = -1;
  std::map<unsigned, std::unique_ptr<Port>> ports;
  int last_devnum = 2;  // 1 and 2 are the root hub and hub 1-1

  // Like the kernel: the next free number after the last one given, wrapping within 3..127
  // (USB addresses are 7 bits; libusb refuses a larger devnum). A number stays taken while its
  // node is attached, which for an unplugged port lasts until that port is plugged again.
  int allocate_devnum(unsigned replugged_port) {
    constexpr int first = 3, last = 127;
    for (int i = 1; i <= last - first + 1; ++i) {
      const int candidate = first + (last_devnum - first + i) % (last - first + 1);
      bool taken = false;
      for (const auto& [n, p] : ports)
        if (n != replugged_port && p && p->devnum == candidate) taken = true;
      if (!taken) return last_devnum = candidate;
    }
    throw std::runtime_error("no free USB device number on the emulated bus");
  }
};

UmockdevBus::UmockdevBus() : impl_(std::make_unique<Impl>()) {
  impl_->testbed = umockdev_testbed_new();
  impl_->wake_fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  // The hub 1-1 answers hub class requests on its control endpoint (port power, port status).
  impl_->hub = std::make_unique<Port>();
  impl_->hub->is_hub = true;
  impl_->hub->wake_fd = impl_->wake_fd;
  impl_->hub->powered.fill(true);
  impl_->hub->devnode = "/dev/bus/usb/001/002";
  impl_->hub->syspath = "/sys/devices/usb1/1-1";
  impl_->hub->handler = umockdev_ioctl_base_new();
  g_signal_connect(impl_->hub->handler, "handle-ioctl", G_CALLBACK(on_ioctl), impl_->hub.get());
  GError* err = nullptr;
  if (!umockdev_testbed_attach_ioctl(impl_->testbed, impl_->hub->devnode.c_str(), impl_->hub->handler, &err)) {
    std::string msg = err ? err->message : "unknown error";
    g_clear_error(&err);
    g_object_unref(impl_->hub->handler);
    g_object_unref(impl_->testbed);
    throw std::runtime_error("cannot attach the emulated hub: " + msg);
  }
  const std::string hubs = record("/devices/usb1", 1, descriptors(9, 0x1d6b, 0x0002, 9, false)) +
                           record("/devices/usb1/1-1", 2, descriptors(9, 0x05e3, 0x0608, 9, false));
  if (!umockdev_testbed_add_from_string(impl_->testbed, hubs.c_str(), &err)) {
    std::string msg = err ? err->message : "unknown error";
    g_clear_error(&err);
    g_object_unref(impl_->hub->handler);
    g_object_unref(impl_->testbed);
    throw std::runtime_error("cannot create the emulated USB hubs: " + msg);
  }
}

namespace {
void release(UmockdevBus::Port& port) {
  if (port.handler) g_object_unref(port.handler);
  for (auto& u : port.in_urbs) g_object_unref(u.data);
  for (auto& u : port.done) g_object_unref(u.data);
}
}  // namespace

UmockdevBus::~UmockdevBus() {
  for (auto& [n, port] : impl_->ports) release(*port);
  release(*impl_->hub);
  g_object_unref(impl_->testbed);
  if (impl_->wake_fd >= 0) ::close(impl_->wake_fd);
}

void UmockdevBus::hub_port(unsigned port_number, bool connected, bool enumerated) {
  std::lock_guard lock(impl_->hub->m);
  impl_->hub->connected.at(port_number) = connected;
  impl_->hub->enumerated.at(port_number) = enumerated;
}

void UmockdevBus::attach_unenumerated(unsigned port_number) {
  if (port_number == 0 || port_number > 15) throw std::invalid_argument("hub ports are 1..15");
  hub_port(port_number, true, false);
}

void UmockdevBus::on_port_power(std::function<void(unsigned port, bool on)> hook) {
  std::lock_guard lock(impl_->hub->m);
  impl_->hub->on_port_power = std::move(hook);
}

int UmockdevBus::readiness_fd() const { return impl_->wake_fd; }

bool UmockdevBus::port_powered(unsigned port_number) {
  std::lock_guard lock(impl_->hub->m);
  return impl_->hub->powered.at(port_number);
}

void UmockdevBus::plug(unsigned port_number, CameraDevice& device, UsbIdentity id) {
  if (port_number == 0 || port_number > 15) throw std::invalid_argument("hub ports are 1..15");
  auto& slot = impl_->ports[port_number];
  if (slot && !slot->removed) throw std::logic_error("port already in use");
  if (slot) {
    umockdev_testbed_remove_device(impl_->testbed, slot->syspath.c_str());
    // The old device node's ioctl socket goes with it (every plug makes a node of its own);
    // left attached, each docking would keep a socket open for the life of the process.
    GError* detach_err = nullptr;
    if (!umockdev_testbed_detach_ioctl(impl_->testbed, slot->devnode.c_str(), &detach_err)) g_clear_error(&detach_err);
    std::lock_guard lock(slot->m);
    for (auto& u : slot->in_urbs) g_object_unref(u.data);
    for (auto& u : slot->done) g_object_unref(u.data);
  }
  auto port = std::make_unique<Port>();
  const int devnum = impl_->allocate_devnum(port_number);
  char node[48];
  std::snprintf(node, sizeof node, "/dev/bus/usb/001/%03d", devnum);
  port->devnode = node;
  port->devnum = devnum;
  port->syspath = "/sys/devices/usb1/1-1/1-1." + std::to_string(port_number);
  port->device = &device;
  port->wake_fd = impl_->wake_fd;
  if (copy_through_socket_) port->client_here = false;
  device.reset_session();
  port->handler = umockdev_ioctl_base_new();
  g_signal_connect(port->handler, "handle-ioctl", G_CALLBACK(on_ioctl), port.get());
  GError* err = nullptr;
  if (!umockdev_testbed_attach_ioctl(impl_->testbed, node, port->handler, &err)) {
    std::string msg = err ? err->message : "unknown error";
    g_clear_error(&err);
    throw std::runtime_error("cannot attach the USB emulation to " + std::string(node) + ": " + msg);
  }
  const auto rec = record("/devices/usb1/1-1/1-1." + std::to_string(port_number), devnum,
                          descriptors(0, id.vid, id.pid, id.interface_class, true));
  if (!umockdev_testbed_add_from_string(impl_->testbed, rec.c_str(), &err)) {
    std::string msg = err ? err->message : "unknown error";
    g_clear_error(&err);
    throw std::runtime_error("cannot add the emulated camera: " + msg);
  }
  if (slot && slot->handler) g_object_unref(slot->handler);
  slot = std::move(port);
  hub_port(port_number, true, true);
}

void UmockdevBus::unplug(unsigned port_number) {
  auto it = impl_->ports.find(port_number);
  if (it == impl_->ports.end() || it->second->removed) return;
  {
    std::lock_guard lock(it->second->m);
    it->second->unplugged = true;  // URBs in flight now reap with -ENODEV, then ENODEV
    it->second->removed = true;
  }
  wake(*it->second);
  umockdev_testbed_uevent(impl_->testbed, it->second->syspath.c_str(), "remove");
  hub_port(port_number, false, false);
}

void UmockdevBus::unplug_after(unsigned port_number, std::uint64_t bytes) {
  auto& port = impl_->ports.at(port_number);
  std::lock_guard lock(port->m);
  port->unplug_at = bytes;
}

void UmockdevBus::hang_after(unsigned port_number, std::uint64_t bytes) {
  auto& port = impl_->ports.at(port_number);
  std::lock_guard lock(port->m);
  port->hang_at = bytes;
}

void UmockdevBus::set_hang(unsigned port_number, bool hang) {
  auto& port = impl_->ports.at(port_number);
  std::lock_guard lock(port->m);
  port->hang = hang;
  wake(*port);
}

void UmockdevBus::stall_next_in(unsigned port_number) {
  auto& port = impl_->ports.at(port_number);
  std::lock_guard lock(port->m);
  port->stall_next = true;
  wake(*port);
}

std::uint64_t UmockdevBus::bytes_in(unsigned port_number) {
  auto& port = impl_->ports.at(port_number);
  std::lock_guard lock(port->m);
  return port->bytes_in;
}

}  // namespace bodydock::hw
