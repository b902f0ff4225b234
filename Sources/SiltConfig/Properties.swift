/// Parsing of Java-style `.properties` files and `key=value` overrides.
///
/// Supports the subset of `java.util.Properties` that Kafka configuration files use:
/// `key=value` and `key: value` lines, `#` and `!` comments, blank lines, and a trailing
/// backslash that continues a value on the next line. Keys and values are trimmed.
public enum Properties {
    public struct ParseError: Error, CustomStringConvertible, Equatable {
        public var source: String
        public var line: Int
        public var message: String
        public var description: String { "\(source):\(line): \(message)" }
    }

    /// Parses the text of a properties file. Later duplicates win, as in Java.
    public static func parse(_ text: String, source: String = "properties") throws -> [String: String] {
        var result: [String: String] = [:]
        var pending = ""
        var pendingLine = 0
        var lineNumber = 0
        for rawLine in text.split(separator: "\n", omittingEmptySubsequences: false) {
            lineNumber += 1
            var line = String(rawLine)
            if line.hasSuffix("\r") { line.removeLast() }
            let trimmedLeading = line.drop(while: { $0 == " " || $0 == "\t" })
            if pending.isEmpty {
                if trimmedLeading.isEmpty || trimmedLeading.first == "#" || trimmedLeading.first == "!" { continue }
                pendingLine = lineNumber
            }
            var content = String(pending.isEmpty ? Substring(line) : trimmedLeading)
            // An odd number of trailing backslashes continues the logical line.
            let trailing = content.reversed().prefix(while: { $0 == "\\" }).count
            if trailing % 2 == 1 {
                content.removeLast()
                pending += content
                continue
            }
            pending += content
            let logical = pending
            pending = ""
            let (key, value) = try split(logical, source: source, line: pendingLine)
            result[key] = value
        }
        if !pending.isEmpty {
            let (key, value) = try split(pending, source: source, line: pendingLine)
            result[key] = value
        }
        return result
    }

    /// Parses one `key=value` override as given on the command line.
    public static func parseOverride(_ text: String) throws -> (key: String, value: String) {
        guard let eq = text.firstIndex(of: "=") else {
            throw ParseError(source: "--override", line: 0, message: "expected key=value, got '\(text)'")
        }
        let key = text[..<eq].trimmingCharacters(in: " \t")
        let value = text[text.index(after: eq)...].trimmingCharacters(in: " \t")
        guard !key.isEmpty else {
            throw ParseError(source: "--override", line: 0, message: "empty key in '\(text)'")
        }
        return (key, value)
    }

    private static func split(_ logical: String, source: String, line: Int) throws -> (String, String) {
        let body = logical.trimmingCharacters(in: " \t")
        guard let sep = body.firstIndex(where: { $0 == "=" || $0 == ":" }) else {
            throw ParseError(source: source, line: line, message: "expected key=value, got '\(body)'")
        }
        let key = unescape(body[..<sep].trimmingCharacters(in: " \t"))
        let value = unescape(body[body.index(after: sep)...].trimmingCharacters(in: " \t"))
        guard !key.isEmpty else { throw ParseError(source: source, line: line, message: "empty key") }
        return (key, value)
    }

    private static func unescape(_ s: String) -> String {
        guard s.contains("\\") else { return s }
        var out = ""
        var escaping = false
        for ch in s {
            if escaping {
                switch ch {
                case "t": out.append("\t")
                case "n": out.append("\n")
                case "r": out.append("\r")
                default: out.append(ch)
                }
                escaping = false
            } else if ch == "\\" {
                escaping = true
            } else {
                out.append(ch)
            }
        }
        return out
    }
}

extension StringProtocol {
    func trimmingCharacters(in set: String) -> String {
        var s = Substring(self)
        while let f = s.first, set.contains(f) { s.removeFirst() }
        while let l = s.last, set.contains(l) { s.removeLast() }
        return String(s)
    }
}
