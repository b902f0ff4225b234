import Foundation
import Logging
import CSupport

// The supervisor of role processes (`silt server`). Generic: it knows executables,
// arguments, descriptors and signals, nothing about Kafka.
//
//   run() thread (the only thread that spawns, signals and reaps)
//     │  spawn role 0 ── startDelay ── spawn role 1 ── ... ──▶ running
//     │  wait on `events` (NSCondition) until the next deadline; no polling
//     ▲
//     ├── one waiter thread per child: waitid(pid, WEXITED|WNOWAIT) → post .childTerminated
//     │   (WNOWAIT keeps the zombie, so the pid cannot be reused before run() reaps it)
//     ├── requestStop() (any thread) → post .stopRequested
//     └── signal reader thread: SIGTERM/SIGINT handler writes a byte to a self-pipe →
//         requestStop()
//
// Crash → restart after backoff (initial × multiplier^n, capped, + jitter; reset after a
// healthy uptime). More than `crashLoopMaxRestarts` restarts of one role within
// `crashLoopWindow` → graceful stop of everything, run() returns `crashLoopExitCode`.
// A role that exits with `configErrorExitCode` cannot run with its configuration: it is
// not restarted; everything stops gracefully and run() returns that code.
//
// Stop (requestStop, a stop signal, or a crash loop): roles are stopped in groups of
// equal `stopOrder`, lowest first. Per group: stopSignal to every live member; a member
// still alive after its `stopTimeout` gets SIGKILL; one still not reaped
// `reapAfterKillTimeout` after the SIGKILL (stuck in D state) is abandoned with an
// error log. So teardown takes at most Σ over groups of (max stopTimeout + 5 s).
// A role that exits while stopping is never restarted.

/// One role process: what to run and how to stop it.
public struct RoleSpec: Sendable {
    /// "controller", "broker", "wal", "uploader": the key of `Supervisor.status(of:)`.
    public var name: String
    /// Absolute path of the binary (silt re-spawns itself: `Supervisor.currentExecutablePath()`).
    public var executable: String
    /// argv after argv[0] (argv[0] is `executable`), e.g. ["role", "broker", "--config-fd", "3"].
    /// Visible to every local user in /proc/<pid>/cmdline: NEVER put secrets here; pass them
    /// through an inherited fd.
    public var arguments: [String]
    /// The child's complete environment: the parent's environment is NOT inherited (so
    /// secrets in it do not leak by accident); use `Supervisor.parentEnvironment(removing:)`
    /// to pass it on deliberately. The supervisor adds `SILT_SUPERVISOR_PID`.
    public var environment: [String: String]
    /// Parent fd `source` becomes child fd `target` (memfds, the config fd). Every other
    /// descriptor except stdio is closed in the child (see `silt_spawn`).
    public var inheritedFds: [(source: Int32, target: Int32)]
    /// Graceful stop order: lower stops first (broker 0, uploader 1, wal 2, controller 3).
    /// Roles with the same value are stopped together.
    public var stopOrder: Int
    /// The graceful stop signal.
    public var stopSignal: Int32 = SIGTERM
    /// How long a graceful stop may take before SIGKILL.
    public var stopTimeout: Duration
    /// Start-up pacing: after spawning this role, wait this long before spawning the next
    /// one in the list (a crude readiness gate; zero by default).
    public var startDelay: Duration = .zero
    /// Put the child in its own process group (pgid == pid). Then a terminal's Ctrl-C
    /// reaches only the supervisor (which stops roles in order), signals go to the whole
    /// group (the role and anything it started), and leftovers of a role that exited are
    /// SIGKILLed with its group.
    public var newProcessGroup: Bool = true

    public init(name: String, executable: String, arguments: [String] = [],
                environment: [String: String] = [:],
                inheritedFds: [(source: Int32, target: Int32)] = [],
                stopOrder: Int, stopSignal: Int32 = SIGTERM,
                stopTimeout: Duration = .seconds(30), startDelay: Duration = .zero,
                newProcessGroup: Bool = true) {
        self.name = name
        self.executable = executable
        self.arguments = arguments
        self.environment = environment
        self.inheritedFds = inheritedFds
        self.stopOrder = stopOrder
        self.stopSignal = stopSignal
        self.stopTimeout = stopTimeout
        self.startDelay = startDelay
        self.newProcessGroup = newProcessGroup
    }
}

