import CSupport
import Foundation
import XCTest
@testable import SiltRing

/// Cross-process tests: real child processes (posix_spawn of `silt debug ring-peer`, never
/// fork) share a memfd ring with each other and with this process.
final class CrossProcessTests: XCTestCase {
    /// The fd number the ring is dup2'ed to in every child.
    static let childRingFd: Int32 = 100

    /// The `silt` executable of this build (it holds the `debug ring-peer` child side).
    static func siltBinary() throws -> String {
        var candidates: [String] = []
        if let env = ProcessInfo.processInfo.environment["SILT_BINARY"] { candidates.append(env) }
        // The products directory is the parent of the test bundle / test executable.
        candidates.append(Bundle.main.bundleURL.deletingLastPathComponent().appendingPathComponent("silt").path)
        candidates.append(Bundle.main.bundleURL.appendingPathComponent("silt").path)
        if let arg0 = CommandLine.arguments.first {
            candidates.append(URL(fileURLWithPath: arg0).deletingLastPathComponent().appendingPathComponent("silt").path)
        }
        for t in Bundle.allBundles where t.bundleURL.pathExtension == "xctest" {
            candidates.append(t.bundleURL.deletingLastPathComponent().appendingPathComponent("silt").path)
        }
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        candidates.append(root.appendingPathComponent(".build/debug/silt").path)
        for c in candidates where FileManager.default.isExecutableFile(atPath: c) { return c }
        throw XCTSkipUnlessFailure("""
            the silt executable was not found (looked in \(candidates)). \
            Run `swift build` first: these tests spawn `silt debug ring-peer` as child processes.
            """)
    }

    struct Child {
        let pid: pid_t
        let stdoutFd: Int32
        let label: String
    }

    struct Result {
        let label: String
        let status: Int32
        let fields: [String: String]
        let line: String
    }

