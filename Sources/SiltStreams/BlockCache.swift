// The read path's byte-bounded LRU of data blocks fetched from S3, so catching-up readers
// pay one range GET per block, not one per fetch.

import Foundation

/// A byte-bounded LRU of data blocks keyed by (objectId, position). Thread-safe.
///
/// `usedBytes <= capacityBytes` always; a block bigger than the capacity is not cached.
public final class BlockCache: @unchecked Sendable {
    struct Key: Hashable {
        var objectId: UInt64
        var position: Int64
    }

    public let capacityBytes: Int
    private let lock = NSLock()
    private var lru = LRUMap<Key, [UInt8]>()
    private var hitCount = 0
    private var missCount = 0
    private var evictionCount = 0

    public init(capacityBytes: Int) {
        precondition(capacityBytes >= 0)
        self.capacityBytes = capacityBytes
    }

    public func get(objectId: UInt64, position: Int64) -> [UInt8]? {
        lock.withLock {
            let v = lru.get(Key(objectId: objectId, position: position))
            if v == nil { missCount += 1 } else { hitCount += 1 }
            return v
        }
    }

    /// Whether the block is cached, without touching its recency or the counters.
    public func contains(objectId: UInt64, position: Int64) -> Bool {
        lock.withLock { lru.contains(Key(objectId: objectId, position: position)) }
    }

    public func put(objectId: UInt64, position: Int64, bytes: [UInt8]) {
        lock.withLock {
            let key = Key(objectId: objectId, position: position)
            lru.remove(key)
            guard bytes.count <= capacityBytes else { return }
            while lru.totalWeight + bytes.count > capacityBytes {
                lru.removeLeastRecent()
                evictionCount += 1
            }
            lru.insert(key, bytes, weight: bytes.count)
            assert(lru.totalWeight <= capacityBytes)
        }
    }

    public var hits: Int { lock.withLock { hitCount } }
    public var misses: Int { lock.withLock { missCount } }
    public var evictions: Int { lock.withLock { evictionCount } }
    public var usedBytes: Int { lock.withLock { lru.totalWeight } }
    public var count: Int { lock.withLock { lru.count } }
}

/// A least-recently-used map with weights, on an array-backed doubly linked list.
/// Not thread-safe: callers lock. The caller bounds it (evicts before inserting).
struct LRUMap<Key: Hashable, Value> {
    private struct Node {
        var key: Key
        var value: Value?
        var weight: Int
        var prev: Int
        var next: Int
    }

    private var nodes: [Node] = []
    private var freeSlots: [Int] = []
    private var slots: [Key: Int] = [:]
    private var head = -1  // most recently used
    private var tail = -1  // least recently used
    private(set) var totalWeight = 0
    var count: Int { slots.count }

    func contains(_ key: Key) -> Bool { slots[key] != nil }

    /// The value, made most recently used.
    mutating func get(_ key: Key) -> Value? {
        guard let i = slots[key] else { return nil }
        unlink(i)
        pushFront(i)
        return nodes[i].value
    }

    /// Inserts (or replaces) as most recently used.
    mutating func insert(_ key: Key, _ value: Value, weight: Int) {
        remove(key)
        let node = Node(key: key, value: value, weight: weight, prev: -1, next: -1)
        let i: Int
        if let f = freeSlots.popLast() {
            nodes[f] = node
            i = f
        } else {
            nodes.append(node)
            i = nodes.count - 1
        }
        slots[key] = i
        pushFront(i)
        totalWeight += weight
    }

    mutating func remove(_ key: Key) {
        guard let i = slots.removeValue(forKey: key) else { return }
        release(i)
    }

    /// Removes and returns the least recently used key.
    @discardableResult
    mutating func removeLeastRecent() -> Key? {
        guard tail >= 0 else { return nil }
        let i = tail
        let key = nodes[i].key
        slots[key] = nil
        release(i)
        return key
    }

    private mutating func release(_ i: Int) {
        unlink(i)
        totalWeight -= nodes[i].weight
        nodes[i].value = nil  // free the memory now, not when the slot is reused
        freeSlots.append(i)
    }

    private mutating func unlink(_ i: Int) {
        let (p, n) = (nodes[i].prev, nodes[i].next)
        if p >= 0 { nodes[p].next = n } else { head = n }
        if n >= 0 { nodes[n].prev = p } else { tail = p }
        nodes[i].prev = -1
        nodes[i].next = -1
    }

    private mutating func pushFront(_ i: Int) {
        nodes[i].next = head
        if head >= 0 { nodes[head].prev = i }
        head = i
        if tail < 0 { tail = i }
    }
}
