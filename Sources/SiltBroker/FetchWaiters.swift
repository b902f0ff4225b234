import Foundation
import NIOCore

struct PartitionKey: Hashable, Sendable {
    let topic: String
    let partition: Int32
}

/// Long-poll fetches parked until data arrives or their wait runs out.
///
/// A waiter registers for the partitions it reads. When a partition's high watermark
/// advances (new durable data), the waiters on it are woken on their own event loop and
/// re-run their fetch. Each waiter fires at most once per registration.
final class FetchWaiters: @unchecked Sendable {
    final class Waiter: @unchecked Sendable {
        let eventLoop: EventLoop
        let keys: [PartitionKey]
        let wake: () -> Void
        init(eventLoop: EventLoop, keys: [PartitionKey], wake: @escaping () -> Void) {
            self.eventLoop = eventLoop; self.keys = keys; self.wake = wake
        }
    }

    private let lock = NSLock()
    private var byKey: [PartitionKey: [ObjectIdentifier: Waiter]] = [:]

    func register(_ waiter: Waiter) {
        lock.withLock {
            for k in waiter.keys { byKey[k, default: [:]][ObjectIdentifier(waiter)] = waiter }
        }
    }

    func unregister(_ waiter: Waiter) {
        lock.withLock {
            for k in waiter.keys {
                byKey[k]?.removeValue(forKey: ObjectIdentifier(waiter))
                if byKey[k]?.isEmpty == true { byKey.removeValue(forKey: k) }
            }
        }
    }

    /// Called (from any thread) when `key` has new durable data.
    func notify(_ key: PartitionKey) {
        let waiters: [Waiter] = lock.withLock { byKey[key].map { Array($0.values) } ?? [] }
        for w in waiters { w.eventLoop.execute { w.wake() } }
    }

    /// Wakes everyone reading any partition of `topic` (the topic was deleted).
    func notifyTopic(_ topic: String) {
        let waiters: [Waiter] = lock.withLock {
            byKey.filter { $0.key.topic == topic }.flatMap { $0.value.values }
        }
        for w in waiters { w.eventLoop.execute { w.wake() } }
    }
}