    /// posix_spawn `silt debug ring-peer <arguments>` with `ringFd` at fd 100 and stdout piped.
    func spawnPeer(_ arguments: [String], ringFd: Int32, label: String) throws -> Child {
        let binary = try CrossProcessTests.siltBinary()
        var pipeFds: [Int32] = [0, 0]
        XCTAssertEqual(pipe(&pipeFds), 0)
        // Close-on-exec on both ends here; the dup2 to stdout below is what the child gets.
        XCTAssertEqual(silt_fd_set_cloexec(pipeFds[0], 1), 0)
        XCTAssertEqual(silt_fd_set_cloexec(pipeFds[1], 1), 0)
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        // dup2 clears FD_CLOEXEC on the target, so the child inherits exactly these.
        posix_spawn_file_actions_adddup2(&actions, ringFd, CrossProcessTests.childRingFd)
        posix_spawn_file_actions_adddup2(&actions, pipeFds[1], 1)
        let argv = [binary, "debug", "ring-peer"] + arguments + ["--fd", "\(CrossProcessTests.childRingFd)"]
        var cArgs: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) } + [nil]
        defer { cArgs.forEach { free($0) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, binary, &actions, nil, &cArgs, environ)
        close(pipeFds[1])
        guard rc == 0 else {
            close(pipeFds[0])
            throw RingError.system(operation: "posix_spawn \(binary)", errno: rc)
        }
        return Child(pid: pid, stdoutFd: pipeFds[0], label: label)
    }

    /// Waits for every child (killing all of them after `limit`), and parses their summaries.
    func collect(_ children: [Child], limit: Duration) -> [Result] {
        let deadline = ContinuousClock.now + limit
        var statuses = [Int32?](repeating: nil, count: children.count)
        var outputs = [Data](repeating: Data(), count: children.count)
        var buffer = [UInt8](repeating: 0, count: 4096)
        while statuses.contains(where: { $0 == nil }) {
            for (k, c) in children.enumerated() where statuses[k] == nil {
                var status: Int32 = 0
                if waitpid(c.pid, &status, WNOHANG) == c.pid { statuses[k] = status }
            }
            if ContinuousClock.now > deadline {
                for (k, c) in children.enumerated() where statuses[k] == nil {
                    kill(c.pid, SIGKILL)
                    var status: Int32 = 0
                    waitpid(c.pid, &status, 0)
                    statuses[k] = status
                    XCTFail("\(c.label) (pid \(c.pid)) still running after \(limit): killed")
                }
                break
            }
            usleep(20_000)  // the test harness polls child exit; the rings themselves never poll
        }
        for (k, c) in children.enumerated() {
            while true {
                let n = read(c.stdoutFd, &buffer, buffer.count)
                if n <= 0 { break }
                outputs[k].append(contentsOf: buffer[0..<n])
            }
            close(c.stdoutFd)
        }
        return children.enumerated().map { k, c in
            let line = String(decoding: outputs[k], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            var fields: [String: String] = [:]
            for pair in line.split(separator: " ") {
                let kv = pair.split(separator: "=", maxSplits: 1)
                if kv.count == 2 { fields[String(kv[0])] = String(kv[1]) }
            }
            let raw = statuses[k] ?? -1
            // WIFEXITED: low 7 bits zero; exit status in bits 8...15, else report the signal negated.
            let status: Int32 = raw & 0x7f == 0 ? (raw >> 8) & 0xff : -(raw & 0x7f)
            return Result(label: c.label, status: status, fields: fields, line: line)
        }
    }

    func assertExitedCleanly(_ results: [Result]) {
        for r in results {
            XCTAssertEqual(r.status, 0, """
                \(r.label) exited with \(r.status) (negative: killed by that signal); output: '\(r.line)'. \
                If it says the subcommand is unknown, run `swift build` so silt has `debug ring-peer`.
                """)
        }
    }

    /// One writer and two reader processes on a 256 KiB ring: >= 2 million frames of
    /// pseudo-random sizes, verified byte for byte, in order, by both readers.
    func testLogRingAcrossProcesses() throws {
        let frames = 2_000_000
        let seed: UInt64 = 0x5EED_0001
        let fd = try SharedMemory.createMemfd(name: "silt-test-stress")
        defer { close(fd) }
        let ring = try LogRing.create(fd: fd, capacityBytes: 256 * 1024)
        // Start mid-sequence, like a node that restarted from its WAL.
        let startLSN: UInt64 = 1 << 40 | 4088
        ring.initializePositions(to: startLSN)

        let common = ["--frames", "\(frames)", "--seed", "\(seed)"]
        let t0 = ContinuousClock.now
        let children = [
            try spawnPeer(["--role", "reader", "--reader-index", "0"] + common, ringFd: fd, label: "reader 0"),
            try spawnPeer(["--role", "reader", "--reader-index", "1"] + common, ringFd: fd, label: "reader 1"),
            try spawnPeer(["--role", "writer"] + common, ringFd: fd, label: "writer"),
        ]
        let results = collect(children, limit: .seconds(120))
        let elapsed = ContinuousClock.now - t0
        assertExitedCleanly(results)
        guard results.allSatisfy({ $0.status == 0 }) else { return }

        let writer = results[2], r0 = results[0], r1 = results[1]
        for r in results {
            XCTAssertEqual(r.fields["frames"], "\(frames)", r.label)
            XCTAssertEqual(r.fields["bytes"], writer.fields["bytes"], r.label)
            XCTAssertEqual(r.fields["digest"], writer.fields["digest"], "\(r.label) digest")
            XCTAssertEqual(r.fields["lsn"], writer.fields["lsn"], "\(r.label) end lsn")
        }
        XCTAssertNotNil(writer.fields["digest"])
        let endLSN = try XCTUnwrap(UInt64(writer.fields["lsn"] ?? ""))
        XCTAssertEqual(ring.writePosition, endLSN)
        XCTAssertEqual(ring.readPosition(0), endLSN)
        XCTAssertEqual(ring.readPosition(1), endLSN)
        XCTAssertEqual(ring.freeBytes, ring.capacityBytes)
        let ringBytes = endLSN - startLSN
        XCTAssertGreaterThan(ringBytes, UInt64(100 * ring.capacityBytes), "the ring wrapped many times")
        // Constant back-pressure: the readers had to wait and consumed in many small batches.
        let batches = Int(r0.fields["batches"] ?? "") ?? 0
        XCTAssertGreaterThan(batches, 1000)
        XCTAssertGreaterThan(Int(writer.fields["fullWaits"] ?? "") ?? 0, 10, "the writer found the ring full and blocked")

        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        print("""
            LogRing cross-process: \(frames) frames, \(ringBytes) ring bytes in \(String(format: "%.2f", seconds)) s \
            = \(Int(Double(frames) / seconds)) frames/s, \(String(format: "%.1f", Double(ringBytes) / seconds / 1e6)) MB/s; \
            writer: \(writer.line); reader 0: \(r0.line); reader 1: \(r1.line)
            """)
    }

    /// A producer process pushes 1 million control messages through a 64-slot ring; this
    /// process pops and checks each one in order.
    func testControlRingAcrossProcesses() throws {
        let messages = 1_000_000
        let fd = try SharedMemory.createMemfd(name: "silt-test-control-stress")
        defer { close(fd) }
        let ring = try ControlRing.create(fd: fd, slotCount: 64)
        let t0 = ContinuousClock.now
        let producer = try spawnPeer(["--role", "control-producer", "--frames", "\(messages)"], ringFd: fd, label: "control producer")
        var received = 0
        var digest: UInt64 = 0
        var mismatch: String?
        for i in 0..<UInt64(messages) {
            guard let m = ring.pop(timeout: .seconds(20)) else { mismatch = "pop \(i) timed out"; break }
            let expected = ControlMessage(kind: UInt32(i % 3) + 1, flags: UInt32(truncatingIfNeeded: i &* 7), value: i &* 0x1_0001)
            if m != expected { mismatch = "message \(i) is \(m), expected \(expected)"; break }
            digest = splitmixDigest(digest, m.value ^ UInt64(m.kind) << 32 ^ UInt64(m.flags))
            received += 1
        }
        if mismatch != nil { kill(producer.pid, SIGKILL) }
        let results = collect([producer], limit: .seconds(60))
        let elapsed = ContinuousClock.now - t0
        XCTAssertNil(mismatch)
        assertExitedCleanly(results)
        XCTAssertEqual(received, messages)
        XCTAssertNil(ring.tryPop(), "no duplicates")
        XCTAssertEqual(ring.pushedCount, UInt64(messages))
        XCTAssertEqual(ring.poppedCount, UInt64(messages))
        XCTAssertEqual(results[0].fields["frames"], "\(messages)")
        XCTAssertEqual(results[0].fields["digest"], String(digest, radix: 16))
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        print("ControlRing cross-process: \(messages) messages in \(String(format: "%.2f", seconds)) s = \(Int(Double(messages) / seconds)) msg/s; producer: \(results[0].line)")
    }

    /// The same digest as `StressDigest.mix` in Sources/silt/Debug.swift.
    func splitmixDigest(_ a: UInt64, _ b: UInt64) -> UInt64 {
        var z = (a ^ b) &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return (z ^ (z >> 31)) &* 0x100_0000_01B3
    }
}

/// A test failure that names what to do (XCTest on Linux has no XCTSkip for a missing tool
/// that should be there, so this fails rather than skips).
struct XCTSkipUnlessFailure: Error, CustomStringConvertible {
    let description: String
    init(_ message: String) { description = message }
}
