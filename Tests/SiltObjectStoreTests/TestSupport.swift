import Foundation
import XCTest
@testable import SiltObjectStore

/// Paths and small process helpers shared by the tests.
enum TestSupport {
    static let repoRoot: String = {
        // .../Tests/SiltObjectStoreTests/TestSupport.swift → repo root
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path
    }()

    static var python: String {
        let venv = repoRoot + "/.venv/bin/python"
        return FileManager.default.isExecutableFile(atPath: venv) ? venv : "/usr/bin/python3"
    }

    /// Runs a command to completion; returns (status, stdout, stderr).
    @discardableResult
    static func run(_ argv: [String], stdin: Data? = nil, env: [String: String]? = nil) throws -> (Int32, String, String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: argv[0])
        p.arguments = Array(argv.dropFirst())
        if let env { p.environment = env }
        let out = Pipe(), err = Pipe(), inp = Pipe()
        p.standardOutput = out
        p.standardError = err
        p.standardInput = inp
        try p.run()
        if let stdin { inp.fileHandleForWriting.write(stdin) }
        try inp.fileHandleForWriting.close()
        // Read both pipes concurrently so neither fills up.
        var errData = Data()
        let g = DispatchGroup()
        g.enter()
        DispatchQueue.global().async { errData = err.fileHandleForReading.readDataToEndOfFile(); g.leave() }
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        g.wait()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: outData, as: UTF8.self), String(decoding: errData, as: UTF8.self))
    }

    static func randomBytes(_ n: Int) -> [UInt8] {
        var g = SystemRandomNumberGenerator()
        var out = [UInt8](repeating: 0, count: n)
        out.withUnsafeMutableBytes { buf in
            var i = 0
            while i + 8 <= n { buf.storeBytes(of: g.next() as UInt64, toByteOffset: i, as: UInt64.self); i += 8 }
            while i < n { buf[i] = UInt8.random(in: 0...255, using: &g); i += 1 }
        }
        return out
    }
}

/// A moto server started with tools/moto-server (SigV4 enforced); one per process.
final class MotoServer: @unchecked Sendable {
    let endpoint: String
    let accessKey: String
    let secretKey: String
    let region: String
    let pidFile: String
    static let bucket = "silt-test"

    private static let lock = NSLock()
    private static var shared: MotoServer?
    private static var startError: String?

    /// The shared server, started on first use and stopped at process exit.
    static func get() throws -> MotoServer {
        lock.lock()
        defer { lock.unlock() }
        if let s = shared { return s }
        if let e = startError { throw XCTSkip(e) }
        let envFile = NSTemporaryDirectory() + "silt-moto-\(getpid()).env"
        let pidFile = NSTemporaryDirectory() + "silt-moto-\(getpid()).pid"
        let (status, out, err) = try TestSupport.run(
            ["/usr/bin/env", "python3", TestSupport.repoRoot + "/tools/moto-server", "--port", "0",
             "--env-file", envFile, "--pid-file", pidFile, "--watch-pid", String(getpid()), bucket])
        guard status == 0 else {
            if err.contains("No matching distribution") || err.contains("Could not find a version") || err.contains("pip") && err.contains("rror") {
                startError = "moto cannot be installed (pip failed), skipping the S3 half: \(err.suffix(400))"
                throw XCTSkip(startError!)
            }
            throw NSError(domain: "moto-server", code: Int(status), userInfo: [NSLocalizedDescriptionKey: "moto-server failed: \(out) \(err)"])
        }
        var kv: [String: String] = [:]
        for line in out.split(separator: "\n") {
            let p = line.split(separator: "=", maxSplits: 1)
            if p.count == 2 { kv[String(p[0])] = String(p[1]) }
        }
        let s = MotoServer(endpoint: kv["S3_ENDPOINT"]!, accessKey: kv["AWS_ACCESS_KEY_ID"]!,
                           secretKey: kv["AWS_SECRET_ACCESS_KEY"]!, region: kv["AWS_REGION"]!, pidFile: pidFile)
        shared = s
        atexit {
            if let s = MotoServer.shared {
                _ = try? TestSupport.run(["/usr/bin/env", "python3", TestSupport.repoRoot + "/tools/moto-server",
                                          "--stop", "--pid-file", s.pidFile])
            }
        }
        return s
    }

    private init(endpoint: String, accessKey: String, secretKey: String, region: String, pidFile: String) {
        self.endpoint = endpoint
        self.accessKey = accessKey
        self.secretKey = secretKey
        self.region = region
        self.pidFile = pidFile
    }

    func config(bucket: String = MotoServer.bucket, endpoint: String? = nil, accessKey: String? = nil,
                secretKey: String? = nil) -> S3Config {
        S3Config(endpoint: endpoint ?? self.endpoint, scheme: "http", region: region, bucket: bucket,
                 accessKey: accessKey ?? self.accessKey, secretKey: secretKey ?? self.secretKey,
                 pathStyle: true, maxRetries: 5, requestTimeoutMs: 20_000, connectTimeoutMs: 2_000,
                 retryBaseDelayMs: 10, retryMaxDelayMs: 200, unsignedPayload: false)
    }
}
