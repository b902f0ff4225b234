import Foundation
import Logging
import XCTest
@testable import SiltMetrics

/// One HTTP/1.1 request over a plain socket to 127.0.0.1:`port`, `Connection: close`;
/// returns the status code, the headers (lower-cased names) and the body.
func httpRequest(port: Int, method: String = "GET", path: String) throws -> (status: Int, headers: [String: String], body: String) {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw MetricsError.system(operation: "socket", errno: errno) }
    defer { close(fd) }
    var timeout = timeval(tv_sec: 10, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = in_port_t(UInt16(port).bigEndian)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    let rc = withUnsafePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard rc == 0 else { throw MetricsError.system(operation: "connect", errno: errno) }
    let request = Array("\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".utf8)
    guard send(fd, request, request.count, 0) == request.count else { throw MetricsError.system(operation: "send", errno: errno) }
    var response = [UInt8]()
    var chunk = [UInt8](repeating: 0, count: 16 << 10)
    while response.count < 1 << 20 {
        let n = recv(fd, &chunk, chunk.count, 0)
        if n < 0 { if errno == EINTR { continue }; throw MetricsError.system(operation: "recv", errno: errno) }
        if n == 0 { break }
        response += chunk[0..<n]
    }
    let text = String(decoding: response, as: UTF8.self)
    guard let split = text.range(of: "\r\n\r\n") else { throw MetricsError.badLayout("no header end in \(text)") }
    let lines = text[..<split.lowerBound].components(separatedBy: "\r\n")
    let status = Int(lines[0].split(separator: " ")[1]) ?? -1
    var headers: [String: String] = [:]
    for line in lines.dropFirst() {
        guard let colon = line.firstIndex(of: ":") else { continue }
        headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
    }
    return (status, headers, String(text[split.upperBound...]))
}

final class PrometheusExporterTests: XCTestCase {
    func testServesMetricsOverHTTP() throws {
        let region = MetricsRegion.local()
        region.add(.s3PutRequests, 3)
        region.add(.objectsUploaded(.stream), 2)
        region.set(.walCapacityBytes, 1_073_741_824)
        region.observe(.uploadLatency, seconds: 0.02)
        region.observe(.uploadLatency, seconds: 90)
        let exporter = PrometheusExporter(region: region, host: "127.0.0.1", port: 0, logger: Logger(label: "test"))
        XCTAssertNil(exporter.port)
        try exporter.start()
        defer { exporter.stop() }
        let port = try XCTUnwrap(exporter.port)
        XCTAssertGreaterThan(port, 0)

        let r = try httpRequest(port: port, path: "/metrics")
        XCTAssertEqual(r.status, 200)
        XCTAssertEqual(r.headers["content-type"], PrometheusText.contentType)
        XCTAssertEqual(r.headers["content-length"], String(r.body.utf8.count))
        let lines = Set(r.body.split(separator: "\n").map(String.init))
        for expected in [
            "# TYPE silt_s3_put_requests_total counter",
            "silt_s3_put_requests_total 3",
            "# HELP silt_objects_uploaded_total Objects uploaded and committed.",
            "silt_objects_uploaded_total{kind=\"stream_set\"} 0",
            "silt_objects_uploaded_total{kind=\"stream\"} 2",
            "# TYPE silt_wal_capacity_bytes gauge",
            "silt_wal_capacity_bytes 1073741824",
            "# TYPE silt_upload_latency_seconds histogram",
            "silt_upload_latency_seconds_bucket{le=\"0.01\"} 0",
            "silt_upload_latency_seconds_bucket{le=\"0.025\"} 1",
            "silt_upload_latency_seconds_bucket{le=\"60\"} 1",
            "silt_upload_latency_seconds_bucket{le=\"+Inf\"} 2",
            "silt_upload_latency_seconds_sum 90.02",
            "silt_upload_latency_seconds_count 2",
        ] {
            XCTAssertTrue(lines.contains(expected), "missing line: \(expected)\n\(r.body)")
        }
        // One HELP and one TYPE per family, before its samples.
        XCTAssertEqual(r.body.components(separatedBy: "# TYPE silt_objects_uploaded_total ").count, 2)
        XCTAssertEqual(r.body.components(separatedBy: "# TYPE ").count - 1,
                       Set(Metric.allCases.map(\.name)).count + HistogramMetric.allCases.count)

        // Live: a change shows in the next scrape.
        region.add(.s3PutRequests)
        XCTAssertTrue(try httpRequest(port: port, path: "/metrics?x=1").body.contains("silt_s3_put_requests_total 4\n"))
    }

