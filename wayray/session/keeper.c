/* wrsrvd-session-keeper: the keeper of a standalone session, as a small compiled program.
 *
 *     wrsrvd-session-keeper CHILD OUTPUT_FD|- LOG|-
 *
 * Run only by wayray/session/keeper.py's split(), which forks, makes the session compositor (CHILD)
 * in the child and execs this in the parent: what the Python keeper (_Keeper there) does, without a
 * Python process's copy-on-write pages (issue 15: memory per session). Same pid, so the compositor's
 * PR_SET_PDEATHSIG and wrsrvd's pidfd still name this process; the subreaper flag set before the
 * fork is kept across execve (Linux). The caller blocks SIGCHLD, SIGTERM, SIGINT and SIGHUP before
 * the exec: a signal that comes before the handlers below are in place waits, it is not lost.
 *
 * - Waits for CHILD and exits with its status (128 + the signal that killed it).
 * - Copies OUTPUT_FD (the read end of the pipe that is the session's stdout and stderr) to LOG with
 *   a size cap: a full log becomes LOG.old and a new one starts; a line is not split across the two;
 *   output that cannot be written is counted and said once writing works again.
 * - Forwards SIGTERM, SIGINT and SIGHUP to CHILD while it runs.
 * - Once CHILD has exited, ends what the session left: SIGTERM and SIGCONT, SIGKILL after
 *   SWEEP_GRACE seconds, again until none is left; then reads the pipe for at most a second.
 * - Its own lines go to LOG (or stderr when there is none) in the Python keeper's format.
 *
 * Plain POSIX; the subreaper, the process name and the walk of /proc are Linux's. Elsewhere (illumos)
 * there is no subreaper, and the keeper does what the Python one does without one: nothing that left
 * the tree can be found, so only the compositor is waited for. */

#define _GNU_SOURCE    /* glibc: everything below */
#define __EXTENSIONS__ /* illumos: the same */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/select.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#define LOG_MAX_BYTES (4L * 1024 * 1024) /* keeper.py LOG_MAX_BYTES */
#define SWEEP_GRACE 3.0                  /* keeper.py SWEEP_GRACE */
#define LOGGER "wayray.session.keeper"
#define PROGRAM "wrsrvd-session-keeper"
#define LEVEL_INFO 20
#define LEVEL_WARNING 30

/* --- the capped log (keeper.py CappedLog) -------------------------------------------------------- */

static struct {
    const char *path;
    int fd;
    long size;
    int at_line_start;
    long long lost;
    char why[160];
} out = {NULL, -1, 0, 1, 0, ""};

static void log_open(void) {
    int fd = open(out.path, O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0600);
    struct stat st;
    if (fd < 0) {
        snprintf(out.why, sizeof out.why, "%s", strerror(errno));
        return;
    }
    out.fd = fd;
    out.size = fstat(fd, &st) == 0 ? (long)st.st_size : 0;
}

static void log_put(const char *data, size_t len) {
    while (len > 0) {
        ssize_t n;
        if (out.fd < 0) {
            out.lost += (long long)len;
            return;
        }
        n = write(out.fd, data, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) { /* ENOSPC, EIO: drop it, say so later */
            out.lost += (long long)len;
            snprintf(out.why, sizeof out.why, "%s", strerror(n < 0 ? errno : EIO));
            return;
        }
        out.size += n;
        out.at_line_start = data[n - 1] == '\n';
        data += n;
        len -= (size_t)n;
    }
}

static void log_rotate(void) {
    char old[4096];
    if (out.fd >= 0) {
        close(out.fd);
        out.fd = -1;
    }
    if (snprintf(old, sizeof old, "%s.old", out.path) < (int)sizeof old)
        rename(out.path, old);
    log_open();
}

