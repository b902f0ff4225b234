#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import SiltRaft
import XCTest

/// Runs the deterministic simulation over many seeds. Environment:
/// - `RAFT_SIM_SEEDS` (default 500), `RAFT_SIM_FIRST_SEED` (default 1): the seeds `testSeeds` runs;
/// - `RAFT_SIM_SEED`: the seed `testReplaySeed` replays (twice, comparing trace hashes);
/// - `RAFT_SIM_FAULT_MS`: length of the fault phase (default 3000 simulated ms);
/// - `RAFT_SIM_VERBOSE=1`: print every event of a replay.
final class RaftSimulationTests: XCTestCase {
    private static let environment = ProcessInfo.processInfo.environment

    private var options: SimulationOptions {
        var options = SimulationOptions()
        if let ms = Self.environment["RAFT_SIM_FAULT_MS"].flatMap(Int64.init) { options.faultPhaseMs = ms }
        return options
    }

    func testSeeds() {
        let count = Self.environment["RAFT_SIM_SEEDS"].flatMap(UInt64.init) ?? 500
        let first = Self.environment["RAFT_SIM_FIRST_SEED"].flatMap(UInt64.init) ?? 1
        let started = Date()
        var steps = 0, elections = 0, crashes = 0, installs = 0, committed: Int64 = 0
        var livenessMs: [Int64] = []
        for seed in first..<(first + count) {
            CrashReplayLine.set(seed: seed)
            do {
                let result = try RaftSimulation(seed: seed, options: options).run()
                steps += result.steps
                elections += result.elections
                crashes += result.crashes
                installs += result.snapshotInstalls
                committed += result.committedOffset
                livenessMs.append(result.livenessAfterHealMs)
            } catch {
                XCTFail("\(error)\n\(CrashReplayLine.text(seed: seed))")
                return
            }
        }
        CrashReplayLine.clear()
        livenessMs.sort()
        let seconds = Date().timeIntervalSince(started)
        print(String(format: "raft-sim: seeds %llu..%llu passed in %.1f s: %d steps, %d elections, %d crashes, "
                     + "%d snapshot installs, %lld records committed; heal→commit ms p50 %lld p99 %lld max %lld",
                     first, first + count - 1, seconds, steps, elections, crashes, installs, committed,
                     livenessMs[livenessMs.count / 2], livenessMs[livenessMs.count * 99 / 100], livenessMs.last!))
    }

    /// `RAFT_SIM_SEED=N swift test --filter SiltRaftTests.RaftSimulationTests/testReplaySeed`
    func testReplaySeed() throws {
        guard let seed = Self.environment["RAFT_SIM_SEED"].flatMap(UInt64.init) else {
            throw XCTSkip("set RAFT_SIM_SEED to replay one seed")
        }
        var verbose = options
        verbose.verbose = Self.environment["RAFT_SIM_VERBOSE"] == "1"
        CrashReplayLine.set(seed: seed)
        defer { CrashReplayLine.clear() }
        let first = Result { try RaftSimulation(seed: seed, options: verbose).run() }
        let second = Result { try RaftSimulation(seed: seed, options: options).run() }
        switch (first, second) {
        case let (.success(a), .success(b)):
            XCTAssertEqual(a.traceHash, b.traceHash, "seed \(seed) did not replay identically")
            print("raft-sim: seed \(seed) passed, \(a.steps) steps, trace \(String(a.traceHash, radix: 16))")
        case let (.failure(a), .failure(b)):
            XCTAssertEqual("\(a)", "\(b)", "seed \(seed) failed differently on replay")
            XCTFail("\(a)")
        default:
            XCTFail("seed \(seed) passed once and failed once: \(first) / \(second)")
        }
    }

    /// The same seed gives the same trace; another seed gives another.
    func testRunsAreDeterministic() throws {
        let a = try RaftSimulation(seed: 42).run()
        let b = try RaftSimulation(seed: 42).run()
        let c = try RaftSimulation(seed: 43).run()
        XCTAssertEqual(a.traceHash, b.traceHash)
        XCTAssertEqual(a.steps, b.steps)
        XCTAssertNotEqual(a.traceHash, c.traceHash)
    }
}

/// A precondition failure inside the core kills the test process before XCTest can report;
/// a signal handler prints the replay line for the seed that was running.
enum CrashReplayLine {
    private static let capacity = 256
    nonisolated(unsafe) private static let buffer: UnsafeMutablePointer<CChar> = {
        let b = UnsafeMutablePointer<CChar>.allocate(capacity: capacity)
        b.initialize(repeating: 0, count: capacity)
        for sig in [SIGILL, SIGTRAP, SIGABRT, SIGSEGV] {
            signal(sig) { sig in
                _ = write(2, CrashReplayLine.buffer, strlen(CrashReplayLine.buffer))
                signal(sig, SIG_DFL)
                raise(sig)
            }
        }
        return b
    }()

    static func text(seed: UInt64) -> String {
        "replay: RAFT_SIM_SEED=\(seed) swift test --filter SiltRaftTests.RaftSimulationTests/testReplaySeed"
    }

    static func set(seed: UInt64) {
        let line = "\n" + text(seed: seed) + "\n"
        _ = line.withCString { strncpy(buffer, $0, capacity - 1) }
    }

    static func clear() { buffer[0] = 0 }
}