/// When and how often a crashed role is restarted.
public struct RestartPolicy: Sendable {
    /// Delay before the first restart after a crash.
    public var initialBackoff: Duration = .milliseconds(100)
    /// Upper bound of the delay (before jitter).
    public var maxBackoff: Duration = .seconds(5)
    /// Growth of the delay per consecutive crash.
    public var multiplier: Double = 2
    /// Random extra delay, a fraction of the delay: delay × (1 + U[0, jitter]). Only ever
    /// lengthens the delay, so `initialBackoff` is a lower bound.
    public var jitter: Double = 0.2
    /// Crash-loop detection window.
    public var crashLoopWindow: Duration = .seconds(60)
    /// A role that needs more restarts than this within `crashLoopWindow` is a crash loop:
    /// everything is stopped and `run()` returns `Supervisor.crashLoopExitCode`.
    public var crashLoopMaxRestarts: Int = 5
    /// A child that stayed up longer than this was healthy: its backoff starts over.
    public var healthyUptime: Duration = .seconds(10)

    public init(initialBackoff: Duration = .milliseconds(100), maxBackoff: Duration = .seconds(5),
                multiplier: Double = 2, jitter: Double = 0.2,
                crashLoopWindow: Duration = .seconds(60), crashLoopMaxRestarts: Int = 5,
                healthyUptime: Duration = .seconds(10)) {
        precondition(initialBackoff >= .zero && maxBackoff >= initialBackoff, "backoff bounds")
        precondition(multiplier >= 1 && jitter >= 0, "backoff growth")
        precondition(crashLoopMaxRestarts >= 0 && crashLoopWindow > .zero, "crash loop bounds")
        self.initialBackoff = initialBackoff
        self.maxBackoff = maxBackoff
        self.multiplier = multiplier
        self.jitter = jitter
        self.crashLoopWindow = crashLoopWindow
        self.crashLoopMaxRestarts = crashLoopMaxRestarts
        self.healthyUptime = healthyUptime
    }

    /// The delay before restart number `attempt` (0-based, counted since the last healthy
    /// run), before jitter: min(maxBackoff, initialBackoff × multiplier^attempt).
    public func backoff(attempt: Int) -> Duration {
        let initialNs = Double(supervisorNanoseconds(initialBackoff))
        let maxNs = Double(supervisorNanoseconds(maxBackoff))
        let ns = min(maxNs, initialNs * pow(multiplier, Double(min(attempt, 64))))
        return .nanoseconds(Int64(ns))
    }
}

/// How a role process ended.
public enum RoleExit: Sendable, Equatable, CustomStringConvertible {
    case exited(code: Int32)
    case signaled(signal: Int32, coreDumped: Bool)
    /// Reaped by someone else in this process (a stray waitpid(-1)): status unknown.
    case unknown

    public var description: String {
        switch self {
        case .exited(let code): return "exited with code \(code)"
        case .signaled(let sig, let core): return "killed by signal \(sig)\(core ? " (core dumped)" : "")"
        case .unknown: return "exited (status unknown)"
        }
    }
}

/// A role's state as seen from outside (tests, status endpoints).
public struct RoleStatus: Sendable, Equatable {
    public enum Phase: Sendable, Equatable {
        case notStarted, running, waitingToRestart, stopping, stopped, abandoned
    }
    public var name: String
    public var phase: Phase
    /// The live child's pid, nil when no process is running for the role.
    public var pid: pid_t?
    /// Restarts after crashes since run() began (the initial spawn is not a restart).
    public var restartCount: Int
    /// Successful spawns, the initial one included.
    public var spawnCount: Int
    public var lastExit: RoleExit?
}

public enum SupervisorError: Error, CustomStringConvertible {
    case invalidRoles(String)
    case spawnFailed(role: String, executable: String, errno: Int32)
    case alreadyRun

