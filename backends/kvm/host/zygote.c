// The QEMU zygote: preloaded into one QEMU process per template (LD_PRELOAD),
// it stops that process before QEMU's own code runs and forks a child for
// each request, which then runs QEMU as if it had been started directly.
//
// Why: every QEMU process relocates QEMU and its ~50 libraries when it is
// loaded, which writes about 3 MiB of pointers (RELRO data: libcapstone's
// tables, QEMU's type and device tables) into private copies of their pages.
// That is a fifth of an idle clone's private memory, and it is the same in
// every clone. A child forked after relocation shares those pages with its
// siblings for good: they are read-only from then on.
//
// The constructor runs after the dynamic linker has loaded and relocated every
// library (QEMU is linked with BIND_NOW, so no lazy binding writes later) and
// before the executable's own constructors, which start QEMU's RCU thread:
// the process is still single-threaded, so fork() is safe. The constructor
// checks that and refuses to serve otherwise.
//
// The library is built by mcl with the host's C compiler (src/vm/zygote.ts)
// and acts only where MCL_ZYGOTE names the running executable.
//
// Protocol, one line each, on the zygote's stdin (requests) and stdout
// (replies and events):
//   -> fork <dir>            fork a child; it runs QEMU with <dir> as its
//                            working directory (the command line names its
//                            sockets, log and pid file relatively)
//   <- ready <pid>           once, when the zygote serves
//   <- forked <pid>          per fork request, in order
//   <- error <message>       a request that failed, in order
//   <- exit <pid> <code> <signal>   a child ended (code -1 when signalled)
// End of file on stdin: the zygote forks no more, waits until every child it
// forked has ended and exits. Each child gets a parent-death signal (SIGKILL),
// so no child outlives the zygote, and the zygote itself is started with one
// by its owner.
//
// A child starts with: the working directory <dir>; stdin /dev/null; stdout
// and stderr appended to <dir>/console.log (QEMU's messages land beside the
// guest console); the template's device state file (MCL_ZYGOTE_STATE) open as
// fd 3 at offset 0, for `migrate-incoming fd:3`; no other descriptor of the
// zygote's; signals as at exec; a stack-protector canary of its own (x86-64).
// A child that cannot be set up exits before QEMU runs: 124 no randomness for
// the canary, 125 the zygote is gone, 126 <dir> cannot be entered, 127 its
// files cannot be opened.

#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static char state_path[PATH_MAX];

/* Writes all of a reply line to stdout; a closed stdout (the owner is gone) is ignored. */
static void reply(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void reply(const char *fmt, ...) {
  char line[PATH_MAX + 128];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if ((size_t)n >= sizeof line) n = sizeof line - 1;
  for (int off = 0; off < n;) {
    ssize_t w = write(1, line + off, (size_t)(n - off));
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return;
    off += (int)w;
  }
}

static int threads(void) {
  DIR *d = opendir("/proc/self/task");
  if (!d) return -1;
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d))) if (e->d_name[0] != '.') n++;
  closedir(d);
  return n;
}

/* Closes every descriptor from `from` up. */
static void close_from(int from) {
#ifdef SYS_close_range
  if (syscall(SYS_close_range, from, ~0U, 0) == 0) return;
#endif
  long max = sysconf(_SC_OPEN_MAX);
  for (int fd = from; fd < (max > 0 ? max : 1024); fd++) close(fd);
}

/*
 * Gives the calling process a stack-protector canary of its own. A forked
 * child inherits its parent's, which exec would have replaced; without this,
 * every clone of a template would share the zygote's, and a canary leaked by
 * one clone's QEMU would hold for all of them. On x86-64 glibc keeps it in the
 * thread control block at %fs:0x28, with the lowest byte zero (so a string
 * copy cannot reproduce it). Frames already on the stack that will check the
 * old value on return would abort, so this runs in a function without a
 * canary check of its own (the library is built with -fno-stack-protector),
 * and the frames below it (the dynamic linker's _dl_init and call_init, and
 * _dl_start_user) have no canary. Elsewhere the child keeps the zygote's.
 */
static void fresh_canary(void) {
#if defined(__x86_64__)
  unsigned long canary = 0;
  if (syscall(SYS_getrandom, &canary, sizeof canary, 0) != (long)sizeof canary) _exit(124);
  canary &= ~0xffUL;
  __asm__ volatile("movq %0, %%fs:0x28" : : "r"(canary) : "memory");
#endif
}

