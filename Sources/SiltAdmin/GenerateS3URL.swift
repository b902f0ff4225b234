import Foundation
import SiltConfig
import SiltObjectStore

/// generate-s3-url's options, named as AutoMQ's (`--s3-access-key` ...).
public struct GenerateS3URLOptions: Sendable {
    public var accessKey: String
    public var secretKey: String
    public var region: String
    /// host[:port], or with a scheme (which then wins over `endpointProtocol`, as in AutoMQ).
    public var endpoint: String
    public var endpointProtocol: String
    public var dataBucket: String
    /// Defaults to the data bucket.
    public var opsBucket: String?
    /// "true"/"false" as given on the command line.
    public var pathStyle: String

    public init(accessKey: String, secretKey: String, region: String, endpoint: String, endpointProtocol: String = "https",
                dataBucket: String, opsBucket: String? = nil, pathStyle: String = "false") {
        self.accessKey = accessKey
        self.secretKey = secretKey
        self.region = region
        self.endpoint = endpoint
        self.endpointProtocol = endpointProtocol
        self.dataBucket = dataBucket
        self.opsBucket = opsBucket
        self.pathStyle = pathStyle
    }

    /// The s3url these options stand for, with `clusterId` (a fresh one by default).
    public func s3url(clusterId: String = MetaProperties.newClusterId()) throws -> S3URL {
        let proto = endpointProtocol.lowercased()
        guard ["http", "https"].contains(proto) else {
            throw AdminError("--s3-endpoint-protocol must be http or https, got '\(endpointProtocol)'")
        }
        let style: Bool
        switch pathStyle.lowercased() {
        case "true": style = true
        case "false", "": style = false
        default: throw AdminError("--s3-path-style must be true or false, got '\(pathStyle)'")
        }
        for (name, v) in [("--s3-access-key", accessKey), ("--s3-secret-key", secretKey), ("--s3-region", region),
                          ("--s3-endpoint", endpoint), ("--s3-data-bucket", dataBucket)] where v.isEmpty {
            throw AdminError("\(name) is empty")
        }
        var ep = endpoint
        while ep.hasSuffix("/") { ep.removeLast() }
        return try S3URL(endpoint: ep, accessKey: accessKey, secretKey: secretKey, region: region,
                         endpointProtocol: proto, dataBucket: dataBucket,
                         opsBucket: opsBucket.flatMap { $0.isEmpty ? nil : $0 }, pathStyle: style, clusterId: clusterId)
    }
}

/// The text generate-s3-url prints, in AutoMQ's layout.
public enum GenerateS3URL {
    public static let pingBanner = "############  Ping s3 ########################"
    public static let resultBanner = "############  String of s3url ################"
    public static let usageBanner = "############  Usage of s3url  ################"

    /// Runs the checks against `dataStore` (a client for `url`'s data bucket) and, when the ops
    /// bucket is a different bucket and `opsStore` is given, against it too; then prints the
    /// s3url and its usage. `out` gets standard output lines, `err` the failure explanation.
    /// Returns the exit code: 0 when every check passed, 1 otherwise.
    public static func run(url: S3URL, dataStore: ObjectStore, opsStore: ObjectStore? = nil,
                           out: @escaping @Sendable (String) -> Void, err: @escaping @Sendable (String) -> Void) async -> Int32 {
        out(pingBanner)
        out("")
        var targets: [(ObjectStore, S3Target)] = [(dataStore, S3Target(url))]
        if let ops = opsStore, url.opsBucket != url.dataBucket {
            targets.append((ops, S3Target(url, bucket: url.opsBucket)))
        }
        for (i, (store, target)) in targets.enumerated() {
            if i > 0 {
                out("")
                out("Ops bucket \"\(target.bucket)\":")
            }
            let report = await S3Precheck.run(store: store, target: target, emit: out)
            if let failure = report.failure { err(failure.message) }
            if !report.leftovers.isEmpty {
                err("Could not remove these test objects from bucket \"\(target.bucket)\"; delete them by hand: \(report.leftovers.joined(separator: ", "))")
            }
            if report.failure != nil || !report.leftovers.isEmpty { return 1 }
        }
        for line in resultLines(url: url) { out(line) }
        return 0
    }

    /// Everything after the checks: the s3url and how to use it.
    public static func resultLines(url: S3URL) -> [String] {
        let s = url.format()
        return [
            resultBanner,
            "",
            "Your s3url is: ",
            "",
            s,
            "",
            "",
            usageBanner,
            "To start Silt, generate the start commandline using s3url.",
            "bin/automq-kafka-admin.sh generate-start-command \\",
            "--s3-url=\"\(s)\" \\",
            "--controller-list=\"192.168.0.1:9093;192.168.0.2:9093;192.168.0.3:9093\"  \\",
            "--broker-list=\"192.168.0.4:9092;192.168.0.5:9092\"   ",
            "",
            "TIPS: Please replace the controller-list and broker-list with your actual IP addresses.",
        ]
    }

    /// `run`, collected: (stdout text, stderr text, exit code). Lines end with "\n".
    public static func render(url: S3URL, dataStore: ObjectStore, opsStore: ObjectStore? = nil) async
        -> (stdout: String, stderr: String, exitCode: Int32) {
        let o = LineCollector()
        let e = LineCollector()
        let code = await run(url: url, dataStore: dataStore, opsStore: opsStore, out: o.append, err: e.append)
        return (o.text, e.text, code)
    }
}

/// Thread-safe line accumulator.
public final class LineCollector: @unchecked Sendable {
    private let lock = NSLock()
    private var _lines: [String] = []
    public init() {}
    @Sendable public func append(_ line: String) { lock.lock(); _lines.append(line); lock.unlock() }
    public var lines: [String] { lock.lock(); defer { lock.unlock() }; return _lines }
    /// The lines joined, each followed by "\n".
    public var text: String { lines.map { $0 + "\n" }.joined() }
}