    public var description: String {
        switch self {
        case .invalidRoles(let why): return "invalid role list: \(why)"
        case .spawnFailed(let role, let exe, let err):
            return "cannot start role \(role) (\(exe)): \(String(cString: strerror(err)))"
        case .alreadyRun: return "Supervisor.run() may be called once"
        }
    }
}

/// Starts role processes, restarts crashed ones with backoff, stops them in order.
/// See the top of Supervisor.swift for the threads and the teardown bound.
public final class Supervisor: @unchecked Sendable {
    /// run()'s result when a role crash-loops (EX_SOFTWARE).
    public static let crashLoopExitCode: Int32 = 70
    /// The exit code of a role that cannot start with its configuration (EX_CONFIG), after
    /// saying why: restarting it would fail the same way, so the supervisor stops every role
    /// and run() returns this code.
    public static let configErrorExitCode: Int32 = 78
    /// After SIGKILL, how long to wait for the kernel to let the child go before giving up
    /// on it (a process stuck in uninterruptible I/O cannot be reaped).
    public static let reapAfterKillTimeout: Duration = .seconds(5)
    /// Environment variable the supervisor sets in every child: its own pid, checked by
    /// `armParentDeathSignal()`.
    public static let supervisorPidEnvironmentKey = "SILT_SUPERVISOR_PID"

    let roles: [RoleSpec]
    let policy: RestartPolicy
    let logger: Logger
    let stopSignals: [Int32]
    let clock = ContinuousClock()

    // Shared between threads, guarded by `events`.
    let events = NSCondition()
    var inbox: [Event] = []
    var published: [RoleStatus]
    var started = false

    // Owned by the run() thread only.
    var runtimes: [Runtime] = []
    var phase: Phase = .starting
    var nextStartIndex = 0
    var nextStartAt: ContinuousClock.Instant
    var stopGroups: [[Int]] = []
    var currentStopGroup = 0
    var currentGroupSignaled = false
    var exitCode: Int32 = 0
    var startError: SupervisorError?

    enum Event {
        case childTerminated(pid_t)
        case stopRequested(reason: String)
    }

    enum Phase { case starting, running, stopping, done }

    struct Runtime {
        var spec: RoleSpec
        var pid: pid_t?
        var startedAt: ContinuousClock.Instant?
        var restartAt: ContinuousClock.Instant?
        var consecutiveCrashes = 0
        var crashTimes: [ContinuousClock.Instant] = []  // within the window; ≤ crashLoopMaxRestarts + 1
        var restartCount = 0
        var spawnCount = 0
        var lastExit: RoleExit?
        var killAt: ContinuousClock.Instant?
        var killedAt: ContinuousClock.Instant?
        var abandoned = false
        var stopping = false
        var stopped = false
    }

    /// - Parameters:
    ///   - roles: started in this order; names must be unique.
    ///   - stopSignals: run() installs handlers for these (a self-pipe, see
    ///     `silt_signal_notify_install`) that call `requestStop()`, and restores the previous
    ///     dispositions before it returns. Pass `[]` to wire `requestStop()` yourself.
    public init(roles: [RoleSpec], policy: RestartPolicy, logger: Logger,
                stopSignals: [Int32] = [SIGTERM, SIGINT]) {
        self.roles = roles
        self.policy = policy
        self.logger = logger
        self.stopSignals = stopSignals
        self.nextStartAt = clock.now
        self.published = roles.map {
            RoleStatus(name: $0.name, phase: .notStarted, pid: nil, restartCount: 0, spawnCount: 0, lastExit: nil)
        }
    }

    /// Asks run() to stop every role gracefully and return 0 (unless a crash loop already
    /// decided otherwise). Thread-safe, idempotent, callable before run() (then run() stops
    /// without spawning anything).
    public func requestStop() {
        post(.stopRequested(reason: "stop requested"))
    }

    /// A snapshot of every role, in the order given to init.
    public func status() -> [RoleStatus] {
        events.lock()
        defer { events.unlock() }
        return published
    }

    /// A snapshot of one role, nil for an unknown name.
    public func status(of name: String) -> RoleStatus? {
        status().first { $0.name == name }
    }

