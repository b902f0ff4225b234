import Foundation
import Logging
import XCTest
@testable import SiltNode

/// Real processes (`/bin/sh -c`), real signals. Every wait is bounded.
final class SupervisorTests: XCTestCase {
    private var dir: URL!
    private var runners: [Runner] = []
    private let logger = Logger(label: "silt.supervisor.test")

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory
            .appendingPathComponent("silt-supervisor-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        // A failed test must not leave children behind.
        for runner in runners {
            runner.supervisor.requestStop()
            _ = runner.join(timeout: 15)
        }
        runners.removeAll()
        try? FileManager.default.removeItem(at: dir)
    }

    // MARK: - helpers

    final class Runner: @unchecked Sendable {
        let supervisor: Supervisor
        private let done = DispatchSemaphore(value: 0)
        private let lock = NSLock()
        private var result: Result<Int32, Error>?

        init(_ supervisor: Supervisor, beforeRun: (@Sendable () -> Void)? = nil) {
            self.supervisor = supervisor
            let thread = Thread { [self] in
                beforeRun?()
                let r = Result { try supervisor.run() }
                lock.lock(); result = r; lock.unlock()
                done.signal()
            }
            thread.start()
        }

        /// nil when run() did not return within `timeout` seconds.
        func join(timeout: Double) -> Result<Int32, Error>? {
            if done.wait(timeout: .now() + timeout) == .timedOut { return nil }
            done.signal()  // let later joins return too
            lock.lock(); defer { lock.unlock() }
            return result
        }
    }

    private func start(_ roles: [RoleSpec], policy: RestartPolicy = RestartPolicy(),
                       stopSignals: [Int32] = [], beforeRun: (@Sendable () -> Void)? = nil) -> Runner {
        let supervisor = Supervisor(roles: roles, policy: policy, logger: logger, stopSignals: stopSignals)
        let runner = Runner(supervisor, beforeRun: beforeRun)
        runners.append(runner)
        return runner
    }

    private func path(_ name: String) -> String { dir.appendingPathComponent(name).path }

    private func read(_ name: String) -> String {
        (try? String(contentsOfFile: path(name), encoding: .utf8)) ?? ""
    }

    /// Polls `condition` every 10 ms for at most `timeout` seconds.
    @discardableResult
    private func waitUntil(_ timeout: Double = 5, _ condition: () -> Bool) -> Bool {
        let deadline = Date(timeIntervalSinceNow: timeout)
        while Date() < deadline {
            if condition() { return true }
            usleep(10_000)
        }
        return condition()
    }

    /// A role that loops until SIGTERM, then appends its name to `stops` and exits 0.
    private func politeRole(_ name: String, stopOrder: Int, extra: String = "",
                            env: [String: String] = [:], fds: [(source: Int32, target: Int32)] = [],
                            stopTimeout: Duration = .seconds(5)) -> RoleSpec {
        let script = "trap 'echo \(name) >> \(path("stops")); exit 0' TERM; : > \(path("ready-\(name)")); "
            + "\(extra) while :; do sleep 0.05; done"
        return RoleSpec(name: name, executable: "/bin/sh", arguments: ["-c", script, "silt-\(name)"],
                        environment: env, inheritedFds: fds, stopOrder: stopOrder, stopTimeout: stopTimeout)
    }

    /// Every role has a live pid and (polite roles) has installed its SIGTERM trap.
    private func allRunning(_ supervisor: Supervisor, _ names: [String]) -> Bool {
        names.allSatisfy {
            supervisor.status(of: $0)?.pid != nil && FileManager.default.fileExists(atPath: path("ready-\($0)"))
        }
    }

    // MARK: - tests

    func testSpawnsAllRolesAndStopsThemInStopOrder() throws {
        let names = ["controller", "wal", "uploader", "broker"]  // start order
        let orders = ["broker": 0, "uploader": 1, "wal": 2, "controller": 3]
        let runner = start(names.map { politeRole($0, stopOrder: orders[$0]!) })
        let sup = runner.supervisor
        XCTAssertTrue(waitUntil { self.allRunning(sup, names) }, "\(sup.status())")
        let pids = names.map { sup.status(of: $0)!.pid! }
        XCTAssertEqual(Set(pids).count, 4)
        for pid in pids {
            XCTAssertEqual(kill(pid, 0), 0, "child \(pid) is alive")
            XCTAssertEqual(getpgid(pid), pid, "child has its own process group")
        }

        sup.requestStop()
        guard case .success(let code)? = runner.join(timeout: 15) else { return XCTFail("run() did not return") }
        XCTAssertEqual(code, 0)
        XCTAssertEqual(read("stops"), "broker\nuploader\nwal\ncontroller\n")
        for status in sup.status() {
            XCTAssertNil(status.pid)
            XCTAssertEqual(status.phase, .stopped)
            XCTAssertEqual(status.restartCount, 0, "nothing is restarted during a stop")
            XCTAssertEqual(status.lastExit, .exited(code: 0))
        }
        for pid in pids { XCTAssertEqual(kill(pid, 0), -1, "child \(pid) is gone") }
    }

