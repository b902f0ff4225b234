import Foundation

/// The JSON files kafka-reassign-partitions.sh reads and prints, in Kafka's version 1:
///
///     reassignment (--execute, --verify, --cancel; printed by --execute and --generate):
///       {"version":1,"partitions":[{"topic":"t","partition":0,"replicas":[2],"log_dirs":["any"]}]}
///     topics to move (--generate):
///       {"version":1,"topics":[{"topic":"t"}]}
///
/// Input may be spaced and ordered any way, `version` defaults to 1 and `log_dirs` is
/// optional (its length must match `replicas`). Output is Kafka's: compact, on one line,
/// partitions sorted by topic then partition, keys in the order above.
extension KafkaReassignPartitions {
    /// A partition, printed as Kafka's `TopicPartition`: `t-0`.
    public struct TopicPartition: Hashable, Comparable, Sendable, CustomStringConvertible {
        public var topic: String
        public var partition: Int32
        public init(_ topic: String, _ partition: Int32) {
            self.topic = topic
            self.partition = partition
        }
        public var description: String { "\(topic)-\(partition)" }
        /// Kafka's order: topic (Java's UTF-16 string order), then partition.
        public static func < (a: TopicPartition, b: TopicPartition) -> Bool {
            if a.topic != b.topic { return a.topic.utf16.lexicographicallyPrecedes(b.topic.utf16) }
            return a.partition < b.partition
        }
    }

    /// One entry of a reassignment file, in file order.
    public struct Assignment: Equatable, Sendable {
        public var partition: TopicPartition
        public var replicas: [Int32]
        public init(_ partition: TopicPartition, _ replicas: [Int32]) {
            self.partition = partition
            self.replicas = replicas
        }
    }

    /// Kafka's log dir placeholder: the broker picks the directory.
    static let anyLogDir = "any"

    private struct ReassignmentFile: Decodable {
        var version: Int?
        var partitions: [Entry]?
        struct Entry: Decodable {
            var topic: String
            var partition: Int32
            var replicas: [Int32]
            var log_dirs: [String]?
        }
    }

    private struct TopicsFile: Decodable {
        var version: Int?
        var topics: [Entry]?
        struct Entry: Decodable { var topic: String }
    }

    /// Parses a reassignment file as Kafka does (version 1 only; no `partitions` is an empty
    /// list) and applies Silt's rules: at most one broker per partition, and `log_dirs` all
    /// `"any"` (Silt keeps no partition data in log dirs, so there is no directory to pick).
    public static func parseReassignment(_ text: String) throws -> [Assignment] {
        let file = try decode(ReassignmentFile.self, text)
        let version = file.version ?? 1
        guard version == 1 else { throw AdminSession.Failure("Not supported version field value \(version)") }
        return try (file.partitions ?? []).map { e in
            let tp = TopicPartition(e.topic, e.partition)
            if let dirs = e.log_dirs {
                guard dirs.count == e.replicas.count else {
                    throw AdminSession.Failure("Size of replicas list \(javaList(e.replicas)) is different from size of "
                        + "log dirs list \(javaList(dirs)) for partition \(tp)")
                }
                if let dir = dirs.first(where: { $0 != anyLogDir }) {
                    throw AdminSession.Failure("Partition \(tp): log dir '\(dir)' cannot be honoured: Silt keeps no partition "
                        + "data in log dirs (object storage holds it), so log_dirs must be \"\(anyLogDir)\"")
                }
            }
            guard e.replicas.count <= 1 else {
                throw AdminSession.Failure("Partition \(tp) has replicas \(javaList(e.replicas)): Silt keeps one replica per "
                    + "partition (object storage is the replica): give exactly one broker")
            }
            return Assignment(tp, e.replicas)
        }
    }

    /// Kafka's checks of a reassignment before `--execute`, with its words: not empty, no
    /// empty replica list, no partition twice, no broker twice in a list.
    public static func checkForExecute(_ assignments: [Assignment]) throws -> [TopicPartition: [Int32]] {
        guard !assignments.isEmpty else { throw AdminSession.Failure("Partition reassignment list cannot be empty") }
        guard assignments.allSatisfy({ !$0.replicas.isEmpty }) else {
            throw AdminSession.Failure("Partition replica list cannot be empty")
        }
        let twice = duplicates(assignments.map(\.partition))
        guard twice.isEmpty else {
            throw AdminSession.Failure("Partition reassignment contains duplicate topic partitions: "
                + twice.map(\.description).joined(separator: ","))
        }
        let repeated = assignments.compactMap { a -> String? in
            let d = duplicates(a.replicas)
            return d.isEmpty ? nil : "\(a.partition) contains multiple entries for \(d.map(String.init).joined(separator: ","))"
        }
        guard repeated.isEmpty else {
            throw AdminSession.Failure("Partition replica lists may not contain duplicate entries: " + repeated.joined(separator: ". "))
        }
        return Dictionary(uniqueKeysWithValues: assignments.map { ($0.partition, $0.replicas) })
    }