    /// Blocks: starts every role, supervises, stops. Returns 0 after a graceful stop,
    /// `crashLoopExitCode` after a crash loop and `configErrorExitCode` after a role refused
    /// its configuration. Throws for an invalid role list, for a
    /// second call, and when a role cannot be spawned at start-up (missing binary: the
    /// roles already started are stopped first). Call it on a thread that lives as long
    /// as run() does (any thread: it blocks): children's parent-death signal is tied to
    /// the spawning thread, which is the one running run().
    public func run() throws -> Int32 {
        events.lock()
        let again = started
        started = true
        events.unlock()
        if again { throw SupervisorError.alreadyRun }
        try validate()

        let signalPipe = installStopSignalHandlers()
        defer { removeStopSignalHandlers(signalPipe) }

        runtimes = roles.map { Runtime(spec: $0) }
        stopGroups = Dictionary(grouping: runtimes.indices, by: { runtimes[$0].spec.stopOrder })
            .sorted { $0.key < $1.key }.map { $0.value }
        phase = .starting
        nextStartIndex = 0
        nextStartAt = clock.now
        logger.info("supervisor starting", metadata: ["roles": "\(roles.map(\.name).joined(separator: ","))"])

        var pending = takeEvents()  // a requestStop() before run() stops before any spawn
        while true {
            for event in pending { handle(event) }
            fireTimers(now: clock.now)
            publish()
            if phase == .done { break }
            pending = waitForEvents(until: nextDeadline())
        }
        publish()
        if let error = startError { throw error }
        logger.info("supervisor stopped", metadata: ["exit_code": "\(exitCode)"])
        return exitCode
    }

    // MARK: - the loop

    func validate() throws {
        if roles.isEmpty { throw SupervisorError.invalidRoles("no roles") }
        var names = Set<String>()
        for role in roles {
            if role.name.isEmpty { throw SupervisorError.invalidRoles("a role has an empty name") }
            if !names.insert(role.name).inserted { throw SupervisorError.invalidRoles("duplicate role \(role.name)") }
            if role.stopTimeout < .zero || role.startDelay < .zero {
                throw SupervisorError.invalidRoles("negative duration for role \(role.name)")
            }
            var targets = Set<Int32>()
            for fd in role.inheritedFds {
                if fd.source < 0 || fd.target < 0 || !targets.insert(fd.target).inserted {
                    throw SupervisorError.invalidRoles("bad fd map \(fd) for role \(role.name)")
                }
            }
        }
    }

    func post(_ event: Event) {
        events.lock()
        inbox.append(event)
        events.signal()
        events.unlock()
    }

    func takeEvents() -> [Event] {
        events.lock()
        defer { events.unlock() }
        let taken = inbox
        inbox.removeAll()
        return taken
    }

    /// Waits for events or the deadline. Waits are capped at one second so a wall-clock
    /// jump (NSCondition takes a Date) delays a deadline by at most that much.
    func waitForEvents(until deadline: ContinuousClock.Instant?) -> [Event] {
        events.lock()
        defer { events.unlock() }
        while inbox.isEmpty {
            guard let deadline else { events.wait(); continue }
            let remaining = supervisorSeconds(deadline - clock.now)
            if remaining <= 0 { break }
            _ = events.wait(until: Date(timeIntervalSinceNow: min(remaining, 1.0)))
            if clock.now >= deadline { break }
        }
        let taken = inbox
        inbox.removeAll(keepingCapacity: true)
        return taken
    }

    func nextDeadline() -> ContinuousClock.Instant? {
        var next: ContinuousClock.Instant?
        func consider(_ t: ContinuousClock.Instant?) {
            guard let t else { return }
            if next == nil || t < next! { next = t }
        }
        switch phase {
        case .starting:
            consider(nextStartAt)
            for r in runtimes { consider(r.restartAt) }
        case .running:
            for r in runtimes { consider(r.restartAt) }
        case .stopping:
            if currentStopGroup < stopGroups.count {
                for i in stopGroups[currentStopGroup] where runtimes[i].pid != nil && !runtimes[i].abandoned {
                    if let killedAt = runtimes[i].killedAt {
                        consider(killedAt + Self.reapAfterKillTimeout)
                    } else {
                        consider(runtimes[i].killAt)
                    }
                }
            }
        case .done:
            break
        }
        return next
    }

