/*
 * mcl-vchan: the guest end of one mcl channel on Xen, linked statically so it
 * runs in the busybox initramfs (backends/xen/src/native.ts builds it):
 *   cc -O2 -static mcl-vchan.c -o mcl-vchan -lxenvchan -lxengnttab \
 *      -lxenevtchn -lxenstore -lxentoolcore -lxentoollog
 *
 *   mcl-vchan XS_PATH   connects as the vchan client to the server dom0 set up
 *                       at XS_PATH (a relative path is under the guest's own
 *                       /local/domain/<id>), then copies stdin to the vchan
 *                       and the vchan to stdout until either side closes.
 *
 * The guest maps dom0's grants (xen-gntdev) and binds dom0's event channel
 * (xen-evtchn); it never grants its own memory, so the FLASK policy can deny
 * every guest any grant of its own to anyone. The guest agent runs it as a
 * coprocess on a FIFO pair that mcl-msg's FIFO mode reads (agent.sh,
 * vchan_port), and starts it again when it ends.
 *
 * Exit status: 0 the channel closed, 1 no server within 60 s, 64 usage.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <libxenvchan.h>

int main(int argc, char **argv)
{
    char buf[16384];
    struct libxenvchan *v;

    if ( argc != 2 )
    {
        fprintf(stderr, "usage: mcl-vchan XS_PATH\n");
        return 64;
    }
    /*
     * The guest may be faster than dom0 (or restored before dom0 set the new
     * server up): retry for 60 s; the agent starts it again after that. Each
     * attempt opens xenstore anew, so a guest restored under a new domain id
     * finds its new server through the same relative path.
     */
    for ( int tries = 0; !(v = libxenvchan_client_init(NULL, 0, argv[1])); tries++ )
    {
        if ( tries == 300 )
        {
            fprintf(stderr, "mcl-vchan: no server at %s: %s\n", argv[1], strerror(errno));
            return 1;
        }
        usleep(200 * 1000);
    }
    v->blocking = 1;

    for ( ;; )
    {
        struct pollfd p[2] = {
            { .fd = 0, .events = POLLIN },
            { .fd = libxenvchan_fd_for_select(v), .events = POLLIN },
        };
        if ( poll(p, 2, -1) < 0 && errno != EINTR )
            break;
        if ( p[1].revents & POLLIN )
            libxenvchan_wait(v);
        while ( libxenvchan_data_ready(v) > 0 )
        {
            int n = libxenvchan_read(v, buf, sizeof(buf));
            if ( n <= 0 )
                goto out;
            for ( int off = 0; off < n; )
            {
                ssize_t w = write(1, buf + off, n - off);
                if ( w <= 0 )
                    goto out;
                off += w;
            }
        }
        if ( !libxenvchan_is_open(v) )
            break;
        if ( p[0].revents & (POLLIN | POLLHUP | POLLERR) )
        {
            ssize_t n = read(0, buf, sizeof(buf));
            if ( n <= 0 || libxenvchan_write(v, buf, n) != n )
                break;
        }
    }
 out:
    libxenvchan_close(v);
    return 0;
}
