import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif

/// A minimal XML element tree for S3 responses (no namespaces, no attributes needed).
final class XMLNode {
    let name: String
    var text = ""
    var children: [XMLNode] = []
    init(name: String) { self.name = name }

    func child(_ name: String) -> XMLNode? { children.first { $0.name == name } }
    func all(_ name: String) -> [XMLNode] { children.filter { $0.name == name } }
    func value(_ name: String) -> String? { child(name)?.text }

    /// Parses a document; nil when it is not well-formed XML (e.g. a truncated body).
    static func parse(_ bytes: [UInt8]) -> XMLNode? {
        let delegate = TreeBuilder()
        let parser = XMLParser(data: Data(bytes))
        parser.shouldProcessNamespaces = false
        parser.delegate = delegate
        guard parser.parse(), delegate.failed == false, let root = delegate.root else { return nil }
        return root
    }

    private final class TreeBuilder: NSObject, XMLParserDelegate {
        var root: XMLNode?
        var stack: [XMLNode] = []
        var failed = false

        func parser(_ parser: XMLParser, didStartElement elementName: String, namespaceURI: String?,
                    qualifiedName qName: String?, attributes attributeDict: [String: String] = [:]) {
            let node = XMLNode(name: elementName)
            if let parent = stack.last { parent.children.append(node) } else { root = node }
            stack.append(node)
        }

        func parser(_ parser: XMLParser, didEndElement elementName: String, namespaceURI: String?,
                    qualifiedName qName: String?) {
            _ = stack.popLast()
        }

        func parser(_ parser: XMLParser, foundCharacters string: String) {
            stack.last?.text += string
        }

        func parser(_ parser: XMLParser, parseErrorOccurred parseError: Error) { failed = true }
    }
}

enum S3XML {
    /// Escapes text for an XML element body.
    static func escape(_ s: String) -> String {
        var out = ""
        out.reserveCapacity(s.utf8.count)
        for ch in s.unicodeScalars {
            switch ch {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&apos;"
            default:
                if ch.value < 0x20 && ch != "\t" && ch != "\n" && ch != "\r" {
                    out += "&#x\(String(ch.value, radix: 16));"
                } else {
                    out.unicodeScalars.append(ch)
                }
            }
        }
        return out
    }

    /// Strips the quotes S3 puts around ETags.
    static func unquote(_ etag: String?) -> String? {
        guard var e = etag?.trimmingCharacters(in: .whitespaces), !e.isEmpty else { return nil }
        if e.hasPrefix("W/") { e.removeFirst(2) }
        if e.count >= 2 && e.hasPrefix("\"") && e.hasSuffix("\"") { e = String(e.dropFirst().dropLast()) }
        return e
    }

    /// An error document (`<Error><Code/><Message/><RequestId/></Error>`) as a typed error.
    /// A missing or unparseable body maps from the status alone.
    static func error(status: Int, body: [UInt8], resource: String) -> ObjectStoreError {
        if let root = parse(body), root.name == "Error" {
            let code = root.value("Code") ?? "HTTP\(status)"
            var message = root.value("Message") ?? ""
            if message.isEmpty { message = code }
            message += " (\(resource)"
            if let rid = root.value("RequestId"), !rid.isEmpty { message += ", request id \(rid)" }
            message += ")"
            return ObjectStoreError.fromS3(status: status, code: code, message: message)
        }
        switch status {
        case 404: return .noSuchKey("HTTP 404 (\(resource))")
        case 403: return .accessDenied("HTTP 403 (\(resource))")
        case 412: return .preconditionFailed("HTTP 412 (\(resource))")
        case 416: return .invalidRange("HTTP 416 (\(resource))")
        case 503: return .slowDown("HTTP 503 (\(resource))")
        default:
            if status >= 500 { return .serviceError(status: status, code: "HTTP\(status)", message: resource) }
            return .badResponse("HTTP \(status) without an error document (\(resource))")
        }
    }

    static func parse(_ body: [UInt8]) -> XMLNode? { body.isEmpty ? nil : XMLNode.parse(body) }
}