    func testOtherPathsAre404AndOtherMethods405() throws {
        let exporter = PrometheusExporter(region: .local(), host: "127.0.0.1", port: 0, logger: Logger(label: "test"))
        try exporter.start()
        defer { exporter.stop() }
        let port = try XCTUnwrap(exporter.port)
        XCTAssertEqual(try httpRequest(port: port, path: "/").status, 404)
        XCTAssertEqual(try httpRequest(port: port, path: "/metricsx").status, 404)
        XCTAssertEqual(try httpRequest(port: port, method: "POST", path: "/metrics").status, 405)
        let head = try httpRequest(port: port, method: "HEAD", path: "/metrics")
        XCTAssertEqual(head.status, 200)
        XCTAssertEqual(head.body, "")
    }

    func testStopReleasesThePortAndBindErrorsAreTyped() throws {
        let first = PrometheusExporter(region: .local(), host: "127.0.0.1", port: 0, logger: Logger(label: "test"))
        try first.start()
        let port = try XCTUnwrap(first.port)
        let second = PrometheusExporter(region: .local(), host: "127.0.0.1", port: port, logger: Logger(label: "test"))
        XCTAssertThrowsError(try second.start()) {
            guard case .bindFailed(_, let p, _) = $0 as? MetricsError else { return XCTFail("\($0)") }
            XCTAssertEqual(p, port)
        }
        first.stop()
        first.stop()  // idempotent
        XCTAssertThrowsError(try httpRequest(port: port, path: "/metrics"))
    }
}

final class ExporterURITests: XCTestCase {
    func testAcceptedForms() throws {
        func parse(_ s: String) throws -> String {
            let (h, p) = try PrometheusExporter.parseExporterURI(s)
            return "\(h) \(p)"
        }
        XCTAssertEqual(try parse("prometheus://?host=127.0.0.1&port=9090"), "127.0.0.1 9090")
        XCTAssertEqual(try parse("prometheus://?port=9090&host=0.0.0.0"), "0.0.0.0 9090")
        XCTAssertEqual(try parse("prometheus://127.0.0.1:9090"), "127.0.0.1 9090")
        XCTAssertEqual(try parse("prometheus://localhost:9090/"), "localhost 9090")
        XCTAssertEqual(try parse("PROMETHEUS://[::1]:9464"), "::1 9464")
        XCTAssertEqual(try parse("  prometheus://metrics-host?port=1  "), "metrics-host 1")
    }

    func testRejectedFormsSayWhy() {
        let cases: [(String, String)] = [
            ("", "expected prometheus://"),
            ("127.0.0.1:9090", "expected prometheus://"),
            ("otlp://127.0.0.1:4317", "only prometheus://"),
            ("http://127.0.0.1:9090", "only prometheus://"),
            ("prometheus://", "no host"),
            ("prometheus://?port=9090", "no host"),
            ("prometheus://?host=127.0.0.1", "no port"),
            ("prometheus://127.0.0.1", "no port"),
            ("prometheus://127.0.0.1:0", "not in 1...65535"),
            ("prometheus://127.0.0.1:65536", "not in 1...65535"),
            ("prometheus://?host=h&port=abc", "not in 1...65535"),
            ("prometheus://?host=h&port=", "not in 1...65535"),
            ("prometheus://127.0.0.1:9090?host=10.0.0.1", "host given twice"),
            ("prometheus://?host=h&port=1&port=2", "port given twice"),
            ("prometheus://?host=h&port=1&path=/x", "unknown parameter 'path'"),
            ("prometheus://?host", "has no value"),
            ("prometheus://127.0.0.1:9090/metrics", "a path is not allowed"),
            ("prometheus://::1:9090", "must be in brackets"),
            ("prometheus://[::1:9090", "unterminated"),
            ("prometheus://?host=a b&port=1", "characters"),
        ]
        for (uri, reason) in cases {
            XCTAssertThrowsError(try PrometheusExporter.parseExporterURI(uri), uri) { error in
                guard case .invalidExporterURI(let u, let r) = error as? MetricsError else { return XCTFail("\(uri): \(error)") }
                XCTAssertEqual(u, uri)
                XCTAssertTrue(r.contains(reason), "\(uri): \(r)")
                XCTAssertTrue("\(error)".contains("'\(uri)'"), "the message names the value: \(error)")
            }
        }
    }
}
