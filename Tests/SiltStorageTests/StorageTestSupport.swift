import Foundation
import NIOCore
import SiltRecords
import XCTest
@testable import SiltStorage

let baseTimeMs: Int64 = 1_700_000_000_000

func makeRecords(count: Int, timestamp: Int64 = baseTimeMs, valueBytes: Int = 16, tag: String = "") -> ByteBuffer {
    var builder = RecordBatchBuilder()
    for i in 0..<count {
        builder.append(key: Array("key-\(tag)-\(i)".utf8), value: [UInt8](repeating: UInt8(i & 0xFF), count: valueBytes),
                       timestamp: timestamp + Int64(i))
    }
    return builder.build()
}

final class TestDirectory {
    let path: String
    init() {
        path = NSTemporaryDirectory() + "silt-storage-\(UUID().uuidString)"
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }
}
