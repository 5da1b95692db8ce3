"""cffi (ABI mode) declarations for the libwayland-server that pywayland already loaded.

Only one libwayland may live in a process: two copies would each keep their own idea of which
``wl_interface`` is which and of the shm SIGBUS handler. pywayland's compiled extension links the
libwayland-server it bundles (or the system one, for a source build), so we import it first and then
dlopen exactly the file it mapped, found in ``/proc/self/maps``. Nothing here is compiled.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import cffi

CDEF = """
typedef int32_t wl_fixed_t;
struct wl_display; struct wl_event_loop; struct wl_client; struct wl_global; struct wl_resource;
struct wl_shm_buffer; struct wl_object;
struct wl_list { struct wl_list *prev; struct wl_list *next; };
struct wl_array { size_t size; size_t alloc; void *data; };
struct wl_interface;
struct wl_message { const char *name; const char *signature; const struct wl_interface **types; };
struct wl_interface {
    const char *name; int version;
    int method_count; const struct wl_message *methods;
    int event_count; const struct wl_message *events;
};
union wl_argument {
    int32_t i; uint32_t u; wl_fixed_t f; const char *s; struct wl_object *o; uint32_t n;
    struct wl_array *a; int32_t h;
};
struct wl_listener;
typedef void (*wl_notify_func_t)(struct wl_listener *listener, void *data);
struct wl_listener { struct wl_list link; wl_notify_func_t notify; };
typedef int (*wl_dispatcher_func_t)(const void *, void *, uint32_t, const struct wl_message *,
                                    union wl_argument *);
typedef void (*wl_resource_destroy_func_t)(struct wl_resource *resource);
typedef void (*wl_global_bind_func_t)(struct wl_client *client, void *data, uint32_t version, uint32_t id);

struct wl_display *wl_display_create(void);
void wl_display_destroy(struct wl_display *display);
struct wl_event_loop *wl_display_get_event_loop(struct wl_display *display);
int wl_display_add_socket_fd(struct wl_display *display, int sock_fd);
void wl_display_flush_clients(struct wl_display *display);
void wl_display_destroy_clients(struct wl_display *display);
uint32_t wl_display_get_serial(struct wl_display *display);
uint32_t wl_display_next_serial(struct wl_display *display);
void wl_display_add_client_created_listener(struct wl_display *display, struct wl_listener *listener);
int wl_display_init_shm(struct wl_display *display);
uint32_t *wl_display_add_shm_format(struct wl_display *display, uint32_t format);
typedef _Bool (*wl_display_global_filter_func_t)(const struct wl_client *client,
                                                 const struct wl_global *global, void *data);
void wl_display_set_global_filter(struct wl_display *display, wl_display_global_filter_func_t filter,
                                  void *data);

int wl_event_loop_dispatch(struct wl_event_loop *loop, int timeout);
void wl_event_loop_dispatch_idle(struct wl_event_loop *loop);
int wl_event_loop_get_fd(struct wl_event_loop *loop);

struct wl_global *wl_global_create(struct wl_display *display, const struct wl_interface *interface,
                                   int version, void *data, wl_global_bind_func_t bind);
void wl_global_remove(struct wl_global *global);
void wl_global_destroy(struct wl_global *global);

struct wl_client *wl_client_create(struct wl_display *display, int fd);
void wl_client_destroy(struct wl_client *client);
void wl_client_flush(struct wl_client *client);
void wl_client_get_credentials(struct wl_client *client, int32_t *pid, uint32_t *uid, uint32_t *gid);
int wl_client_get_fd(struct wl_client *client);
void wl_client_add_destroy_listener(struct wl_client *client, struct wl_listener *listener);
struct wl_resource *wl_client_get_object(struct wl_client *client, uint32_t id);
void wl_client_post_no_memory(struct wl_client *client);
void wl_client_post_implementation_error(struct wl_client *client, const char *msg, ...);

void wl_resource_post_event_array(struct wl_resource *resource, uint32_t opcode, union wl_argument *args);
void wl_resource_post_error(struct wl_resource *resource, uint32_t code, const char *msg, ...);
struct wl_resource *wl_resource_create(struct wl_client *client, const struct wl_interface *interface,
                                       int version, uint32_t id);
void wl_resource_set_dispatcher(struct wl_resource *resource, wl_dispatcher_func_t dispatcher,
                                const void *implementation, void *data,
                                wl_resource_destroy_func_t destroy);
void wl_resource_destroy(struct wl_resource *resource);
uint32_t wl_resource_get_id(struct wl_resource *resource);
struct wl_client *wl_resource_get_client(struct wl_resource *resource);
void *wl_resource_get_user_data(struct wl_resource *resource);
int wl_resource_get_version(struct wl_resource *resource);
const char *wl_resource_get_class(struct wl_resource *resource);
void wl_resource_add_destroy_listener(struct wl_resource *resource, struct wl_listener *listener);

struct wl_shm_buffer *wl_shm_buffer_get(struct wl_resource *resource);
void wl_shm_buffer_begin_access(struct wl_shm_buffer *buffer);
void wl_shm_buffer_end_access(struct wl_shm_buffer *buffer);
void *wl_shm_buffer_get_data(struct wl_shm_buffer *buffer);
int32_t wl_shm_buffer_get_stride(struct wl_shm_buffer *buffer);
uint32_t wl_shm_buffer_get_format(struct wl_shm_buffer *buffer);
int32_t wl_shm_buffer_get_width(struct wl_shm_buffer *buffer);
int32_t wl_shm_buffer_get_height(struct wl_shm_buffer *buffer);
"""

ffi = cffi.FFI()
ffi.cdef(CDEF)


def loaded_libwayland_server() -> Path:
    """Path of the libwayland-server pywayland's extension mapped into this process."""
    import pywayland._ffi  # noqa: F401  (maps libwayland-server into the process)

    for line in Path("/proc/self/maps").read_text().splitlines():
        fields = line.split()
        if len(fields) >= 6 and "libwayland-server" in os.path.basename(fields[5]):
            return Path(fields[5])
    raise ImportError(
        "pywayland is imported but no libwayland-server is mapped in this process; "
        "reinstall pywayland (./tools/bootstrap)"
    )


lib: Any = ffi.dlopen(str(loaded_libwayland_server()))


def address(ptr: Any) -> int:
    """Integer address of a cdata pointer (from any cffi FFI), for use as a dict key."""
    return int(ffi.cast("uintptr_t", ptr))
