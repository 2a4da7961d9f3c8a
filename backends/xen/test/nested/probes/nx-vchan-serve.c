/*
 * nx-vchan-serve: the dom0 end of the nested-Xen smoke test's channel check.
 *
 *   nx-vchan-serve DOMID XS_PATH LINE
 *
 * Offers a vchan to domain DOMID at the xenstore path XS_PATH (dom0 is the
 * server: it grants the ring pages, the guest only maps them), sends LINE and
 * a newline, and prints the first line the guest sends back as
 * "reply: <line>". Exits 1 when the guest does not answer within 15 minutes, so a
 * hung guest fails the test instead of hanging it.
 *
 * Build: cc -O2 nx-vchan-serve.c -o nx-vchan-serve -lxenvchan
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <libxenvchan.h>

#define MAX_LINE 4096
#define TIMEOUT_MS 900000

static long long now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

int main(int argc, char **argv)
{
    if ( argc != 4 )
    {
        fprintf(stderr, "usage: nx-vchan-serve DOMID XS_PATH LINE\n");
        return 64;
    }
    char *end;
    long domid = strtol(argv[1], &end, 10);
    if ( *end || domid <= 0 || domid >= 0x7ff0 )
    {
        fprintf(stderr, "nx-vchan-serve: bad domain id %s\n", argv[1]);
        return 64;
    }
    struct libxenvchan *v = libxenvchan_server_init(NULL, (int)domid, argv[2], 0, 0);
    if ( !v )
    {
        fprintf(stderr, "nx-vchan-serve: server_init %s: %s\n", argv[2], strerror(errno));
        return 1;
    }
    /* Non-blocking: every wait below goes through poll with a deadline. */
    v->blocking = 0;
    size_t len = strlen(argv[3]);
    char *out = malloc(len + 1);
    if ( !out )
        return 1;
    memcpy(out, argv[3], len);
    out[len] = '\n';
    size_t sent = 0;
    char buf[MAX_LINE + 1];
    size_t got = 0;
    long long deadline = now_ms() + TIMEOUT_MS;
    for ( ;; )
    {
        /* The guest may connect after us: the send waits until the ring has room and a peer. */
        if ( sent < len + 1 && libxenvchan_is_open(v) == 1 )
        {
            int n = libxenvchan_write(v, out + sent, len + 1 - sent);
            if ( n < 0 )
                break;
            sent += n;
        }
        while ( libxenvchan_data_ready(v) > 0 && got < MAX_LINE )
        {
            int n = libxenvchan_read(v, buf + got, 1);
            if ( n <= 0 )
                goto fail;
            if ( buf[got] == '\n' )
            {
                buf[got] = 0;
                printf("reply: %s\n", buf);
                libxenvchan_close(v);
                return 0;
            }
            got++;
        }
        if ( got == MAX_LINE || libxenvchan_is_open(v) == 0 )
            break;
        long long left = deadline - now_ms();
        if ( left <= 0 )
        {
            fprintf(stderr, "nx-vchan-serve: no reply from d%ld within %d ms\n", domid, TIMEOUT_MS);
            break;
        }
        struct pollfd p = { .fd = libxenvchan_fd_for_select(v), .events = POLLIN };
        if ( poll(&p, 1, left < 200 ? (int)left : 200) > 0 )
            libxenvchan_wait(v);
    }
 fail:
    libxenvchan_close(v);
    return 1;
}
