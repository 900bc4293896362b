/* LD_PRELOAD shim for the store determinism tests: fills every memalign() block (x264_malloc
 * allocates with memalign) before returning it, so memory that x264 reads without ever writing
 * holds chosen bytes instead of leftovers. $FILL is a comma-separated list of byte values; the
 * k-th block gets the (k mod n)-th, so sequential encodes in one process see different leftovers.
 * Build: cc -O2 -shared -fPIC -o fill_memalign.so fill_memalign.c -ldl */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

static int fills[64];
static int nfills;
static unsigned long calls;

__attribute__((constructor)) static void read_fills(void) {
    const char *s = getenv("FILL");
    while (s && *s && nfills < 64) {
        char *end;
        fills[nfills++] = (int)strtol(s, &end, 0) & 0xff;
        s = *end == ',' ? end + 1 : "";
    }
}

void *memalign(size_t align, size_t size) {
    static void *(*real)(size_t, size_t);
    if (!real) real = (void *(*)(size_t, size_t))dlsym(RTLD_NEXT, "memalign");
    void *p = real(align, size);
    if (p && nfills) memset(p, fills[calls++ % nfills], size);
    return p;
}
