/*
 * xlcfg-check: parses xl.cfg files with libxlutil, the parser xl itself uses
 * (no hypervisor needed), and checks the keys the Xen backend generates.
 * Used by backends/xen/test/native.test.ts on every generated file.
 *
 *   xlcfg-check FILE...   exit 0 when every file parses and is as the backend
 *                         means it (PVH, kernel and ramdisk, memory, vCPUs,
 *                         every end destroys the domain, no NIC, no disk);
 *                         1 otherwise, with one line per problem on stdout
 *
 * Build: cc xlcfg-check.c -o xlcfg-check -lxlutil -lxentoollog
 */
#include <stdio.h>
#include <string.h>

#include <libxlutil.h>

static int bad;

static void problem(const char *file, const char *what, const char *key)
{
    printf("%s: %s %s\n", file, what, key);
    bad = 1;
}

int main(int argc, char **argv)
{
    static const char *strings[] = { "name", "type", "kernel", "ramdisk", "cmdline", NULL };
    static const char *numbers[] = { "memory", "maxmem", "vcpus", NULL };
    static const char *ends[] = { "on_poweroff", "on_reboot", "on_crash", "on_watchdog", NULL };

    for ( int i = 1; i < argc; i++ )
    {
        XLU_Config *cfg = xlu_cfg_init(stderr, argv[i]);
        if ( !cfg )
            return 2;
        /* 0, or an errno; syntax errors are also printed on stderr. */
        int rc = xlu_cfg_readfile(cfg, argv[i]);
        if ( rc )
        {
            printf("%s: parse error (rc=%d)\n", argv[i], rc);
            bad = 1;
            xlu_cfg_destroy(cfg);
            continue;
        }
        const char *v;
        long n;
        XLU_ConfigList *l;
        int count;
        for ( const char **k = strings; *k; k++ )
            if ( xlu_cfg_get_string(cfg, *k, &v, 0) )
                problem(argv[i], "missing or not a string:", *k);
        for ( const char **k = numbers; *k; k++ )
            if ( xlu_cfg_get_long(cfg, *k, &n, 0) || n <= 0 )
                problem(argv[i], "missing or not a positive number:", *k);
        for ( const char **k = ends; *k; k++ )
            if ( xlu_cfg_get_string(cfg, *k, &v, 0) || strcmp(v, "destroy") )
                problem(argv[i], "does not destroy the domain:", *k);
        if ( !xlu_cfg_get_string(cfg, "type", &v, 0) && strcmp(v, "pvh") )
            problem(argv[i], "not a PVH domain:", v);
        if ( xlu_cfg_get_list(cfg, "vif", &l, &count, 0) || count )
            problem(argv[i], "must have an empty list:", "vif");
        if ( xlu_cfg_get_list(cfg, "disk", &l, &count, 0) || count )
            problem(argv[i], "must have an empty list:", "disk");
        if ( !bad )
            printf("%s: ok\n", argv[i]);
        xlu_cfg_destroy(cfg);
    }
    return bad;
}