    /// The topics of a `--topics-to-move-json-file`, in file order; duplicates are Kafka's error.
    public static func parseTopicsToMove(_ text: String) throws -> [String] {
        let file = try decode(TopicsFile.self, text)
        let version = file.version ?? 1
        guard version == 1 else { throw AdminSession.Failure("Not supported version field value \(version)") }
        let topics = (file.topics ?? []).map(\.topic)
        let twice = duplicates(topics)
        guard twice.isEmpty else {
            throw AdminSession.Failure("List of topics to reassign contains duplicate entries: \(javaList(twice))")
        }
        return topics
    }

    /// Kafka's reassignment JSON for `assignments`: one line, partitions in Kafka's order,
    /// `log_dirs` all `"any"`.
    public static func reassignmentJSON(_ assignments: [TopicPartition: [Int32]]) -> String {
        let partitions = assignments.keys.sorted().map { tp in
            let replicas = assignments[tp]!
            return "{\"topic\":\(jsonString(tp.topic)),\"partition\":\(tp.partition),"
                + "\"replicas\":[\(replicas.map(String.init).joined(separator: ","))],"
                + "\"log_dirs\":[\(replicas.map { _ in jsonString(anyLogDir) }.joined(separator: ","))]}"
        }
        return "{\"version\":1,\"partitions\":[\(partitions.joined(separator: ","))]}"
    }

    /// A JSON string literal as Jackson writes it: `"` and `\` escaped, control characters
    /// as `\n`-style or `\u00XX` escapes, everything else as is.
    static func jsonString(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{08}": out += "\\b"
            case "\u{0C}": out += "\\f"
            case _ where u.value < 0x20: out += String(format: "\\u%04X", u.value)
            default: out.unicodeScalars.append(u)
            }
        }
        return out + "\""
    }

    /// A list as Java's `List.toString` prints it: `[1, 2]`.
    static func javaList<T>(_ items: [T]) -> String {
        "[" + items.map { "\($0)" }.joined(separator: ", ") + "]"
    }

    /// The elements that occur more than once, each once, in order of first repeat.
    static func duplicates<T: Hashable>(_ items: [T]) -> [T] {
        var seen = Set<T>(), reported = Set<T>(), out: [T] = []
        for x in items where !seen.insert(x).inserted && reported.insert(x).inserted { out.append(x) }
        return out
    }

    private static func decode<T: Decodable>(_ type: T.Type, _ text: String) throws -> T {
        do {
            return try JSONDecoder().decode(type, from: Data(text.utf8))
        } catch let error as DecodingError {
            // Foundation reports a number that does not fit the field (0.5, 1e20 for an
            // Int32) as invalid JSON, without a path; say what it is when the text parses.
            if case .dataCorrupted(let c) = error, c.codingPath.isEmpty,
               (try? JSONSerialization.jsonObject(with: Data(text.utf8), options: .fragmentsAllowed)) != nil {
                throw AdminSession.Failure("The input string is not a valid reassignment: a number is not a 32-bit integer "
                    + "(partition, replicas and version take integers)")
            }
            throw AdminSession.Failure("The input string is not a valid JSON: \(describe(error))")
        }
    }

    /// A decoding error as a short reason with the path it happened at (`partitions[0].replicas`).
    static func describe(_ error: DecodingError) -> String {
        func path(_ keys: [CodingKey]) -> String {
            var out = ""
            for k in keys {
                if let i = k.intValue { out += "[\(i)]" } else { out += (out.isEmpty ? "" : ".") + k.stringValue }
            }
            return out.isEmpty ? "the top level" : out
        }
        switch error {
        case .typeMismatch(let t, let c): return "\(path(c.codingPath)) is not \(jsonTypeName(t))"
        case .valueNotFound(let t, let c): return "\(path(c.codingPath)) is null, expected \(jsonTypeName(t))"
        case .keyNotFound(let k, let c): return "\(path(c.codingPath + [k])) is missing"
        case .dataCorrupted(let c):
            if c.codingPath.isEmpty { return "not JSON" }
            return "\(path(c.codingPath)): \(c.debugDescription)"
        @unknown default: return "\(error)"
        }
    }

    private static func jsonTypeName(_ t: Any.Type) -> String {
        switch t {
        case is Int32.Type, is Int.Type: return "an integer"
        case is String.Type: return "a string"
        case is [Int32].Type, is [String].Type: return "an array"
        default:
            let name = "\(t)"
            return name.hasPrefix("Array") || name.hasPrefix("[") ? "an array" : "an object"
        }
    }
}
