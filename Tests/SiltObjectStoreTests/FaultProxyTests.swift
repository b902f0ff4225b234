import Foundation
import Logging
import XCTest
@testable import SiltObjectStore

/// S3ObjectStore through tools/s3-fault-proxy.py (20% faults of every kind) in front of
/// moto: every put and get must still succeed byte for byte, thanks to retries.
final class FaultProxyTests: XCTestCase {
    func testRetriesThroughFaultyProxy() async throws {
        let moto = try MotoServer.get()
        let statsFile = NSTemporaryDirectory() + "silt-fault-stats-\(UUID().uuidString).json"
        let proxy = Process()
        proxy.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        proxy.arguments = ["python3", TestSupport.repoRoot + "/tools/s3-fault-proxy.py", "--upstream", moto.endpoint,
                           "--port", "0", "--fault-rate", "0.2", "--seed", "42", "--max-latency-ms", "200",
                           "--stats-file", statsFile]
        let out = Pipe()
        proxy.standardOutput = out
        try proxy.run()
        defer {
            // SIGKILL: the test runner may block SIGTERM in the children it spawns.
            kill(proxy.processIdentifier, SIGKILL)
            proxy.waitUntilExit()
            try? FileManager.default.removeItem(atPath: statsFile)
        }
        // First line: "LISTENING <port>".
        var line = Data()
        while !line.contains(UInt8(ascii: "\n")) {
            let d = out.fileHandleForReading.availableData
            if d.isEmpty { break }
            line += d
        }
        let text = String(decoding: line, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        let port = try XCTUnwrap(text.split(separator: " ").last.flatMap { Int($0) }, "proxy said: \(text)")

        var cfg = moto.config(endpoint: "http://127.0.0.1:\(port)")
        cfg.maxRetries = 12
        cfg.retryBaseDelayMs = 5
        cfg.retryMaxDelayMs = 100
        cfg.requestTimeoutMs = 5_000
        let store = try S3ObjectStore(config: cfg, logger: Logger(label: "silt.objectstore.faults"))
        let prefix = "faults-\(UUID().uuidString.prefix(8))/"
        let count = 200
        var bodies: [[UInt8]] = []
        for i in 0..<count { bodies.append(TestSupport.randomBytes(i % 10 == 0 ? 0 : Int.random(in: 1...96 * 1024))) }
        let payloads = bodies

        // 200 puts, 16 at a time.
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<count {
                if i >= 16 { try await group.next() }
                group.addTask {
                    let etag = try await store.put(prefix + "o\(i)", payloads[i], ifNoneMatch: false)
                    XCTAssertEqual(etag, SigV4.hex(SigV4.md5(payloads[i])), "ETag of o\(i)")
                }
            }
            try await group.waitForAll()
        }
        // 200 gets, 16 at a time, compared byte for byte.
        try await withThrowingTaskGroup(of: (Int, [UInt8]).self) { group in
            var mismatches = 0
            for i in 0..<count {
                if i >= 16, let (j, got) = try await group.next() { if got != payloads[j] { mismatches += 1 } }
                group.addTask { (i, try await store.get(prefix + "o\(i)", range: nil)) }
            }
            for try await (j, got) in group where got != payloads[j] { mismatches += 1 }
            XCTAssertEqual(mismatches, 0, "objects read back differ")
        }

        // The proxy rewrites the file after it has answered a request, so the last answers'
        // counts can land a moment after the client has them: read until the counts add up
        // (or 5 s pass, and the assertions below say what is missing).
        let kinds = ["latency", "500", "503", "reset", "truncate"]
        func readStats() throws -> [String: Int] {
            try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: statsFile))) as? [String: Int])
        }
        func complete(_ s: [String: Int]) -> Bool {
            (s["requests"] ?? 0) >= 2 * count + kinds.reduce(0) { $0 + (s[$1] ?? 0) } - (s["latency"] ?? 0)
        }
        var stats = try readStats()
        let deadline = Date().addingTimeInterval(5)
        while !complete(stats) && Date() < deadline {
            try await Task.sleep(nanoseconds: 50_000_000)
            stats = try readStats()
        }
        let total = kinds.reduce(0) { $0 + (stats[$1] ?? 0) }
        for k in kinds { XCTAssertGreaterThan(stats[k] ?? 0, 0, "fault kind \(k) never injected: \(stats)") }
        XCTAssertGreaterThan(total, 20, "\(stats)")
        XCTAssertGreaterThanOrEqual(stats["requests"] ?? 0, 2 * count + total - (stats["latency"] ?? 0))
        print("fault proxy stats: \(stats)")
    }
}
