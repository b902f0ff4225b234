import CSupport
import Foundation

/// An HTTP/1.1 client on one libcurl multi handle, driven by one dedicated thread.
///
///     callers (async) ──append──▶ pending ──(≤ maxInFlight)──▶ multi handle ──▶ sockets
///            ▲                                                   │ done
///            └───────────── continuation.resume(outcome) ◀───────┘
///
/// The multi handle owns the keep-alive connection cache, so consecutive requests to the
/// same host reuse connections. At most `maxInFlight` transfers run at once; the rest wait
/// in `pending`. Every transfer has a connect and a total timeout, so every continuation
/// is resumed.
final class CurlEngine: @unchecked Sendable {
    struct Request {
        var method: String
        var url: String
        var headers: [(String, String)]
        var body: [UInt8]
        var connectTimeoutMs: Int
        var totalTimeoutMs: Int
    }

    struct Response {
        var status: Int
        /// Lowercased header names.
        var headers: [String: String]
        var body: [UInt8]
    }

    enum Outcome {
        case response(Response)
        /// A transfer failure: a CURLcode (timeout, reset, truncated body...) and curl's detail.
        case failure(code: Int32, detail: String)
    }

    static let maxInFlightDefault = 32

    private let multi: OpaquePointer
    private let maxInFlight: Int
    private let lock = NSLock()
    // Guarded by `lock`.
    private var pending: [(OpaquePointer, CheckedContinuation<Outcome, Never>)] = []
    private var stopping = false
    // Owned by the loop thread only.
    private var inFlight: [UInt64: CheckedContinuation<Outcome, Never>] = [:]
    private var nextTag: UInt64 = 1
    private var thread: Thread?
    private let stopped = DispatchSemaphore(value: 0)

    init(maxInFlight: Int = CurlEngine.maxInFlightDefault) throws {
        precondition(maxInFlight > 0)
        silt_curl_global_init()
        guard let m = silt_multi_new(maxInFlight) else { throw ObjectStoreError.transport("curl_multi_init failed") }
        self.multi = m
        self.maxInFlight = maxInFlight
        // The thread holds the engine strongly until `shutdown()` ends the loop (the owner,
        // S3ObjectStore, calls it from its deinit).
        let t = Thread { self.loop() }
        t.name = "silt-s3-curl"
        self.thread = t
        t.start()
    }

    /// Stops the loop thread; transfers still queued or running fail with a transport error.
    func shutdown() {
        lock.lock()
        let already = stopping
        stopping = true
        lock.unlock()
        if already { return }
        silt_multi_wakeup(multi)
        stopped.wait()
        silt_multi_free(multi)
    }

    func perform(_ request: Request) async -> Outcome {
        guard let h = silt_http_new() else { return .failure(code: -1, detail: "out of memory") }
        var ok = silt_http_set_url(h, request.url) == 0
        // Set the body first: set_method points POSTFIELDS at the copy.
        request.body.withUnsafeBufferPointer { buf in
            ok = ok && silt_http_set_body(h, buf.baseAddress, buf.count) == 0
        }
        ok = ok && silt_http_set_method(h, request.method) == 0
        for (name, value) in request.headers {
            ok = ok && silt_http_add_header(h, "\(name): \(value)") == 0
        }
        if request.method == "PUT" || request.method == "POST" {
            // No 100-continue round trip; never let curl add a form content type.
            ok = ok && silt_http_add_header(h, "Expect:") == 0
            if !request.headers.contains(where: { $0.0.lowercased() == "content-type" }) {
                ok = ok && silt_http_add_header(h, "Content-Type: application/octet-stream") == 0
            }
        }
        ok = ok && silt_http_set_timeouts(h, request.connectTimeoutMs, request.totalTimeoutMs) == 0
        if !ok {
            silt_http_free(h)
            return .failure(code: -1, detail: "could not configure the request")
        }
        return await withCheckedContinuation { (c: CheckedContinuation<Outcome, Never>) in
            lock.lock()
            if stopping {
                lock.unlock()
                silt_http_free(h)
                c.resume(returning: .failure(code: -1, detail: "client shut down"))
                return
            }
            pending.append((h, c))
            lock.unlock()
            silt_multi_wakeup(multi)
        }
    }

    private func loop() {
        var running: Int32 = 0
        while true {
            lock.lock()
            let stop = stopping
            var admitted: [(OpaquePointer, CheckedContinuation<Outcome, Never>)] = []
            if !stop {
                let room = maxInFlight - inFlight.count
                if room > 0 && !pending.isEmpty {
                    let n = min(room, pending.count)
                    admitted = Array(pending.prefix(n))
                    pending.removeFirst(n)
                }
            }
            lock.unlock()
            if stop { break }
            for (h, c) in admitted {
                let tag = nextTag
                nextTag += 1
                silt_http_set_tag(h, tag)
                if silt_multi_add(multi, h) != 0 {
                    silt_http_free(h)
                    c.resume(returning: .failure(code: -1, detail: "curl_multi_add_handle failed"))
                    continue
                }
                inFlight[tag] = c
            }
            silt_multi_perform(multi, &running)
            var code: Int32 = 0
            while let h = silt_multi_next_done(multi, &code) {
                let tag = silt_http_tag(h)
                let outcome = Self.outcome(h, code: code)
                silt_http_free(h)
                if let c = inFlight.removeValue(forKey: tag) { c.resume(returning: outcome) }
            }
            silt_multi_poll(multi, 1000)
        }
        // Shut down: fail everything still waiting. Running handles are freed with the multi
        // handle's cleanup only after removal, which `silt_multi_free` does not do, so they
        // leak deliberately here (shutdown happens once per store, at process end or in tests).
        lock.lock()
        let rest = pending
        pending.removeAll()
        lock.unlock()
        for (h, c) in rest {
            silt_http_free(h)
            c.resume(returning: .failure(code: -1, detail: "client shut down"))
        }
        for (_, c) in inFlight { c.resume(returning: .failure(code: -1, detail: "client shut down")) }
        inFlight.removeAll()
        stopped.signal()
    }

    private static func outcome(_ h: OpaquePointer, code: Int32) -> Outcome {
        if code != 0 {
            let detail = String(cString: silt_http_error_detail(h))
            let text = String(cString: silt_curl_strerror(code))
            return .failure(code: code, detail: detail.isEmpty ? text : "\(text): \(detail)")
        }
        var n = 0
        var body: [UInt8] = []
        if let p = silt_http_body(h, &n), n > 0 { body = Array(UnsafeBufferPointer(start: p, count: n)) }
        var headers: [String: String] = [:]
        if let p = silt_http_headers(h, &n), n > 0 {
            let text = String(decoding: UnsafeBufferPointer(start: p, count: n), as: UTF8.self)
            for line in text.split(separator: "\r\n", omittingEmptySubsequences: true).dropFirst() {
                guard let colon = line.firstIndex(of: ":") else { continue }
                let name = line[..<colon].lowercased()
                let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
                headers[name] = value
            }
        }
        return .response(Response(status: silt_http_status(h), headers: headers, body: body))
    }
}
