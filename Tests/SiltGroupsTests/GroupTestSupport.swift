import Foundation
import NIOCore
import SiltGroups
import XCTest

/// A clock tests move by hand.
final class ManualClock: @unchecked Sendable {
    private let lock = NSLock()
    private var ms: Int64 = 1_000_000
    var now: Int64 { lock.withLock { ms } }
    func advance(_ delta: Int64) { lock.withLock { ms += delta } }
}

/// `__consumer_offsets` in memory: records per partition, in append order. With `hold`,
/// appends wait until `release()` (a slow WAL); with `failing`, they fail.
final class MemoryOffsetsTopic: GroupPersistence, @unchecked Sendable {
    private let lock = NSLock()
    private(set) var partitions: [Int32: [GroupRecord]] = [:]
    var hold = false
    var failing = false
    private var held: [() -> Void] = []

    struct Failure: Error {}

    func append(partition: Int32, records: [GroupRecord], completion: @escaping @Sendable (Error?) -> Void) {
        let finish: () -> Void = { [self] in
            if failing { return completion(Failure()) }
            lock.withLock { partitions[partition, default: []].append(contentsOf: records) }
            completion(nil)
        }
        let parked = lock.withLock { () -> Bool in
            if hold { held.append(finish) }
            return hold
        }
        if !parked { finish() }
    }

    func release() {
        let work = lock.withLock { () -> [() -> Void] in
            hold = false
            defer { held = [] }
            return held
        }
        for w in work { w() }
    }

    var allRecords: [(Int32, GroupRecord)] {
        lock.withLock { partitions.keys.sorted().flatMap { p in partitions[p]!.map { (p, $0) } } }
    }
}

/// Collects asynchronous answers.
final class Box<T>: @unchecked Sendable {
    private let lock = NSLock()
    private var values: [T] = []
    func put(_ v: T) { lock.withLock { values.append(v) } }
    var all: [T] { lock.withLock { values } }
    var last: T? { all.last }
}

let consumerProtocols: [(name: String, metadata: [UInt8])] = [(name: "range", metadata: [0, 1]), (name: "roundrobin", metadata: [0, 2])]

struct Harness {
    let clock = ManualClock()
    let topic = MemoryOffsetsTopic()
    let coordinator: GroupCoordinator

    init(initialDelayMs: Int64 = 0, partitions: Int32 = 4, maxSize: Int = Int(Int32.max), loading: Set<Int32> = []) {
        var config = GroupCoordinatorConfig()
        config.initialRebalanceDelayMs = initialDelayMs
        config.offsetsPartitions = partitions
        config.maxSize = maxSize
        let clock = self.clock
        coordinator = GroupCoordinator(config: config, persistence: topic, loading: loading, clock: { clock.now })
    }

    func join(_ group: String = "g", memberId: String = "", instance: String? = nil,
              protocols: [(name: String, metadata: [UInt8])] = consumerProtocols,
              session: Int32 = 10_000, rebalance: Int32 = 30_000) -> Box<JoinResult> {
        let box = Box<JoinResult>()
        coordinator.join(JoinRequest(groupId: group, memberId: memberId, groupInstanceId: instance, protocols: protocols,
                                     sessionTimeoutMs: session, rebalanceTimeoutMs: rebalance)) { box.put($0) }
        return box
    }

    /// A dynamic member's two-step join (KIP-394); returns the parked second JoinGroup.
    func joinNew(_ group: String = "g", protocols: [(name: String, metadata: [UInt8])] = consumerProtocols,
                 session: Int32 = 10_000, rebalance: Int32 = 30_000) -> (String, Box<JoinResult>) {
        let first = join(group, protocols: protocols, session: session, rebalance: rebalance)
        let r = first.last!
        XCTAssertEqual(r.error, GroupErrorCode.memberIdRequired)
        return (r.memberId, join(group, memberId: r.memberId, protocols: protocols, session: session, rebalance: rebalance))
    }

    func sync(_ group: String = "g", generation: Int32, memberId: String, instance: String? = nil,
              assignments: [String: [UInt8]] = [:]) -> Box<SyncResult> {
        let box = Box<SyncResult>()
        coordinator.sync(SyncRequest(groupId: group, generationId: generation, memberId: memberId, groupInstanceId: instance,
                                     assignments: assignments)) { box.put($0) }
        return box
    }

    func commit(_ group: String = "g", generation: Int32, memberId: String, instance: String? = nil,
                _ offsets: [TopicPartition: Int64], metadata: String = "") -> Box<Int16> {
        let box = Box<Int16>()
        let now = clock.now
        coordinator.commitOffsets(groupId: group, generationId: generation, memberId: memberId, groupInstanceId: instance,
                                  offsets: offsets.mapValues { CommittedOffset(offset: $0, metadata: metadata, commitTimestampMs: now) },
                                  version: 8) { box.put($0) }
        return box
    }

    func fetch(_ group: String = "g", _ partitions: [TopicPartition]? = nil, stable: Bool = false) -> [TopicPartition: Int64] {
        var out: [TopicPartition: Int64] = [:]
        for f in coordinator.fetchOffsets(groupId: group, partitions: partitions, requireStable: stable).1 {
            out[f.partition] = f.offset?.offset ?? -1
        }
        return out
    }

    func advance(_ ms: Int64) {
        clock.advance(ms)
        coordinator.tick()
    }
}
