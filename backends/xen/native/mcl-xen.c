/*
 * mcl-xen: the dom0 helper of mcl's Xen backend (backends/xen/src/toolstack.ts
 * runs it; spec/xen.md describes every subcommand). Built on the dom0 host
 * against libxenctrl, libxenstore and libxenvchan (Debian: libxen-dev):
 *   cc -O2 mcl-xen.c -o mcl-xen -lxenvchan -lxenctrl -lxenstore
 *
 *   mcl-xen check                 one JSON line: hypervisor version, HVM/HAP,
 *                                 VT-x/SVM, memory sharing, XSM
 *   mcl-xen list                  one JSON line per domain: domid, name,
 *                                 state, tot_pages, shr_pages, cpu_time_ns
 *   mcl-xen fork PARENT NAME [LABEL]
 *                                 creates an empty domain shaped like PARENT
 *                                 (FLASK label LABEL, else the parent's),
 *                                 makes it a copy-on-write fork of PARENT
 *                                 and prints its domid; the child stays
 *                                 paused. Nothing is left when a step fails.
 *   mcl-xen plumb CHILD NAME      gives a fork what a fork does not inherit:
 *                                 its xenstore directory, a store event
 *                                 channel and the introduction to xenstored,
 *                                 a console event channel and the console
 *                                 keys xenconsoled reads
 *   mcl-xen reset CHILD           xc_memshr_fork_reset (state and memory)
 *   mcl-xen destroy DOMID         destroys the domain and its xenstore entries
 *   mcl-xen relay DOMID XS_PATH   dom0's end of one channel: a vchan server
 *                                 for DOMID at XS_PATH, copied to and from
 *                                 stdin/stdout until either side closes
 *
 * Exit status: 0 done, 1 failed (a line on stderr says why), 2 `check` found
 * no memory sharing, 64 usage.
 */
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* xenctrl.h first: it defines __XEN_TOOLS__, which the Xen headers the others include depend on. */
#include <xenctrl.h>
#include <xenstore.h>
#include <xen/hvm/params.h>
#include <libxenvchan.h>

static xc_interface *xch;

static int fail(const char *what)
{
    fprintf(stderr, "mcl-xen: %s: %s (errno %d)\n", what, strerror(errno), errno);
    return 1;
}

/* A domain id of a guest: 1 .. DOMID_FIRST_RESERVED-1, decimal, nothing else. */
static int parse_domid(const char *s, uint32_t *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if ( !*s || *end || errno || v == 0 || v >= DOMID_FIRST_RESERVED )
        return -1;
    *out = (uint32_t)v;
    return 0;
}

