// posix_spawn, wait and signal helpers for the supervisor. See silt_process.h.
#define _GNU_SOURCE
#include "silt_process.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
#define SILT_HAVE_ADDCLOSEFROM 1
#endif

int silt_spawn(pid_t *_Nonnull pid_out,
               const char *_Nonnull path,
               char *_Nullable const *_Nonnull argv,
               char *_Nullable const *_Nonnull envp,
               const int32_t *_Nullable fd_sources,
               const int32_t *_Nullable fd_targets,
               size_t fd_count,
               int new_process_group) {
    if (fd_count > 0 && (fd_sources == NULL || fd_targets == NULL)) return EINVAL;
    if (fd_count > 1024) return EINVAL;  // bound: a role gets a handful of fds

    int max_target = 2;
    for (size_t i = 0; i < fd_count; i++) {
        if (fd_targets[i] < 0 || fd_sources[i] < 0) return EINVAL;
        for (size_t j = 0; j < i; j++) {
            if (fd_targets[j] == fd_targets[i]) return EINVAL;
        }
        if (fcntl(fd_sources[i], F_GETFD) < 0) return EBADF;
        if (fd_targets[i] > max_target) max_target = fd_targets[i];
    }

    // Duplicates above every target: the dup2 actions then never read a descriptor an
    // earlier action overwrote, and source == target still clears FD_CLOEXEC (dup2 of
    // a different fd). CLOEXEC, so the temporaries die at exec (and are closed below).
    int temps[1024];
    size_t made = 0;
    int rc = 0;
    for (; made < fd_count; made++) {
        int t = fcntl(fd_sources[made], F_DUPFD_CLOEXEC, max_target + 1);
        if (t < 0) { rc = errno; goto out_temps; }
        temps[made] = t;
    }

    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attr;
    if ((rc = posix_spawn_file_actions_init(&actions)) != 0) goto out_temps;
    if ((rc = posix_spawnattr_init(&attr)) != 0) goto out_actions;

    for (size_t i = 0; i < fd_count; i++) {
        if ((rc = posix_spawn_file_actions_adddup2(&actions, temps[i], fd_targets[i])) != 0) goto out_attr;
    }
    // Close non-target descriptors in 3..max_target (glibc ignores EBADF for a close
    // action on an in-range fd, so descriptors that are not open are fine).
    for (int fd = 3; fd <= max_target; fd++) {
        int is_target = 0;
        for (size_t i = 0; i < fd_count; i++) {
            if (fd_targets[i] == fd) { is_target = 1; break; }
        }
        if (!is_target) {
            if ((rc = posix_spawn_file_actions_addclose(&actions, fd)) != 0) goto out_attr;
        }
    }
#ifdef SILT_HAVE_ADDCLOSEFROM
    if ((rc = posix_spawn_file_actions_addclosefrom_np(&actions, max_target + 1)) != 0) goto out_attr;
#endif

    sigset_t empty, all;
    sigemptyset(&empty);
    // Every signal, glibc's internal ones (32, 33: SIGCANCEL, SIGSETXID) included:
    // sigfillset leaves those out, and glibc's spawn helper sets them to SIG_IGN in the
    // child before exec, so they would stay ignored in the new program.
    memset(&all, 0xff, sizeof(all));
    short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
    if ((rc = posix_spawnattr_setsigmask(&attr, &empty)) != 0) goto out_attr;
    if ((rc = posix_spawnattr_setsigdefault(&attr, &all)) != 0) goto out_attr;
    if (new_process_group) {
        flags |= POSIX_SPAWN_SETPGROUP;
        if ((rc = posix_spawnattr_setpgroup(&attr, 0)) != 0) goto out_attr;
    }
    if ((rc = posix_spawnattr_setflags(&attr, flags)) != 0) goto out_attr;

    pid_t pid = 0;
    rc = posix_spawn(&pid, path, &actions, &attr, (char *const *)argv, (char *const *)envp);
    if (rc == 0) *pid_out = pid;

out_attr:
    posix_spawnattr_destroy(&attr);
out_actions:
    posix_spawn_file_actions_destroy(&actions);
out_temps:
    for (size_t i = 0; i < made; i++) close(temps[i]);
    return rc;
}