    func testChildIgnoringStopSignalIsKilledAfterItsTimeout() throws {
        let stubborn = RoleSpec(name: "stubborn", executable: "/bin/sh",
                                arguments: ["-c", "trap '' TERM; : > \(path("ready-stubborn")); while :; do sleep 0.05; done"],
                                stopOrder: 0, stopTimeout: .milliseconds(400))
        let runner = start([stubborn, politeRole("polite", stopOrder: 1)])
        let sup = runner.supervisor
        XCTAssertTrue(waitUntil { self.allRunning(sup, ["stubborn", "polite"]) })

        let began = Date()
        sup.requestStop()
        guard case .success(let code)? = runner.join(timeout: 15) else { return XCTFail("run() did not return") }
        let took = Date().timeIntervalSince(began)
        XCTAssertEqual(code, 0)
        XCTAssertGreaterThanOrEqual(took, 0.4, "SIGKILL only after the stop timeout")
        XCTAssertLessThan(took, 5, "teardown is bounded")
        XCTAssertEqual(sup.status(of: "stubborn")?.lastExit, .signaled(signal: SIGKILL, coreDumped: false))
        XCTAssertEqual(read("stops"), "polite\n", "the next group is stopped after the stubborn one")
    }

    func testInheritedFdsAreReadableAtTheirTargetsAndArgvHasNoSecret() throws {
        let secret = "s3-secret-key=\(UUID().uuidString)"
        var secretPipe: [Int32] = [-1, -1]
        XCTAssertEqual(pipe(&secretPipe), 0)
        let written = secret.withCString { write(secretPipe[1], $0, strlen($0)) }
        XCTAssertEqual(written, secret.utf8.count)
        close(secretPipe[1])
        defer { close(secretPipe[0]) }

        // A second descriptor (a file) mapped to a target that is also some other fd's
        // number in the parent, and a non-CLOEXEC fd that must not leak.
        let filePath = path("payload")
        try "payload-bytes".write(toFile: filePath, atomically: true, encoding: .utf8)
        let fileFd = open(filePath, O_RDONLY)
        XCTAssertGreaterThanOrEqual(fileFd, 0)
        defer { close(fileFd) }
        let leak = open("/dev/null", O_RDONLY)  // no O_CLOEXEC
        XCTAssertGreaterThanOrEqual(leak, 0)
        defer { close(leak) }

        let script = """
            read -r s <&3; printf '%s' "$s" > \(path("fd3")); cat <&7 > \(path("fd7")); \
            if [ -e /proc/$$/fd/\(leak) ]; then echo leaked > \(path("leak")); else echo closed > \(path("leak")); fi; \
            while :; do sleep 0.05; done
            """
        let role = RoleSpec(name: "broker", executable: "/bin/sh",
                            arguments: ["-c", script, "silt", "role", "broker", "--config-fd", "3"],
                            inheritedFds: [(source: secretPipe[0], target: 3), (source: fileFd, target: 7)],
                            stopOrder: 0)
        let runner = start([role])
        let sup = runner.supervisor
        XCTAssertTrue(waitUntil { !self.read("leak").isEmpty }, "child ran its script")
        XCTAssertEqual(read("fd3"), secret)
        XCTAssertEqual(read("fd7"), "payload-bytes")
        XCTAssertEqual(read("leak"), "closed\n", "descriptors that are not mapped are closed in the child")

        let pid = try XCTUnwrap(sup.status(of: "broker")?.pid)
        let cmdline = try String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8)
        XCTAssertTrue(cmdline.contains("--config-fd"))
        XCTAssertFalse(cmdline.contains(secret), "the secret travels by fd, never by argv")
        XCTAssertFalse(cmdline.contains("s3-secret-key"))

