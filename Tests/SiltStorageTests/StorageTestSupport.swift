import Foundation
import Logging
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

/// Collects onDurable results and waits for them.
final class DurableWaiter: @unchecked Sendable {
    private let condition = NSCondition()
    private var results: [Result<Void, Error>] = []

    var callback: @Sendable (Result<Void, Error>) -> Void {
        { result in
            self.condition.lock()
            self.results.append(result)
            self.condition.broadcast()
            self.condition.unlock()
        }
    }

    /// Waits until `count` results arrived (bounded by `timeoutSeconds`) and returns them.
    func wait(for count: Int, timeoutSeconds: Double = 10) -> [Result<Void, Error>] {
        let deadline = Date().addingTimeInterval(timeoutSeconds)
        condition.lock()
        defer { condition.unlock() }
        while results.count < count && condition.wait(until: deadline) {}
        return results
    }
}

extension XCTestCase {
    func makeManager(_ dir: TestDirectory, segmentBytes: Int = 1 << 30,
                     configure: (inout StorageConfig) -> Void = { _ in }) throws -> LogManager {
        var config = StorageConfig(logDir: dir.path, segmentBytes: segmentBytes)
        config.indexIntervalBytes = 256
        configure(&config)
        var logger = Logger(label: "silt.storage.test")
        logger.logLevel = .critical
        return try LogManager(config: config, logger: logger)
    }

    /// Validates and appends, waits for durability, returns the AppendInfo.
    @discardableResult
    func appendDurably(_ log: PartitionLog, _ records: ByteBuffer, logAppendTime: Bool = false,
                       file: StaticString = #filePath, line: UInt = #line) throws -> AppendInfo {
        let headers = try validateProducedRecords(records, maxMessageBytes: 1 << 24, timestampType: .createTime, nowMs: baseTimeMs)
        let waiter = DurableWaiter()
        let info = try log.append(records, batches: headers, logAppendTime: logAppendTime, nowMs: baseTimeMs + 999,
                                  onDurable: waiter.callback)
        let results = waiter.wait(for: 1)
        XCTAssertEqual(results.count, 1, "onDurable not called", file: file, line: line)
        if case .failure(let error)? = results.first { XCTFail("onDurable failed: \(error)", file: file, line: line) }
        return info
    }

    /// Reads everything from `offset` to the high watermark, batch by batch, returning the headers.
    func readAll(_ log: PartitionLog, from offset: Int64 = 0) throws -> [RecordBatchHeader] {
        var result: [RecordBatchHeader] = []
        var next = max(offset, log.logStartOffset)
        while next < log.highWatermark {
            let buffer = try log.read(from: next, maxBytes: 1 << 20, minOneBatch: true)
            let headers = try parseBatchHeaders(buffer)
            XCTAssertFalse(headers.isEmpty)
            for header in headers {
                XCTAssertTrue(header.isCRCValid(in: buffer), "CRC of stored batch at \(header.baseOffset)")
            }
            result += headers
            next = headers.last!.nextOffset
        }
        return result
    }
}
