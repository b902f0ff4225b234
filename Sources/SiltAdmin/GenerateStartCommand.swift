import Foundation

/// An `ip:port` from `--controller-list` / `--broker-list`.
public struct NodeAddress: Equatable, Hashable, Sendable, CustomStringConvertible {
    public var host: String
    public var port: Int
    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }
    public var description: String { "\(host):\(port)" }
}

/// generate-start-command: one `bin/kafka-server-start.sh` line per node, exactly as AutoMQ's
/// GenerateStartCmdCmd prints them. Node ids count from 0, controllers first.
/// - Server mode (default): controllers get `process.roles=broker,controller`, listen on
///   `PLAINTEXT://<ip>:9092,CONTROLLER://<ip:port>` and advertise `PLAINTEXT://<ip>:9092`
///   (so a controller port may not be 9092); brokers get `process.roles=broker`,
///   `listeners=advertised.listeners=PLAINTEXT://<ip:port>`. When every broker host is also
///   a controller host, no broker lines are printed (the controllers are the brokers).
/// - Controller-only mode: controllers get `process.roles=controller` and
///   `listeners=CONTROLLER://<ip:port>`, no advertised listeners.
public enum GenerateStartCommand {
    public static let banner = "############  Start Commandline ##############"
    public static let tips = "TIPS: Start controllers first and then the brokers."

    /// Parses `ip:port;ip:port`. `option` names the flag in errors.
    public static func parseList(_ text: String, option: String) throws -> [NodeAddress] {
        var s = text.trimmingCharacters(in: .whitespaces)
        if s.count >= 2, s.hasPrefix("\""), s.hasSuffix("\"") { s = String(s.dropFirst().dropLast()) }
        let items = s.split(separator: ";", omittingEmptySubsequences: true)
            .map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        guard !items.isEmpty else { throw AdminError("\(option) is empty: expected ip:port;ip:port, e.g. 192.168.0.1:9093;192.168.0.2:9093") }
        var seen = Set<NodeAddress>()
        var out: [NodeAddress] = []
        for item in items {
            let parts = item.split(separator: ":", omittingEmptySubsequences: false)
            guard parts.count == 2 else {
                throw AdminError("\(option): '\(item)' is not ip:port (entries are separated by ';', e.g. 192.168.0.1:9093;192.168.0.2:9093)")
            }
            let host = String(parts[0])
            guard !host.isEmpty, host.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "." || $0 == "-") }) else {
                throw AdminError("\(option): '\(item)' has an invalid host '\(host)'")
            }
            guard let port = Int(parts[1]), (1...65535).contains(port) else {
                throw AdminError("\(option): '\(item)' has an invalid port '\(parts[1])' (1-65535)")
            }
            let a = NodeAddress(host: host, port: port)
            guard seen.insert(a).inserted else { throw AdminError("\(option): '\(item)' appears twice") }
            out.append(a)
        }
        return out
    }

    /// The s3url as the start lines carry it: AutoMQ removes "http://" and "https://".
    public static func normalizeS3URL(_ text: String) -> String {
        var s = text.trimmingCharacters(in: .whitespacesAndNewlines)
        if s.count >= 2, s.hasPrefix("\""), s.hasSuffix("\"") { s = String(s.dropFirst().dropLast()) }
        return s.replacingOccurrences(of: "http://", with: "").replacingOccurrences(of: "https://", with: "")
    }

    /// The start lines, one per node (each ends with the trailing space AutoMQ prints).
    /// Throws `AdminError` for an invalid s3url or list.
    public static func startLines(s3url: String, controllerList: String, brokerList: String,
                                  controllerOnlyMode: Bool) throws -> [String] {
        let url = normalizeS3URL(s3url)
        _ = try S3URL.parse(url)
        let controllers = try parseList(controllerList, option: "--controller-list")
        let brokers = try parseList(brokerList, option: "--broker-list")
        if !controllerOnlyMode, let c = controllers.first(where: { $0.port == 9092 }) {
            throw AdminError("--controller-list: controller port can not be 9092 in server mode (\(c)), because it will conflict with broker port")
        }
        let voters = controllers.enumerated().map { "\($0.offset)@\($0.element)" }.joined(separator: ",")
        var lines: [String] = []
        for (id, c) in controllers.enumerated() {
            if controllerOnlyMode {
                lines.append("bin/kafka-server-start.sh --s3-url=\"\(url)\" --override process.roles=controller --override node.id=\(id) --override controller.quorum.voters=\(voters) --override listeners=CONTROLLER://\(c) ")
            } else {
                let advertised = "PLAINTEXT://\(c.host):9092"
                lines.append("bin/kafka-server-start.sh --s3-url=\"\(url)\" --override process.roles=broker,controller --override node.id=\(id) --override controller.quorum.voters=\(voters) --override listeners=\(advertised),CONTROLLER://\(c) --override advertised.listeners=\(advertised) ")
            }
        }
        var brokerHosts = Set(brokers.map(\.host))
        if !controllerOnlyMode { brokerHosts.subtract(controllers.map(\.host)) }
        if !brokerHosts.isEmpty {
            for (i, b) in brokers.enumerated() {
                let id = controllers.count + i
                lines.append("bin/kafka-server-start.sh --s3-url=\"\(url)\" --override process.roles=broker --override node.id=\(id) --override controller.quorum.voters=\(voters) --override listeners=PLAINTEXT://\(b) --override advertised.listeners=PLAINTEXT://\(b) ")
            }
        }
        return lines
    }

    /// The full output, AutoMQ's layout: banner, instructions, each line followed by a blank
    /// line, then the tip. Lines end with "\n".
    public static func render(s3url: String, controllerList: String, brokerList: String,
                              controllerOnlyMode: Bool) throws -> String {
        let lines = try startLines(s3url: s3url, controllerList: controllerList, brokerList: brokerList,
                                   controllerOnlyMode: controllerOnlyMode)
        var out = [
            banner,
            "To start a Silt server, please navigate to the directory where your Silt repository is located and run the following command. ",
            "",
            "Before running the command, make sure that the silt binary is built ('swift build -c release --product silt'), or set SILT_BIN, or put silt on your PATH.",
            "",
        ]
        for l in lines { out += [l, ""] }
        out += ["", tips, ""]
        return out.map { $0 + "\n" }.joined()
    }
}