/* In the child: becomes a QEMU process in `dir`. Returns only on success. */
static void become_qemu(const char *dir, pid_t zygote, const sigset_t *mask) {
  if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0 || getppid() != zygote) _exit(125);
  fresh_canary();
  if (chdir(dir) != 0) _exit(126);
  int null = open("/dev/null", O_RDONLY);
  int log = open("console.log", O_WRONLY | O_CREAT | O_APPEND, 0600);
  int state = open(state_path, O_RDONLY);
  if (null < 0 || log < 0 || state < 0) _exit(127);
  // Descriptors above 3 first, so that dup2 onto 0..3 never closes one still needed.
  int fds[3] = {null, log, state};
  for (int i = 0; i < 3; i++) {
    if (fds[i] <= 3) {
      int moved = fcntl(fds[i], F_DUPFD, 4);
      if (moved < 0) _exit(127);
      fds[i] = moved;
    }
  }
  if (dup2(fds[0], 0) < 0 || dup2(fds[1], 1) < 0 || dup2(fds[1], 2) < 0 || dup2(fds[2], 3) < 0) _exit(127);
  close_from(4);
  signal(SIGPIPE, SIG_DFL);
  sigprocmask(SIG_SETMASK, mask, NULL);
}

__attribute__((constructor)) static void zygote(void) {
  // MCL_ZYGOTE names the QEMU executable. The library is preloaded into every
  // program started with this environment, the launcher that execs QEMU
  // included, and acts only in QEMU: the executable named, or any
  // qemu-system-* binary (MCL_QEMU may name a wrapper script that execs one).
  const char *mode = getenv("MCL_ZYGOTE");
  if (!mode) return;
  char exe[PATH_MAX];
  ssize_t n_exe = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n_exe <= 0) return;
  exe[n_exe] = 0;
  const char *base = strrchr(exe, '/');
  base = base ? base + 1 : exe;
  if (strcmp(exe, mode) != 0 && strncmp(base, "qemu-system-", 12) != 0) return;
  const char *state = getenv("MCL_ZYGOTE_STATE");
  if (!state || strlen(state) >= sizeof state_path) {
    reply("error MCL_ZYGOTE_STATE is not set\n");
    _exit(2);
  }
  strcpy(state_path, state);
  // Neither QEMU nor anything it starts should see these.
  unsetenv("MCL_ZYGOTE");
  unsetenv("MCL_ZYGOTE_STATE");
  unsetenv("LD_PRELOAD");
  int n = threads();
  if (n != 1) {
    reply("error the process has %d threads before QEMU started; forking it is not safe\n", n);
    _exit(2);
  }
  sigset_t old, chld;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  sigprocmask(SIG_BLOCK, &chld, &old);
  int sfd = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
  if (sfd < 0) {
    reply("error signalfd: %s\n", strerror(errno));
    _exit(2);
  }
  signal(SIGPIPE, SIG_IGN);
  pid_t self = getpid();
  reply("ready %d\n", (int)self);

  char buf[PATH_MAX + 16];
  size_t len = 0;
  int live = 0;
  int open_in = 1;
  while (open_in || live > 0) {
    struct pollfd p[2] = {{sfd, POLLIN, 0}, {0, POLLIN, 0}};
    if (poll(p, open_in ? 2 : 1, -1) < 0) {
      if (errno == EINTR) continue;
      _exit(3);
    }
    if (p[0].revents) {
      struct signalfd_siginfo si;
      while (read(sfd, &si, sizeof si) == sizeof si) {
      }
      int status;
      pid_t c;
      while ((c = waitpid(-1, &status, WNOHANG)) > 0) {
        live--;
        if (WIFSIGNALED(status)) reply("exit %d -1 %d\n", (int)c, WTERMSIG(status));
        else reply("exit %d %d 0\n", (int)c, WEXITSTATUS(status));
      }
    }
    if (!open_in || !p[1].revents) continue;
    ssize_t r = read(0, buf + len, sizeof buf - 1 - len);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      open_in = 0;
      continue;
    }
    len += (size_t)r;
    char *nl;
    while ((nl = memchr(buf, '\n', len))) {
      *nl = 0;
      if (strncmp(buf, "fork ", 5) == 0) {
        pid_t c = fork();
        if (c == 0) {
          close(sfd);
          become_qemu(buf + 5, self, &old);
          return;
        }
        if (c < 0) reply("error fork: %s\n", strerror(errno));
        else {
          live++;
          reply("forked %d\n", (int)c);
        }
      } else {
        reply("error unknown request\n");
      }
      size_t used = (size_t)(nl - buf) + 1;
      memmove(buf, nl + 1, len - used);
      len -= used;
    }
    if (len == sizeof buf - 1) {
      reply("error request too long\n");
      len = 0;
    }
  }
  _exit(0);
}
