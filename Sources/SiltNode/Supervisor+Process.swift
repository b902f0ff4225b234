import Foundation
import Logging
import CSupport

// Spawning, signalling and reaping children (run() thread only), and the helpers a role
// process and `silt server` use around the supervisor.
extension Supervisor {
    /// posix_spawn of role `i`; starts its waiter thread. Returns nil or the errno.
    func spawn(_ i: Int) -> Int32? {
        let spec = runtimes[i].spec
        var env = spec.environment
        env[Self.supervisorPidEnvironmentKey] = String(getpid())
        let argv = [spec.executable] + spec.arguments
        let envp = env.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
        let sources = spec.inheritedFds.map(\.source)
        let targets = spec.inheritedFds.map(\.target)

        var pid: pid_t = 0
        let rc: Int32 = Self.withCStringArray(argv) { cArgv in
            Self.withCStringArray(envp) { cEnvp in
                sources.withUnsafeBufferPointer { src in
                    targets.withUnsafeBufferPointer { dst in
                        silt_spawn(&pid, spec.executable, cArgv, cEnvp, src.baseAddress, dst.baseAddress,
                                   sources.count, spec.newProcessGroup ? 1 : 0)
                    }
                }
            }
        }
        if rc != 0 {
            logger.error("spawn failed", metadata: [
                "role": "\(spec.name)", "executable": "\(spec.executable)",
                "error": "\(String(cString: strerror(rc)))"])
            return rc
        }
        precondition(pid > 0, "posix_spawn succeeded without a pid")
        runtimes[i].pid = pid
        runtimes[i].startedAt = clock.now
        runtimes[i].spawnCount += 1
        logger.info("role spawned", metadata: [
            "role": "\(spec.name)", "pid": "\(pid)", "spawn": "\(runtimes[i].spawnCount)"])
        startWaiter(pid: pid, role: spec.name)
        return nil
    }

    /// One thread per child, blocked in waitid(WNOWAIT): no polling, no SIGCHLD handler
    /// (which would be process-global), no waitpid(-1) that could steal other code's
    /// children. The zombie stays until run() reaps it, so kill() never hits a reused pid.
    func startWaiter(pid: pid_t, role: String) {
        let thread = Thread { [weak self] in
            let rc = silt_wait_exited_noreap(pid)
            // ECHILD: someone else reaped it; still report it so run() stops tracking it.
            _ = rc
            self?.post(.childTerminated(pid))
        }
        thread.name = "silt-wait-\(role)"
        thread.stackSize = 256 * 1024
        thread.start()
    }

    /// Reaps a child the waiter saw terminate.
    func reap(_ pid: pid_t) -> RoleExit {
        var status = silt_exit_status()
        let rc = silt_waitpid(pid, 0, &status)  // blocking is fine: it is already a zombie
        if rc != 0 || status.pid != pid { return .unknown }
        if status.exited != 0 { return .exited(code: status.code) }
        if status.signaled != 0 { return .signaled(signal: status.signal, coreDumped: status.core_dumped != 0) }
        return .unknown
    }

    /// Signals role `i`'s process group (or its pid when it has no group of its own).
    func sendSignal(_ i: Int, _ sig: Int32) {
        guard let pid = runtimes[i].pid else { return }
        var rc = runtimes[i].spec.newProcessGroup ? silt_kill_group(pid, sig) : silt_kill(pid, sig)
        if rc == ESRCH || rc == EPERM { rc = silt_kill(pid, sig) }  // group not set up (yet)
        if rc != 0 && rc != ESRCH {
            logger.error("kill failed", metadata: [
                "role": "\(runtimes[i].spec.name)", "pid": "\(pid)", "signal": "\(sig)",
                "error": "\(String(cString: strerror(rc)))"])
        }
    }

    static func withCStringArray<R>(_ strings: [String],
                                    _ body: (UnsafePointer<UnsafeMutablePointer<CChar>?>) -> R) -> R {
        // strdup'd copies live until body returns; the array is NULL-terminated as execve wants.
        var pointers: [UnsafeMutablePointer<CChar>?] = strings.map { strdup($0) }
        pointers.append(nil)
        defer { for p in pointers { free(p) } }
        return pointers.withUnsafeBufferPointer { body($0.baseAddress!) }
    }

    // MARK: - helpers for `silt server` and `silt role ...`

    /// The running binary, for re-spawning ourselves: readlink(/proc/self/exe). When the
    /// binary was replaced on disk ("... (deleted)"), returns "/proc/self/exe" itself, which
    /// posix_spawn can still exec (a child starts as a copy of us, so its /proc/self/exe is
    /// the same image): restarted roles then keep the supervisor's version.
    public static func currentExecutablePath() -> String {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard n > 0 else { return CommandLine.arguments.first ?? "/proc/self/exe" }
        let path = String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        if path.hasSuffix(" (deleted)") { return "/proc/self/exe" }
        return path
    }

    /// The supervisor's own environment minus `keys` (e.g. the variable that holds the
    /// start line with credentials), to pass on to children deliberately.
    public static func parentEnvironment(removing keys: Set<String> = []) -> [String: String] {
        ProcessInfo.processInfo.environment.filter { !keys.contains($0.key) }
    }

    /// What a role process calls first thing (`silt role <name> ...`): posix_spawn cannot
    /// run code in the child, so the child itself asks the kernel for `signal` (SIGKILL by
    /// default) when its parent dies (prctl PR_SET_PDEATHSIG), then checks that its parent
    /// is still the supervisor (`SILT_SUPERVISOR_PID`), since the supervisor may have died
    /// between the spawn and the prctl. Returns false when the parent is already gone: the
    /// caller should exit at once. Without SILT_SUPERVISOR_PID (started by hand), it only
    /// arms the signal and returns true.
    ///
    /// Caveat (Linux): the signal fires when the *thread* that spawned the child exits;
    /// run() spawns every child from its own thread, which lives until all children are
    /// stopped, so this is the supervisor's lifetime.
    public static func armParentDeathSignal(_ signal: Int32 = SIGKILL) -> Bool {
        let rc = silt_set_parent_death_signal(signal)
        guard rc == 0 else { return true }  // not Linux: nothing to arm, nothing to check
        guard let text = ProcessInfo.processInfo.environment[supervisorPidEnvironmentKey],
              let expected = pid_t(text) else { return true }
        return getppid() == expected
    }
}
