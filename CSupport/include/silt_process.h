#pragma once
#include <stdint.h>
#include <stddef.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

// Process helpers for the supervisor (`silt server`) and its role processes.
//
// Conventions: every function returns 0 on success or a positive errno value on
// failure (like posix_spawn), never -1 + errno, so Swift gets the error without a
// racy read of the thread-local errno. EINTR is retried inside.

/// Spawns `path` with `argv`/`envp` (both NULL-terminated) via posix_spawn; never fork().
///
/// File descriptors: for each i < fd_count, the parent's `fd_sources[i]` becomes the
/// child's `fd_targets[i]` (dup2 in the child, so FD_CLOEXEC is clear there). Sources
/// are first duplicated (F_DUPFD_CLOEXEC) above every target, so overlapping maps
/// (3→4 and 4→3) and source == target both work. Stdio (0, 1, 2) is inherited unless
/// a target names it. Every other descriptor in 3..max(target) is closed in the child,
/// and with glibc ≥ 2.34 every descriptor above max(target) too
/// (posix_spawn_file_actions_addclosefrom_np); elsewhere the rest relies on O_CLOEXEC.
///
/// Signals: the child starts with an empty signal mask and every signal at its default
/// disposition (POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF), so a parent that blocks
/// SIGCHLD/SIGTERM or ignores SIGPIPE does not pass that on.
///
/// `new_process_group` != 0 puts the child in a new process group whose id is its pid
/// (so a terminal's Ctrl-C reaches only the supervisor, which then stops roles in order).
///
/// On success `*pid_out` is the child's pid. Errors: EINVAL (negative or duplicate
/// target), EBADF (a source is not open), EMFILE, and whatever posix_spawn reports
/// (ENOENT/EACCES for a bad executable: glibc reports exec failures synchronously).
int silt_spawn(pid_t *_Nonnull pid_out,
               const char *_Nonnull path,
               char *_Nullable const *_Nonnull argv,
               char *_Nullable const *_Nonnull envp,
               const int32_t *_Nullable fd_sources,
               const int32_t *_Nullable fd_targets,
               size_t fd_count,
               int new_process_group);

/// A decoded wait status.
typedef struct silt_exit_status {
    int32_t pid;          ///< the reaped child, or 0 when nothing was reaped (nohang)
    int32_t exited;       ///< 1: exited normally with `code`
    int32_t code;         ///< exit code when `exited`
    int32_t signaled;     ///< 1: killed by `signal`
    int32_t signal;       ///< terminating signal when `signaled`
    int32_t core_dumped;  ///< 1 when `signaled` and a core was dumped
} silt_exit_status;

/// waitpid(pid, WNOHANG if nohang) for a terminated child, status decoded into `*out`.
/// `pid` may be -1 (any child) or a specific pid. With `nohang` and nothing to reap,
/// returns 0 with out->pid == 0. ECHILD when there is no such child.
int silt_waitpid(pid_t pid, int nohang, silt_exit_status *_Nonnull out);

/// Blocks until child `pid` has terminated, WITHOUT reaping it (waitid WEXITED|WNOWAIT).
/// The child stays a zombie, so its pid cannot be reused until someone calls
/// silt_waitpid: a supervisor can wait on a helper thread and still kill/reap on its own
/// thread with no pid-reuse race. ECHILD when there is no such child.
int silt_wait_exited_noreap(pid_t pid);

/// kill(pid, sig). ESRCH when the process is gone.
int silt_kill(pid_t pid, int sig);

/// kill(-pgid, sig): signals every process in process group `pgid` (pgid > 1).
int silt_kill_group(pid_t pgid, int sig);

/// prctl(PR_SET_PDEATHSIG, sig): the calling process gets `sig` when the thread that
/// created it exits (for a supervisor's child: when the supervisor's spawning thread or
/// the whole supervisor dies, including by SIGKILL). Call it first thing in a role
/// process, then check getppid() against the expected parent (the parent may already
/// have died before the prctl). Linux only; ENOSYS elsewhere.
int silt_set_parent_death_signal(int sig);

/// Installs an async-signal-safe handler for `sig` that writes one byte (the signal
/// number) to `notify_fd` (which should be a non-blocking pipe write end) and remembers
/// the previous disposition. One notify fd per process: the last call sets it.
/// SA_RESTART is set. EINVAL for a bad signal.
int silt_signal_notify_install(int sig, int notify_fd);

/// Restores the disposition `sig` had before silt_signal_notify_install, and stops
/// writing to the notify fd (call it for every installed signal before closing the fd).
int silt_signal_notify_restore(int sig);

#ifdef __cplusplus
}
#endif
