/*
 * nx-vchan-echo: the guest end of the nested-Xen smoke test's channel check.
 *
 *   nx-vchan-echo XS_PATH
 *
 * Connects as the vchan client to the server dom0 offers at XS_PATH (relative
 * paths are under the guest's own /local/domain/<id>), retrying for 60 s
 * because the guest may be up before dom0 offers it. Reads one line, prints
 * "nx-guest: got <line>" on its console and answers "pong <line>". The guest
 * never grants memory of its own: it maps dom0's ring and binds dom0's event
 * channel (the xen-gntdev and xen-evtchn modules).
 *
 * Built static, for a busybox initramfs:
 *   cc -O2 -static nx-vchan-echo.c -o nx-vchan-echo -lxenvchan -lxengnttab \
 *      -lxenevtchn -lxenstore -lxentoolcore -lxentoollog
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <libxenvchan.h>

#define MAX_LINE 4096

int main(int argc, char **argv)
{
    if ( argc != 2 )
    {
        fprintf(stderr, "usage: nx-vchan-echo XS_PATH\n");
        return 64;
    }
    struct libxenvchan *v;
    for ( int tries = 0; !(v = libxenvchan_client_init(NULL, 0, argv[1])); tries++ )
    {
        if ( tries == 300 )
        {
            fprintf(stderr, "nx-vchan-echo: client_init %s: %s\n", argv[1], strerror(errno));
            return 1;
        }
        usleep(200 * 1000);
    }
    v->blocking = 1;
    char line[MAX_LINE + 1];
    size_t got = 0;
    while ( got < MAX_LINE )
    {
        if ( libxenvchan_read(v, line + got, 1) != 1 )
        {
            fprintf(stderr, "nx-vchan-echo: the channel closed\n");
            return 1;
        }
        if ( line[got] == '\n' )
            break;
        got++;
    }
    line[got] = 0;
    printf("nx-guest: got %s\n", line);
    fflush(stdout);
    char reply[MAX_LINE + 8];
    int n = snprintf(reply, sizeof(reply), "pong %s\n", line);
    if ( libxenvchan_send(v, reply, n) != n )
        return 1;
    /* Give dom0 time to read before the ring goes away with us. */
    sleep(2);
    libxenvchan_close(v);
    return 0;
}