/* Names we create are [A-Za-z0-9._-]{1,63}: safe in xenstore paths and JSON. */
static int valid_name(const char *s)
{
    size_t n = strlen(s);
    if ( n == 0 || n > 63 )
        return 0;
    for ( ; *s; s++ )
        if ( !((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
               *s == '.' || *s == '_' || *s == '-') )
            return 0;
    return 1;
}

static int cmd_check(void)
{
    xc_physinfo_t pi = { 0 };
    xen_extraversion_t extra;
    int ver = xc_version(xch, XENVER_version, NULL);

    if ( xc_version(xch, XENVER_extraversion, &extra) )
        extra[0] = '\0';
    extra[sizeof(extra) - 1] = '\0';
    for ( char *c = extra; *c; c++ )
        if ( *c == '"' || *c == '\\' || (unsigned char)*c < 0x20 )
            *c = '?';
    if ( xc_physinfo(xch, &pi) )
        return fail("xc_physinfo");

    /*
     * XENMEM_sharing_op_audit is answered before any domain lookup: ENOSYS
     * means the hypervisor was built without CONFIG_MEM_SHARING (Debian's
     * stock build); anything else means the memop exists.
     */
    errno = 0;
    int audit = xc_memshr_audit(xch);
    bool sharing = !(audit < 0 && errno == ENOSYS);
    /* The FLASK op is ENOSYS without XSM; otherwise it says whether FLASK enforces. */
    errno = 0;
    int enforce = xc_flask_getenforce(xch);
    const char *xsm = enforce >= 0 ? (enforce ? "enforcing" : "permissive") : errno == ENOSYS ? "absent" : "unknown";
    /* hw_cap[1] is CPUID.1:ECX (VMX is bit 5); hw_cap[3] is CPUID.0x80000001:ECX (SVM is bit 2). */
    printf("{\"version\":\"%d.%d%s\",\"hvm\":%s,\"hap\":%s,\"vmx\":%s,\"svm\":%s,\"mem_sharing\":%s,\"xsm\":\"%s\"}\n",
           ver >> 16, ver & 0xffff, extra,
           pi.capabilities & XEN_SYSCTL_PHYSCAP_hvm ? "true" : "false",
           pi.capabilities & XEN_SYSCTL_PHYSCAP_hap ? "true" : "false",
           pi.hw_cap[1] & (1u << 5) ? "true" : "false",
           pi.hw_cap[3] & (1u << 2) ? "true" : "false",
           sharing ? "true" : "false", xsm);
    return sharing ? 0 : 2;
}

static int cmd_list(void)
{
    static xc_domaininfo_t info[1024];
    struct xs_handle *xsh = xs_open(XS_OPEN_READONLY);
    uint32_t next = 0;
    int n;

    while ( (n = xc_domain_getinfolist(xch, next, 1024, info)) > 0 )
    {
        for ( int i = 0; i < n; i++ )
        {
            char path[64], *name = NULL;
            unsigned int len = 0;
            snprintf(path, sizeof(path), "/local/domain/%u/name", info[i].domain);
            if ( xsh )
                name = xs_read(xsh, XBT_NULL, path, &len);
            if ( name && !valid_name(name) )
            {
                free(name);
                name = NULL;
            }
            uint32_t f = info[i].flags;
            const char *state = f & XEN_DOMINF_dying ? "dying" : f & XEN_DOMINF_shutdown ? "shutdown" :
                                f & XEN_DOMINF_paused ? "paused" : "running";
            printf("{\"domid\":%u,\"name\":\"%s\",\"state\":\"%s\",\"tot_pages\":%llu,\"shr_pages\":%llu,"
                   "\"cpu_time_ns\":%llu,\"ssidref\":%u}\n",
                   info[i].domain, name ? name : "", state, (unsigned long long)info[i].tot_pages,
                   (unsigned long long)info[i].shr_pages, (unsigned long long)info[i].cpu_time, info[i].ssidref);
            free(name);
        }
        next = info[n - 1].domain + 1;
        if ( n < 1024 )
            break;
    }
    if ( xsh )
        xs_close(xsh);
    return n < 0 ? fail("xc_domain_getinfolist") : 0;
}

static void remove_xenstore(uint32_t dom)
{
    struct xs_handle *xsh = xs_open(0);
    char path[64];
    if ( !xsh )
        return;
    snprintf(path, sizeof(path), "/local/domain/%u", dom);
    xs_rm(xsh, XBT_NULL, path);
    snprintf(path, sizeof(path), "/libxl/%u", dom);
    xs_rm(xsh, XBT_NULL, path);
    xs_release_domain(xsh, dom);
    xs_close(xsh);
}

static int destroy_domain(uint32_t dom)
{
    int rc = xc_domain_destroy(xch, dom);
    int e = errno;
    remove_xenstore(dom);
    errno = e;
    return rc;
}

static int cmd_fork(uint32_t parent, const char *name, const char *label)
{
    xc_domaininfo_t info;
    uint32_t child = 0, ssidref;

    if ( xc_domain_getinfolist(xch, parent, 1, &info) != 1 || info.domain != parent )
        return fail("xc_domain_getinfolist(parent)");
    if ( !(info.flags & XEN_DOMINF_hvm_guest) || !(info.flags & XEN_DOMINF_hap) )
    {
        fprintf(stderr, "mcl-xen: domain %u is not an HVM/PVH guest with HAP; it cannot be forked\n", parent);
        return 1;
    }
    ssidref = info.ssidref;
    if ( label )
    {
        char buf[256];
        int n = snprintf(buf, sizeof(buf), "%s", label);
        if ( n < 0 || n >= (int)sizeof(buf) )
            return errno = ENAMETOOLONG, fail("FLASK label");
        /* The length counts the terminating NUL, as libxl passes it. */
        if ( xc_flask_context_to_sid(xch, buf, n + 1, &ssidref) )
            return fail("xc_flask_context_to_sid (is FLASK enabled, and the plan's policy loaded?)");
    }

    /*
     * The child must match the parent where the fork checks or copies state:
     * the same max_vcpus (mem_sharing.c refuses a mismatch with EINVAL) and
     * the same emulation flags (the parent's HVM context is loaded into it).
     * Grant and maptrack frames: -1, the hypervisor's defaults, as libxl.
     */
    struct xen_domctl_createdomain create = {
        .flags = XEN_DOMCTL_CDF_hvm | XEN_DOMCTL_CDF_hap | XEN_DOMCTL_CDF_oos_off,
        .ssidref = ssidref,
        .max_vcpus = info.max_vcpu_id + 1,
        .max_evtchn_port = 1023,
        .max_grant_frames = -1,
        .max_maptrack_frames = -1,
        .grant_opts = XEN_DOMCTL_GRANT_version(1),
        .arch = { .emulation_flags = info.arch_config.emulation_flags },
    };
    if ( xc_domain_create(xch, &child, &create) )
        return fail("xc_domain_create");

    /* allow_with_iommu=false: guests have no passthrough; block_interrupts=false: the fork takes its timer. */
    if ( xc_memshr_fork(xch, parent, child, false, false) )
    {
        int e = errno;
        destroy_domain(child);
        errno = e;
        return fail("xc_memshr_fork");
    }
    /* Xen keeps the parent paused until its last fork is destroyed. */
    struct xs_handle *xsh = xs_open(0);
    char path[64];
    snprintf(path, sizeof(path), "/local/domain/%u/name", child);
    if ( !xsh || !xs_write(xsh, XBT_NULL, path, name, strlen(name)) )
    {
        int e = errno;
        if ( xsh )
            xs_close(xsh);
        destroy_domain(child);
        errno = e;
        return fail("xenstore name of the fork");
    }
    xs_close(xsh);
    printf("%u\n", child);
    return 0;
}

static bool xs_put(struct xs_handle *xsh, uint32_t dom, const char *key, const char *val)
{
    char path[128];
    snprintf(path, sizeof(path), "/local/domain/%u/%s", dom, key);
    return xs_write(xsh, XBT_NULL, path, val, strlen(val));
}

static int cmd_plumb(uint32_t child, const char *name)
{
    uint64_t store_pfn = 0, console_pfn = 0;
    struct xs_handle *xsh;
    char path[64], val[32];
    int rc = 1;

    if ( xc_hvm_param_get(xch, child, HVM_PARAM_STORE_PFN, &store_pfn) || !store_pfn )
        return fail("HVM_PARAM_STORE_PFN (copied from the parent by the fork)");
    if ( xc_hvm_param_get(xch, child, HVM_PARAM_CONSOLE_PFN, &console_pfn) || !console_pfn )
        return fail("HVM_PARAM_CONSOLE_PFN (copied from the parent by the fork)");
    /* Event channels are not copied by a fork: new ones, bound by dom0's xenstored and xenconsoled. */
    int store_port = xc_evtchn_alloc_unbound(xch, child, 0);
    if ( store_port < 0 )
        return fail("store event channel");
    int console_port = xc_evtchn_alloc_unbound(xch, child, 0);
    if ( console_port < 0 )
        return fail("console event channel");
    if ( xc_hvm_param_set(xch, child, HVM_PARAM_STORE_EVTCHN, (uint64_t)store_port) ||
         xc_hvm_param_set(xch, child, HVM_PARAM_CONSOLE_EVTCHN, (uint64_t)console_port) )
        return fail("HVM_PARAM_*_EVTCHN");

    if ( !(xsh = xs_open(0)) )
        return fail("xs_open");
    /* The guest's own directory: it owns it, dom0 reads it (what libxl gives a domain it creates). */
    struct xs_permissions own[2] = { { .id = child, .perms = XS_PERM_NONE }, { .id = 0, .perms = XS_PERM_READ } };
    struct xs_permissions ro[2] = { { .id = 0, .perms = XS_PERM_NONE }, { .id = child, .perms = XS_PERM_READ } };
    snprintf(path, sizeof(path), "/local/domain/%u", child);
    bool ok = xs_mkdir(xsh, XBT_NULL, path) && xs_set_permissions(xsh, XBT_NULL, path, ro, 2);
    snprintf(val, sizeof(val), "%u", child);
    ok = ok && xs_put(xsh, child, "domid", val) && xs_put(xsh, child, "name", name);
    snprintf(path, sizeof(path), "/local/domain/%u/data", child);
    ok = ok && xs_mkdir(xsh, XBT_NULL, path) && xs_set_permissions(xsh, XBT_NULL, path, own, 2);
    snprintf(val, sizeof(val), "%llu", (unsigned long long)console_pfn);
    ok = ok && xs_put(xsh, child, "console/ring-ref", val);
    snprintf(val, sizeof(val), "%d", console_port);
    ok = ok && xs_put(xsh, child, "console/port", val) && xs_put(xsh, child, "console/type", "xenconsoled") &&
         xs_put(xsh, child, "console/limit", "1048576");
    /* `xl` recognises the domain (for `xl list` and `xl destroy`) by its libxl type. */
    snprintf(path, sizeof(path), "/libxl/%u/type", child);
    ok = ok && xs_write(xsh, XBT_NULL, path, "pvh", 3);
    /* Last: introducing makes xenstored (and, by its watch, xenconsoled) connect to the guest. */
    ok = ok && xs_introduce_domain(xsh, child, store_pfn, (unsigned)store_port);
    if ( ok )
    {
        printf("{\"store_port\":%d,\"console_port\":%d}\n", store_port, console_port);
        rc = 0;
    }
    else
        rc = fail("xenstore");
    xs_close(xsh);
    return rc;
}

static int cmd_relay(uint32_t dom, const char *xs_path)
{
    char buf[16384];
    /* dom0 is the server: it grants the ring, the guest only maps it (it never grants its own memory). */
    struct libxenvchan *v = libxenvchan_server_init(NULL, dom, xs_path, sizeof(buf), sizeof(buf));
    if ( !v )
        return fail("libxenvchan_server_init");
    v->blocking = 1;
    int rc = 0;
    for ( ;; )
    {
        struct pollfd p[2] = {
            { .fd = 0, .events = POLLIN },
            { .fd = libxenvchan_fd_for_select(v), .events = POLLIN },
        };
        if ( poll(p, 2, -1) < 0 )
        {
            if ( errno == EINTR )
                continue;
            rc = fail("poll");
            break;
        }
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
        /* 0: the guest closed its end (2 means still waiting for it to connect). */
        if ( libxenvchan_is_open(v) == 0 )
            break;
        if ( p[0].revents & (POLLIN | POLLHUP | POLLERR) )
        {
            ssize_t n = read(0, buf, sizeof(buf));
            if ( n <= 0 )
                break;
            if ( libxenvchan_write(v, buf, n) != n )
                break;
        }
    }
 out:
    libxenvchan_close(v);
    return rc;
}

int main(int argc, char **argv)
{
    uint32_t dom = 0;
    const char *cmd = argc > 1 ? argv[1] : "";
    int rc = 64;
    bool dom_arg = strcmp(cmd, "check") && strcmp(cmd, "list");

    if ( argc < 2 || (dom_arg && (argc < 3 || parse_domid(argv[2], &dom))) )
    {
        fprintf(stderr, "usage: mcl-xen check | list | fork PARENT NAME [LABEL] | plumb CHILD NAME | reset CHILD | "
                        "destroy DOMID | relay DOMID XS_PATH\n");
        return 64;
    }
    if ( !strcmp(cmd, "relay") )
        return argc == 4 ? cmd_relay(dom, argv[3]) : 64;
    if ( !(xch = xc_interface_open(NULL, NULL, 0)) )
        return fail("xc_interface_open (needs dom0 and /dev/xen/privcmd)");

    if ( !strcmp(cmd, "check") && argc == 2 )
        rc = cmd_check();
    else if ( !strcmp(cmd, "list") && argc == 2 )
        rc = cmd_list();
    else if ( !strcmp(cmd, "fork") && (argc == 4 || argc == 5) && valid_name(argv[3]) )
        rc = cmd_fork(dom, argv[3], argc == 5 ? argv[4] : NULL);
    else if ( !strcmp(cmd, "plumb") && argc == 4 && valid_name(argv[3]) )
        rc = cmd_plumb(dom, argv[3]);
    else if ( !strcmp(cmd, "reset") && argc == 3 )
        rc = xc_memshr_fork_reset(xch, dom, true, true) ? fail("xc_memshr_fork_reset") : 0;
    else if ( !strcmp(cmd, "destroy") && argc == 3 )
        rc = destroy_domain(dom) ? fail("xc_domain_destroy") : 0;
    else
        fprintf(stderr, "mcl-xen: bad arguments for %s\n", cmd);

    xc_interface_close(xch);
    return rc;
}