static void log_write(const char *data, size_t len) {
    if (len == 0)
        return;
    if (out.fd < 0) {
        log_open(); /* it could not be opened before (a full disk, say): try again */
    } else if (out.size + (long)len >= LOG_MAX_BYTES) {
        /* The lines that still fit end this file; a line is not split across the two (unless no
         * line of this piece ends in the room left: the file is cut where it is then). */
        long room = LOG_MAX_BYTES - out.size;
        size_t cut = 0;
        if (room > 0) {
            cut = (size_t)room < len ? (size_t)room : len;
            while (cut > 0 && data[cut - 1] != '\n')
                cut--;
        }
        log_put(data, cut);
        data += cut;
        len -= cut;
        log_rotate();
    }
    if (out.lost && out.fd >= 0) {
        char note[256];
        long long lost = out.lost;
        int n;
        out.lost = 0;
        n = snprintf(note, sizeof note, "[wayray: %lld bytes of this session's output were lost: %s]\n",
                     lost, out.why);
        log_put(note, n < (int)sizeof note ? (size_t)n : sizeof note - 1);
    }
    if (len > (size_t)LOG_MAX_BYTES) {
        data += len - (size_t)LOG_MAX_BYTES;
        len = (size_t)LOG_MAX_BYTES;
    }
    log_put(data, len);
}

/* --- the keeper's own lines (keeper.py's logging: its format, its level) ------------------------- */

static int log_level = LEVEL_INFO;
static int journal; /* stderr is the journal's stream: "<N>name: message" */

static void setup_logging(void) {
    const char *level = getenv("WAYRAY_LOG_LEVEL");
    const char *stream = getenv("JOURNAL_STREAM");
    if (out.path != NULL)
        return; /* the capped log: INFO, the timestamped format */
    if (level != NULL && *level) {
        static const struct {
            const char *name;
            int value;
        } names[] = {{"CRITICAL", 50}, {"FATAL", 50}, {"ERROR", 40}, {"WARN", 30},
                     {"WARNING", 30},  {"INFO", 20},  {"DEBUG", 10}, {"NOTSET", 0}};
        const char *p = level;
        while (*p && isdigit((unsigned char)*p))
            p++;
        if (*p == '\0') {
            log_level = atoi(level);
        } else {
            size_t i;
            for (i = 0; i < sizeof names / sizeof names[0]; i++)
                if (strcasecmp(level, names[i].name) == 0)
                    log_level = names[i].value;
        }
    }
    if (stream != NULL && *stream) {
        unsigned long long dev, ino;
        struct stat st;
        char end;
        if (sscanf(stream, "%llu:%llu%c", &dev, &ino, &end) == 2 && fstat(2, &st) == 0 &&
            (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino)
            journal = 1;
    }
}

static void say(int level, const char *fmt, ...) {
    char message[4096], line[4400];
    const char *name = level >= LEVEL_WARNING ? "WARNING" : "INFO";
    va_list ap;
    int n;
    if (level < log_level)
        return;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    if (journal && out.path == NULL) {
        n = snprintf(line, sizeof line, "<%d>%s: %s\n", level >= LEVEL_WARNING ? 4 : 6, LOGGER, message);
    } else {
        struct timeval tv;
        struct tm tm;
        char stamp[32];
        gettimeofday(&tv, NULL);
        localtime_r(&tv.tv_sec, &tm);
        strftime(stamp, sizeof stamp, "%Y-%m-%d %H:%M:%S", &tm);
        n = snprintf(line, sizeof line, "%s%s,%03d %s[%d] %s %s: %s\n",
                     out.path != NULL && !out.at_line_start ? "\n" : "", stamp, (int)(tv.tv_usec / 1000),
                     PROGRAM, (int)getpid(), name, LOGGER, message);
    }
    if (n < 0)
        return;
    if ((size_t)n >= sizeof line)
        n = sizeof line - 1;
    if (out.path != NULL) {
        log_write(line, (size_t)n);
    } else {
        ssize_t done = 0;
        while (done < n) {
            ssize_t w = write(2, line + done, (size_t)(n - done));
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0)
                break;
            done += w;
        }
    }
}