        sup.requestStop()
        guard case .success(0)? = runner.join(timeout: 15) else { return XCTFail("run() did not return 0") }
    }

    func testEnvironmentReachesTheChildAndNothingElse() throws {
        setenv("SILT_TEST_PARENT_ONLY", "parent-secret", 1)
        defer { unsetenv("SILT_TEST_PARENT_ONLY") }
        let role = politeRole("wal", stopOrder: 0,
                              extra: "echo \"$SILT_TEST_VALUE|${SILT_TEST_PARENT_ONLY:-unset}|$SILT_SUPERVISOR_PID\" > \(path("env"));",
                              env: ["SILT_TEST_VALUE": "hello world"])
        let runner = start([role])
        XCTAssertTrue(waitUntil { !self.read("env").isEmpty })
        XCTAssertEqual(read("env"), "hello world|unset|\(getpid())\n")
        runner.supervisor.requestStop()
        guard case .success(0)? = runner.join(timeout: 15) else { return XCTFail("run() did not return 0") }
    }

    func testChildDoesNotInheritBlockedOrIgnoredSignals() throws {
        let previous = signal(SIGHUP, SIG_IGN)
        defer { signal(SIGHUP, previous) }
        let role = politeRole("broker", stopOrder: 0,
                              extra: "grep -E 'SigBlk|SigIgn' /proc/self/status > \(path("sig"));")
        // /proc/self: grep's own mask, inherited from the shell; the shell's own status can
        // show everything blocked while it is forking.
        let runner = start([role], beforeRun: {
            var set = sigset_t()
            sigemptyset(&set)
            sigaddset(&set, SIGUSR1)
            sigaddset(&set, SIGCHLD)
            pthread_sigmask(SIG_BLOCK, &set, nil)  // only the run() thread: it spawns
        })
        XCTAssertTrue(waitUntil { self.read("sig").split(separator: "\n").count == 2 })
        let lines = read("sig").split(separator: "\n").map { $0.split(separator: "\t").last.map(String.init) ?? "" }
        XCTAssertEqual(lines, ["0000000000000000", "0000000000000000"], read("sig"))
        runner.supervisor.requestStop()
        guard case .success(0)? = runner.join(timeout: 15) else { return XCTFail("run() did not return 0") }
    }

    func testCrashedChildIsRestartedWithBackoff() throws {
        let flaky = RoleSpec(name: "uploader", executable: "/bin/sh",
                             arguments: ["-c", "date +%s%N >> \(path("starts")); exit 3"],
                             stopOrder: 1, stopTimeout: .seconds(2))
        let steady = politeRole("broker", stopOrder: 0)
        let policy = RestartPolicy(initialBackoff: .milliseconds(200), maxBackoff: .seconds(1), multiplier: 2,
                                   jitter: 0.1, crashLoopWindow: .seconds(60), crashLoopMaxRestarts: 100)
        let runner = start([steady, flaky], policy: policy)
        let sup = runner.supervisor
        // Wait for the third run to have exited (the restart after it is ≥ 800 ms away).
        XCTAssertTrue(waitUntil(10) {
            let st = sup.status(of: "uploader")
            return (st?.restartCount ?? 0) >= 2 && st?.phase == .waitingToRestart
                && self.read("starts").split(separator: "\n").count >= 3
        })
        let steadyPid = sup.status(of: "broker")?.pid
        XCTAssertNotNil(steadyPid, "the other role keeps running")
        sup.requestStop()
        guard case .success(0)? = runner.join(timeout: 15) else { return XCTFail("run() did not return 0") }

        let status = try XCTUnwrap(sup.status(of: "uploader"))
        XCTAssertGreaterThanOrEqual(status.restartCount, 2)
        XCTAssertEqual(status.spawnCount, status.restartCount + 1)
        XCTAssertEqual(status.lastExit, .exited(code: 3))
        XCTAssertEqual(sup.status(of: "broker")?.restartCount, 0)

        let starts = read("starts").split(separator: "\n").compactMap { Double($0) }.map { $0 / 1e9 }
        XCTAssertGreaterThanOrEqual(starts.count, 3)
        XCTAssertGreaterThanOrEqual(starts[1] - starts[0], 0.2, "first restart waits ≥ initialBackoff")
        XCTAssertGreaterThanOrEqual(starts[2] - starts[1], 0.4, "second restart waits ≥ 2 × initialBackoff")
    }

    func testStartDelayPacesStartUp() throws {
        func role(_ name: String, order: Int, delay: Duration) -> RoleSpec {
            var spec = politeRole(name, stopOrder: order, extra: "date +%s%N > \(path("start-\(name)"));")
            spec.startDelay = delay
            return spec
        }
        let runner = start([role("controller", order: 1, delay: .milliseconds(300)),
                            role("broker", order: 0, delay: .zero)])
        let sup = runner.supervisor
        XCTAssertTrue(waitUntil { self.allRunning(sup, ["controller", "broker"]) })
        XCTAssertTrue(waitUntil { !self.read("start-broker").isEmpty && !self.read("start-controller").isEmpty })
        let first = try XCTUnwrap(Double(read("start-controller").trimmingCharacters(in: .whitespacesAndNewlines)))
        let second = try XCTUnwrap(Double(read("start-broker").trimmingCharacters(in: .whitespacesAndNewlines)))
        XCTAssertGreaterThanOrEqual((second - first) / 1e9, 0.25, "the broker starts after the controller's delay")
        sup.requestStop()
        guard case .success(0)? = runner.join(timeout: 15) else { return XCTFail("run() did not return 0") }
    }

    func testCrashLoopStopsTheOthersAndReturnsNonZero() throws {
        let bad = RoleSpec(name: "wal", executable: "/bin/sh", arguments: ["-c", "exit 1"], stopOrder: 2)
        let policy = RestartPolicy(initialBackoff: .milliseconds(10), maxBackoff: .milliseconds(50),
                                   crashLoopWindow: .seconds(30), crashLoopMaxRestarts: 3)
        let runner = start([politeRole("controller", stopOrder: 3), politeRole("broker", stopOrder: 0), bad],
                           policy: policy)
        guard case .success(let code)? = runner.join(timeout: 15) else { return XCTFail("run() did not return") }
        XCTAssertEqual(code, Supervisor.crashLoopExitCode)
        XCTAssertNotEqual(code, 0)
        let sup = runner.supervisor
        XCTAssertEqual(sup.status(of: "wal")?.restartCount, 3, "exactly crashLoopMaxRestarts restarts")
        XCTAssertEqual(sup.status(of: "wal")?.lastExit, .exited(code: 1))
        for name in ["controller", "broker"] {
            XCTAssertNil(sup.status(of: name)?.pid)
            XCTAssertEqual(sup.status(of: name)?.phase, .stopped)
        }
        // Graceful: both got SIGTERM, broker (0) before controller (3). The shells may not
        // have installed their traps yet if the loop was very fast, so accept a kill too.
        let stops = read("stops")
        if !stops.isEmpty {
            XCTAssertTrue(stops == "broker\ncontroller\n" || stops == "controller\n" || stops == "broker\n", stops)
        }
    }

    func testARoleRefusingItsConfigurationIsNotRestartedAndStopsTheNode() throws {
        // Exits at once with the configuration-error code, after saying why (as `silt role` does).
        let refusing = RoleSpec(name: "wal", executable: "/bin/sh", arguments: [
            "-c", "echo 'WAL belongs to node 1, this is node 2' > \(path("reason")); exit \(Supervisor.configErrorExitCode)"],
            stopOrder: 2)
        let policy = RestartPolicy(initialBackoff: .milliseconds(10), maxBackoff: .milliseconds(50),
                                   crashLoopWindow: .seconds(30), crashLoopMaxRestarts: 5)
        let runner = start([politeRole("controller", stopOrder: 3), politeRole("broker", stopOrder: 0), refusing],
                           policy: policy)
        guard case .success(let code)? = runner.join(timeout: 15) else { return XCTFail("run() did not return") }
        XCTAssertEqual(code, Supervisor.configErrorExitCode)
        let sup = runner.supervisor
        XCTAssertEqual(sup.status(of: "wal")?.spawnCount, 1, "started once, never restarted")
        XCTAssertEqual(sup.status(of: "wal")?.restartCount, 0)
        XCTAssertEqual(sup.status(of: "wal")?.lastExit, .exited(code: Supervisor.configErrorExitCode))
        XCTAssertEqual(read("reason"), "WAL belongs to node 1, this is node 2\n")
        for name in ["controller", "broker"] {
            XCTAssertNil(sup.status(of: name)?.pid)
            XCTAssertEqual(sup.status(of: name)?.phase, .stopped)
            XCTAssertEqual(sup.status(of: name)?.restartCount, 0)
        }
    }

    func testARoleFailingWithAnotherCodeIsStillRestarted() throws {
        // Exit 1 the first time, then run politely: a crash, not a configuration error.
        let marker = path("crashed-once")
        let flaky = RoleSpec(name: "uploader", executable: "/bin/sh", arguments: [
            "-c", "if [ ! -e \(marker) ]; then : > \(marker); exit 1; fi; trap 'exit 0' TERM; "
                + ": > \(path("ready-uploader")); while :; do sleep 0.05; done"], stopOrder: 1)
        let policy = RestartPolicy(initialBackoff: .milliseconds(10), maxBackoff: .milliseconds(50))
        let runner = start([politeRole("broker", stopOrder: 0), flaky], policy: policy)
        let sup = runner.supervisor
        XCTAssertTrue(waitUntil(10) { allRunning(sup, ["broker", "uploader"]) })
        XCTAssertEqual(sup.status(of: "uploader")?.restartCount, 1)
        sup.requestStop()
        guard case .success(0)? = runner.join(timeout: 15) else { return XCTFail("run() did not return 0") }
    }

    func testStopSignalTriggersGracefulStop() throws {
        let runner = start([politeRole("broker", stopOrder: 0), politeRole("controller", stopOrder: 1)],
                           stopSignals: [SIGTERM])
        let sup = runner.supervisor
        XCTAssertTrue(waitUntil { self.allRunning(sup, ["broker", "controller"]) })
        kill(getpid(), SIGTERM)  // handled by the supervisor, not fatal to the test runner
        guard case .success(let code)? = runner.join(timeout: 15) else { return XCTFail("run() did not return") }
        XCTAssertEqual(code, 0)
        XCTAssertEqual(read("stops"), "broker\ncontroller\n")
    }

    func testSpawnFailureAtStartThrowsAfterStoppingStartedRoles() throws {
        let missing = RoleSpec(name: "broker", executable: path("no-such-binary"), stopOrder: 0)
        let runner = start([politeRole("controller", stopOrder: 1), missing])
        guard let result = runner.join(timeout: 15) else { return XCTFail("run() did not return") }
        XCTAssertThrowsError(try result.get()) { error in
            guard case SupervisorError.spawnFailed(let role, _, let errno)? = error as? SupervisorError else {
                return XCTFail("\(error)")
            }
            XCTAssertEqual(role, "broker")
            XCTAssertEqual(errno, ENOENT)
        }
        XCTAssertNil(runner.supervisor.status(of: "controller")?.pid)
    }

    func testRequestStopBeforeRunSpawnsNothing() throws {
        let supervisor = Supervisor(roles: [politeRole("broker", stopOrder: 0)], policy: RestartPolicy(),
                                    logger: logger, stopSignals: [])
        supervisor.requestStop()
        XCTAssertEqual(try supervisor.run(), 0)
        XCTAssertEqual(supervisor.status(of: "broker")?.spawnCount, 0)
        XCTAssertThrowsError(try supervisor.run(), "run() is single-use")
    }

    func testInvalidRolesAreRejected() {
        let a = politeRole("broker", stopOrder: 0)
        let dup = Supervisor(roles: [a, a], policy: RestartPolicy(), logger: logger, stopSignals: [])
        XCTAssertThrowsError(try dup.run())
        let none = Supervisor(roles: [], policy: RestartPolicy(), logger: logger, stopSignals: [])
        XCTAssertThrowsError(try none.run())
        var badFds = a
        badFds.inheritedFds = [(source: 0, target: 3), (source: 1, target: 3)]
        let fds = Supervisor(roles: [badFds], policy: RestartPolicy(), logger: logger, stopSignals: [])
        XCTAssertThrowsError(try fds.run())
    }

    func testBackoffGrowsAndIsCapped() {
        let policy = RestartPolicy(initialBackoff: .milliseconds(100), maxBackoff: .seconds(5), multiplier: 2)
        XCTAssertEqual(policy.backoff(attempt: 0), .milliseconds(100))
        XCTAssertEqual(policy.backoff(attempt: 1), .milliseconds(200))
        XCTAssertEqual(policy.backoff(attempt: 5), .milliseconds(3200))
        XCTAssertEqual(policy.backoff(attempt: 6), .seconds(5))
        XCTAssertEqual(policy.backoff(attempt: 1000), .seconds(5))
    }

    func testCurrentExecutablePathIsAFile() {
        let path = Supervisor.currentExecutablePath()
        XCTAssertTrue(FileManager.default.isExecutableFile(atPath: path), path)
    }
}