    func fireTimers(now: ContinuousClock.Instant) {
        if phase == .starting {
            while phase == .starting && now >= nextStartAt {
                let index = nextStartIndex
                if let errno = spawn(index) {
                    startError = .spawnFailed(role: runtimes[index].spec.name,
                                              executable: runtimes[index].spec.executable, errno: errno)
                    exitCode = 1
                    beginStop(reason: "role \(runtimes[index].spec.name) could not be started", now: now)
                    break
                }
                nextStartIndex += 1
                nextStartAt = now + runtimes[index].spec.startDelay
                if nextStartIndex == runtimes.count {
                    phase = .running
                    logger.info("all roles started")
                }
            }
        }
        if phase == .starting || phase == .running {
            for i in runtimes.indices {
                guard let at = runtimes[i].restartAt, now >= at else { continue }
                runtimes[i].restartAt = nil
                runtimes[i].restartCount += 1
                if let errno = spawn(i) {
                    logger.error("restart failed", metadata: [
                        "role": "\(runtimes[i].spec.name)", "error": "\(String(cString: strerror(errno)))"])
                    runtimes[i].lastExit = .exited(code: 127)
                    crashed(i, uptime: .zero, now: now)
                }
                if phase == .stopping { break }  // the failure above was a crash loop
            }
        }
        if phase == .stopping {
            advanceStop(now: now)
        }
    }

    func handle(_ event: Event) {
        switch event {
        case .stopRequested(let reason):
            if phase == .stopping || phase == .done {
                logger.info("already stopping", metadata: ["reason": "\(reason)"])
            } else {
                beginStop(reason: reason, now: clock.now)
            }
        case .childTerminated(let pid):
            guard let i = runtimes.firstIndex(where: { $0.pid == pid }) else { return }
            let exit = reap(pid)
            let now = clock.now
            let uptime = runtimes[i].startedAt.map { now - $0 } ?? .zero
            if runtimes[i].spec.newProcessGroup {
                // Anything the role left behind in its group goes with it. The group id
                // cannot have been reused while members remain, and ESRCH means none did.
                _ = silt_kill_group(pid, SIGKILL)
            }
            runtimes[i].pid = nil
            runtimes[i].startedAt = nil
            runtimes[i].lastExit = exit
            let meta: Logger.Metadata = [
                "role": "\(runtimes[i].spec.name)", "pid": "\(pid)", "status": "\(exit)",
                "uptime_ms": "\(supervisorMilliseconds(uptime))"]
            if phase == .stopping || phase == .done {
                runtimes[i].stopped = true
                logger.info("role stopped", metadata: meta)
                if phase == .stopping { advanceStop(now: now) }
            } else if exit == .exited(code: Self.configErrorExitCode) {
                logger.critical("role cannot run with this configuration (its reason is in its log); not restarting it",
                                metadata: meta)
                exitCode = Self.configErrorExitCode
                beginStop(reason: "role \(runtimes[i].spec.name) refused its configuration", now: now)
            } else {
                logger.warning("role exited unexpectedly", metadata: meta)
                crashed(i, uptime: uptime, now: now)
            }
        }
    }

    /// A role died outside a stop: schedule a restart, or declare a crash loop.
    func crashed(_ i: Int, uptime: Duration, now: ContinuousClock.Instant) {
        if uptime > policy.healthyUptime { runtimes[i].consecutiveCrashes = 0 }
        let windowStart = now - policy.crashLoopWindow
        runtimes[i].crashTimes.removeAll { $0 < windowStart }
        runtimes[i].crashTimes.append(now)
        if runtimes[i].crashTimes.count > policy.crashLoopMaxRestarts {
            logger.critical("role is crash-looping, giving up", metadata: [
                "role": "\(runtimes[i].spec.name)",
                "crashes": "\(runtimes[i].crashTimes.count)",
                "window_ms": "\(supervisorMilliseconds(policy.crashLoopWindow))"])
            exitCode = Self.crashLoopExitCode
            beginStop(reason: "crash loop of role \(runtimes[i].spec.name)", now: now)
            return
        }
        let attempt = runtimes[i].consecutiveCrashes
        let base = policy.backoff(attempt: attempt)
        let factor = 1 + Double.random(in: 0...max(policy.jitter, 0))
        let delay = Duration.nanoseconds(Int64(Double(supervisorNanoseconds(base)) * factor))
        runtimes[i].consecutiveCrashes += 1
        runtimes[i].restartAt = now + delay
        logger.warning("restarting role", metadata: [
            "role": "\(runtimes[i].spec.name)", "in_ms": "\(supervisorMilliseconds(delay))",
            "attempt": "\(attempt + 1)"])
    }