/* --- the session's processes --------------------------------------------------------------------- */

static pid_t child;
static volatile sig_atomic_t child_gone; /* reaped: signals are no longer forwarded */
static int status = -1;
static int output = -1;
#ifdef __linux__
static int subreaper; /* set: what left the tree is still below this process */
#endif
static sigset_t wait_mask; /* the signals below are delivered only while waiting (pselect) */

static void forward(int sig) {
    /* A signal to the keeper is for the session: the compositor acts on it (and exits). */
    if (!child_gone)
        kill(child, sig);
}

static void on_child(int sig) { (void)sig; }

static void reap_all(void) {
    for (;;) {
        int st;
        pid_t pid = waitpid(-1, &st, WNOHANG);
        if (pid < 0 && errno == EINTR)
            continue;
        if (pid <= 0)
            return;
        if (pid == child) {
            status = WIFEXITED(st) ? WEXITSTATUS(st) : WIFSIGNALED(st) ? 128 + WTERMSIG(st) : 1;
            child_gone = 1;
        }
    }
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Move what waits in the output pipe to the log; 0 at its end (nobody writes any more). */
static int copy(void) {
    static char buf[65536];
    ssize_t n = read(output, buf, sizeof buf);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return 1;
    if (n <= 0) {
        close(output);
        output = -1;
        return 0;
    }
    log_write(buf, (size_t)n);
    return 1;
}

/* Wait for a signal or output (at most `timeout` seconds), copying the output to the log meanwhile. */
static void wait_io(double timeout) {
    fd_set ready;
    struct timespec ts;
    if (timeout < 0)
        timeout = 0;
    ts.tv_sec = (time_t)timeout;
    ts.tv_nsec = (long)((timeout - (double)ts.tv_sec) * 1e9);
    FD_ZERO(&ready);
    if (output >= 0)
        FD_SET(output, &ready);
    if (pselect(output + 1, &ready, NULL, NULL, &ts, &wait_mask) > 0 && output >= 0 &&
        FD_ISSET(output, &ready))
        copy();
}

#ifdef __linux__
/* /proc/PID/WHAT's first size - 1 bytes into buf, NUL-terminated: their count, or -1 (it is gone). */
static ssize_t read_proc(pid_t pid, const char *what, char *buf, size_t size) {
    char path[64];
    ssize_t len;
    int fd;
    snprintf(path, sizeof path, "/proc/%d/%s", (int)pid, what);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    len = read(fd, buf, size - 1);
    close(fd);
    if (len <= 0)
        return -1;
    buf[len] = '\0';
    return len;
}

struct proc {
    pid_t pid, ppid;
    char state;
};

/* Every process now, with its parent and state (from /proc/PID/stat); the caller frees it. */
static struct proc *processes(size_t *count) {
    DIR *dir = opendir("/proc");
    struct dirent *e;
    struct proc *all = NULL;
    size_t n = 0, cap = 0;
    *count = 0;
    if (dir == NULL)
        return NULL;
    while ((e = readdir(dir)) != NULL) {
        char text[1024], *close_paren;
        int ppid;
        if (!isdigit((unsigned char)e->d_name[0]))
            continue;
        if (read_proc((pid_t)atoi(e->d_name), "stat", text, sizeof text) < 0)
            continue;
        close_paren = strrchr(text, ')'); /* the name in parentheses may hold anything */
        if (close_paren == NULL || close_paren[1] != ' ' || close_paren[2] == '\0')
            continue;
        if (sscanf(close_paren + 4, "%d", &ppid) != 1)
            continue;
        if (n == cap) {
            struct proc *more = realloc(all, (cap = cap ? cap * 2 : 256) * sizeof *all);
            if (more == NULL)
                break;
            all = more;
        }
        all[n].pid = (pid_t)atoi(e->d_name);
        all[n].ppid = (pid_t)ppid;
        all[n].state = close_paren[2];
        n++;
    }
    closedir(dir);
    *count = n;
    return all;
}

/* The name ps shows for pid, as psutil tells it to the Python keeper ("?" when it is gone). */
static void process_name(pid_t pid, char *name, size_t size) {
    if (read_proc(pid, "comm", name, size) < 0) {
        snprintf(name, size, "?");
        return;
    }
    name[strcspn(name, "\n")] = '\0';
    if (strlen(name) >= 15) { /* the kernel cut it: the program's own name, when it begins so */
        char argv0[256], *base;
        if (read_proc(pid, "cmdline", argv0, sizeof argv0) < 0)
            return;
        /* argv0: the first argument, which ends at its NUL */
        base = strrchr(argv0, '/') ? strrchr(argv0, '/') + 1 : argv0;
        if (strncmp(base, name, strlen(name)) == 0)
            snprintf(name, size, "%s", base);
    }
}
#endif

/* What is left of the session below this process (not zombies), sorted by pid; the caller frees it.
 * Without a subreaper (not Linux) what left the tree is out of reach: nothing. */
static pid_t *left(size_t *count) {
    pid_t *found = NULL;
    *count = 0;
    reap_all();
#ifdef __linux__
    if (subreaper) {
        size_t n, i, k = 0, done = 0;
        struct proc *all = processes(&n);
        pid_t *tree = all ? malloc((n + 1) * sizeof *tree) : NULL;
        if (tree == NULL) {
            free(all);
            return NULL;
        }
        tree[k++] = getpid();
        while (done < k) { /* breadth first from this process: every descendant once */
            pid_t parent = tree[done++];
            for (i = 0; i < n; i++)
                if (all[i].ppid == parent && all[i].pid != parent)
                    tree[k++] = all[i].pid, all[i].ppid = -1;
        }
        found = malloc(k * sizeof *found);
        if (found != NULL) {
            for (i = 1; i < k; i++) {
                size_t j;
                for (j = 0; j < n && all[j].pid != tree[i]; j++)
                    ;
                if (j < n && all[j].state != 'Z')
                    found[(*count)++] = tree[i];
            }
            for (i = 1; i < *count; i++) { /* sorted: the log names the first ten */
                pid_t p = found[i];
                size_t j = i;
                for (; j > 0 && found[j - 1] > p; j--)
                    found[j] = found[j - 1];
                found[j] = p;
            }
        }
        free(tree);
        free(all);
    }
#endif
    return found;
}

static void signal_all(const pid_t *pids, size_t count, int sig) {
    size_t i;
    for (i = 0; i < count; i++)
        kill(pids[i], sig);
}

/* The compositor is gone: end every program of the session that is left. */
static void sweep(void) {
    size_t count, i;
    pid_t *pids = left(&count);
    char names[3000] = "";
    double deadline;
    int round;
    if (count == 0) {
        free(pids);
        return;
    }
    for (i = 0; i < count && i < 10; i++) {
        char name[256] = "?";
        size_t used = strlen(names);
#ifdef __linux__
        process_name(pids[i], name, sizeof name);
#endif
        snprintf(names + used, sizeof names - used, "%s%d (%s)", i ? ", " : "", (int)pids[i], name);
    }
    say(LEVEL_INFO,
        "the session compositor (pid %d) exited with status %d; stopping %zu program(s) the session left "
        "behind: %s",
        (int)child, status, count, names);
    signal_all(pids, count, SIGTERM);
    signal_all(pids, count, SIGCONT); /* a stopped program cannot act on SIGTERM */
    free(pids);
    deadline = now() + SWEEP_GRACE;
    for (;;) {
        double rest;
        pids = left(&count);
        free(pids);
        if (count == 0 || (rest = deadline - now()) <= 0)
            break;
        wait_io(rest < 0.1 ? rest : 0.1);
    }
    for (round = 0; round < 50; round++) { /* programs that fork while being killed: until none is left */
        pids = left(&count);
        if (count == 0) {
            free(pids);
            break;
        }
        say(LEVEL_WARNING, "%zu program(s) ignored SIGTERM for %g s; killing them", count, SWEEP_GRACE);
        signal_all(pids, count, SIGKILL);
        free(pids);
        wait_io(0.1);
    }
    reap_all();
}

/* The last output: everything written before the programs ended (their write ends are closed now;
 * one that escaped even the subreaper may hold one, so this does not wait for ever). */
static void drain(void) {
    double deadline = now() + 1.0;
    if (output < 0)
        return;
    fcntl(output, F_SETFL, fcntl(output, F_GETFL) | O_NONBLOCK);
    while (output >= 0 && now() < deadline) {
        fd_set ready;
        struct timeval tv = {0, 100000};
        int n;
        FD_ZERO(&ready);
        FD_SET(output, &ready);
        n = select(output + 1, &ready, NULL, NULL, &tv);
        if (n < 0 && errno == EINTR)
            continue;
        if (n > 0 && !copy())
            break;
    }
}

static int usage(const char *why) {
    fprintf(stderr, PROGRAM ": %s\nusage: " PROGRAM " CHILD OUTPUT_FD|- LOG|-  (run by wrsrvd only)\n", why);
    return 2;
}

int main(int argc, char **argv) {
    static const int forwarded[] = {SIGTERM, SIGINT, SIGHUP};
    struct sigaction sa;
    sigset_t mine;
    char *end;
    long value;
    size_t i;

    if (argc != 4)
        return usage("three arguments");
    value = strtol(argv[1], &end, 10);
    if (*argv[1] == '\0' || *end != '\0' || value <= 0)
        return usage("CHILD: a process id");
    child = (pid_t)value;
    if (strcmp(argv[2], "-") != 0) {
        value = strtol(argv[2], &end, 10);
        if (*argv[2] == '\0' || *end != '\0' || value < 0 || value >= FD_SETSIZE ||
            fcntl((int)value, F_GETFD) < 0)
            return usage("OUTPUT_FD: an open descriptor");
        output = (int)value;
        fcntl(output, F_SETFD, FD_CLOEXEC);
    }
    if (strcmp(argv[3], "-") != 0) {
        if (argv[3][0] != '/')
            return usage("LOG: an absolute path");
        out.path = argv[3];
        log_open();
    }
    if (output >= 0 && out.path == NULL)
        return usage("OUTPUT_FD without a LOG");
#ifdef __linux__
    {
        int flag = 0;
        /* Set before the fork, kept across execve: every program the session starts stays below. */
        subreaper = prctl(PR_GET_CHILD_SUBREAPER, &flag, 0, 0, 0) == 0 && flag;
        prctl(PR_SET_NAME, "wrsrvd-keeper", 0, 0, 0);
    }
#endif
    setup_logging();

    /* The signals stay blocked (the caller blocked them before the exec: one that came meanwhile is
     * pending) except while waiting, so a handler never runs between a reap and the next wait. */
    sigemptyset(&mine);
    sigaddset(&mine, SIGCHLD);
    for (i = 0; i < sizeof forwarded / sizeof forwarded[0]; i++)
        sigaddset(&mine, forwarded[i]);
    sigprocmask(SIG_BLOCK, &mine, &wait_mask);
    for (i = 0; i < sizeof forwarded / sizeof forwarded[0]; i++)
        sigdelset(&wait_mask, forwarded[i]);
    sigdelset(&wait_mask, SIGCHLD);
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = on_child;
    sigaction(SIGCHLD, &sa, NULL);
    sa.sa_handler = forward;
    for (i = 0; i < sizeof forwarded / sizeof forwarded[0]; i++)
        sigaction(forwarded[i], &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    while (status < 0) {
        reap_all();
        if (status >= 0)
            break;
        wait_io(5.0);
    }
    sweep();
    drain();
    if (out.fd >= 0)
        close(out.fd);
    return status;
}
