// BlockCache: LRU order, the byte bound, counters, and concurrent use.

import XCTest
@testable import SiltStreams

final class BlockCacheTests: XCTestCase {
    func testLRUEvictionAndCounters() {
        let c = BlockCache(capacityBytes: 300)
        c.put(objectId: 1, position: 0, bytes: [UInt8](repeating: 1, count: 100))
        c.put(objectId: 1, position: 100, bytes: [UInt8](repeating: 2, count: 100))
        c.put(objectId: 2, position: 0, bytes: [UInt8](repeating: 3, count: 100))
        XCTAssertEqual(c.usedBytes, 300)
        XCTAssertEqual(c.get(objectId: 1, position: 0)?.first, 1)  // now most recent
        c.put(objectId: 3, position: 0, bytes: [UInt8](repeating: 4, count: 150))  // evicts (1,100) and (2,0)
        XCTAssertNil(c.get(objectId: 1, position: 100))
        XCTAssertNil(c.get(objectId: 2, position: 0))
        XCTAssertEqual(c.get(objectId: 1, position: 0)?.count, 100)
        XCTAssertEqual(c.get(objectId: 3, position: 0)?.count, 150)
        XCTAssertEqual(c.evictions, 2)
        XCTAssertEqual(c.hits, 3)
        XCTAssertEqual(c.misses, 2)
        XCTAssertEqual(c.usedBytes, 250)
        // Replacing a key does not double count.
        c.put(objectId: 3, position: 0, bytes: [UInt8](repeating: 5, count: 50))
        XCTAssertEqual(c.usedBytes, 150)
        XCTAssertEqual(c.count, 2)
    }

    func testItemBiggerThanCapacityIsNotCached() {
        let c = BlockCache(capacityBytes: 100)
        c.put(objectId: 1, position: 0, bytes: [UInt8](repeating: 0, count: 60))
        c.put(objectId: 1, position: 60, bytes: [UInt8](repeating: 0, count: 101))
        XCTAssertNil(c.get(objectId: 1, position: 60))
        XCTAssertNotNil(c.get(objectId: 1, position: 0))  // and nothing was evicted for it
        XCTAssertEqual(c.usedBytes, 60)
    }

    func testConcurrentUseStaysWithinCapacity() async {
        let c = BlockCache(capacityBytes: 10_000)
        await withTaskGroup(of: Void.self) { g in
            for t in 0..<8 {
                g.addTask {
                    for i in 0..<2000 {
                        let pos = Int64((i * 7 + t) % 300)
                        if let v = c.get(objectId: 1, position: pos) {
                            XCTAssertEqual(v.count, Int(pos) % 97 + 1)
                        } else {
                            c.put(objectId: 1, position: pos, bytes: [UInt8](repeating: 0, count: Int(pos) % 97 + 1))
                        }
                        XCTAssertLessThanOrEqual(c.usedBytes, 10_000)
                    }
                }
            }
        }
        XCTAssertEqual(c.hits + c.misses, 16_000)
        XCTAssertGreaterThan(c.evictions, 0)
    }
}