    func beginStop(reason: String, now: ContinuousClock.Instant) {
        logger.info("stopping all roles", metadata: ["reason": "\(reason)"])
        phase = .stopping
        for i in runtimes.indices { runtimes[i].restartAt = nil }
        currentStopGroup = 0
        currentGroupSignaled = false
        advanceStop(now: now)
    }

    /// Steps the teardown: signal the current group, SIGKILL overdue members, abandon
    /// unreapable ones, move to the next group when this one is gone.
    func advanceStop(now: ContinuousClock.Instant) {
        while currentStopGroup < stopGroups.count {
            let members = stopGroups[currentStopGroup]
            if !currentGroupSignaled {
                currentGroupSignaled = true
                for i in members {
                    guard let pid = runtimes[i].pid else { runtimes[i].stopped = true; continue }
                    let spec = runtimes[i].spec
                    logger.info("stopping role", metadata: [
                        "role": "\(spec.name)", "pid": "\(pid)", "signal": "\(spec.stopSignal)",
                        "timeout_ms": "\(supervisorMilliseconds(spec.stopTimeout))"])
                    runtimes[i].stopping = true
                    runtimes[i].killAt = now + spec.stopTimeout
                    sendSignal(i, spec.stopSignal)
                }
            }
            var pending = false
            for i in members where runtimes[i].pid != nil && !runtimes[i].abandoned {
                if let killedAt = runtimes[i].killedAt {
                    if now >= killedAt + Self.reapAfterKillTimeout {
                        logger.error("role did not exit after SIGKILL; abandoning it", metadata: [
                            "role": "\(runtimes[i].spec.name)", "pid": "\(runtimes[i].pid!)"])
                        runtimes[i].abandoned = true
                        continue
                    }
                } else if let killAt = runtimes[i].killAt, now >= killAt {
                    logger.warning("role did not stop in time; sending SIGKILL", metadata: [
                        "role": "\(runtimes[i].spec.name)", "pid": "\(runtimes[i].pid!)"])
                    runtimes[i].killedAt = now
                    sendSignal(i, SIGKILL)
                }
                pending = true
            }
            if pending { return }
            currentStopGroup += 1
            currentGroupSignaled = false
        }
        phase = .done
    }

    func publish() {
        let snapshot = runtimes.map { r -> RoleStatus in
            let phase: RoleStatus.Phase
            if r.abandoned { phase = .abandoned }
            else if r.pid != nil { phase = r.stopping ? .stopping : .running }
            else if r.stopped { phase = .stopped }
            else if r.restartAt != nil { phase = .waitingToRestart }
            else if r.spawnCount == 0 { phase = .notStarted }
            else { phase = .stopped }
            return RoleStatus(name: r.spec.name, phase: phase, pid: r.pid, restartCount: r.restartCount,
                              spawnCount: r.spawnCount, lastExit: r.lastExit)
        }
        events.lock()
        if !runtimes.isEmpty { published = snapshot }
        events.unlock()
    }
}

// Duration helpers (prefixed: this module is shared with other files).
@inline(__always)
func supervisorNanoseconds(_ d: Duration) -> Int64 {
    let c = d.components
    return c.seconds * 1_000_000_000 + c.attoseconds / 1_000_000_000
}

@inline(__always)
func supervisorSeconds(_ d: Duration) -> Double {
    let c = d.components
    return Double(c.seconds) + Double(c.attoseconds) * 1e-18
}

@inline(__always)
func supervisorMilliseconds(_ d: Duration) -> Int64 {
    supervisorNanoseconds(d) / 1_000_000
}
