// The libsystemd API that SystemdBus uses. No shim code lives here: every function SystemdBus
// needs is non-variadic (messages are built with sd_bus_message_append_basic and containers,
// and read with sd_bus_message_read_basic), so Swift calls libsystemd directly.
#include <systemd/sd-bus.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-journal.h>
#include <sys/eventfd.h>
#include <sys/uio.h>
#include <poll.h>
// mallopt(M_ARENA_MAX, ...) for flotillad's start (glibc's malloc.h is not in Swift's Glibc module).
#include <malloc.h>