static void silt_decode_status(pid_t pid, int status, silt_exit_status *_Nonnull out) {
    memset(out, 0, sizeof(*out));
    out->pid = pid;
    if (WIFEXITED(status)) {
        out->exited = 1;
        out->code = WEXITSTATUS(status);
    } else if (WIFSIGNALED(status)) {
        out->signaled = 1;
        out->signal = WTERMSIG(status);
#ifdef WCOREDUMP
        out->core_dumped = WCOREDUMP(status) ? 1 : 0;
#endif
    }
}

int silt_waitpid(pid_t pid, int nohang, silt_exit_status *_Nonnull out) {
    memset(out, 0, sizeof(*out));
    for (;;) {
        int status = 0;
        pid_t r = waitpid(pid, &status, nohang ? WNOHANG : 0);
        if (r > 0) { silt_decode_status(r, status, out); return 0; }
        if (r == 0) return 0;  // WNOHANG: nothing has terminated
        if (errno == EINTR) continue;
        return errno;
    }
}

int silt_wait_exited_noreap(pid_t pid) {
    for (;;) {
        siginfo_t info;
        memset(&info, 0, sizeof(info));
        if (waitid(P_PID, (id_t)pid, &info, WEXITED | WNOWAIT) == 0) return 0;
        if (errno == EINTR) continue;
        return errno;
    }
}

int silt_kill(pid_t pid, int sig) {
    if (pid <= 0) return EINVAL;  // never signal a group or every process by accident
    return kill(pid, sig) == 0 ? 0 : errno;
}

int silt_kill_group(pid_t pgid, int sig) {
    if (pgid <= 1) return EINVAL;
    return kill(-pgid, sig) == 0 ? 0 : errno;
}

int silt_set_parent_death_signal(int sig) {
#ifdef __linux__
    return prctl(PR_SET_PDEATHSIG, (unsigned long)sig, 0, 0, 0) == 0 ? 0 : errno;
#else
    (void)sig;
    return ENOSYS;
#endif
}

// --- stop-signal notification (self-pipe) ---

static volatile sig_atomic_t silt_notify_fd = -1;
static struct sigaction silt_saved_actions[NSIG];
static unsigned char silt_saved_valid[NSIG];

static void silt_notify_handler(int sig) {
    int saved_errno = errno;
    int fd = silt_notify_fd;
    if (fd >= 0) {
        unsigned char byte = (unsigned char)sig;
        ssize_t ignored = write(fd, &byte, 1);  // non-blocking pipe: a full pipe loses nothing that matters
        (void)ignored;
    }
    errno = saved_errno;
}

int silt_signal_notify_install(int sig, int notify_fd) {
    if (sig <= 0 || sig >= NSIG || sig == SIGKILL || sig == SIGSTOP) return EINVAL;
    if (notify_fd < 0) return EBADF;
    silt_notify_fd = notify_fd;
    struct sigaction action;
    memset(&action, 0, sizeof(action));
    action.sa_handler = silt_notify_handler;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_RESTART;
    struct sigaction old;
    if (sigaction(sig, &action, &old) != 0) return errno;
    if (!silt_saved_valid[sig]) {  // keep the original across repeated installs
        silt_saved_actions[sig] = old;
        silt_saved_valid[sig] = 1;
    }
    return 0;
}

int silt_signal_notify_restore(int sig) {
    if (sig <= 0 || sig >= NSIG) return EINVAL;
    if (!silt_saved_valid[sig]) return 0;
    int rc = sigaction(sig, &silt_saved_actions[sig], NULL) == 0 ? 0 : errno;
    silt_saved_valid[sig] = 0;
    int any = 0;
    for (int s = 1; s < NSIG; s++) any |= silt_saved_valid[s];
    if (!any) silt_notify_fd = -1;  // nothing installed any more: never write to the fd again
    return rc;
}
