import Foundation

/// `meta.properties` in each log directory, as Kafka's KRaft mode writes it: the node and
/// cluster a directory belongs to. A node formats its own storage on first start (the
/// AutoMQ start line has no separate format step) and refuses a directory that belongs
/// to another node or cluster.
public enum MetaProperties {
    public struct Mismatch: Error, CustomStringConvertible {
        public var description: String
    }

    /// Makes sure every directory exists and is formatted; returns the cluster id in force.
    public static func ensureFormatted(logDirs: [String], nodeId: Int32, clusterId configured: String?) throws -> String {
        var clusterId = configured
        var found: [(String, [String: String])] = []
        for dir in logDirs {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            let path = dir + "/meta.properties"
            if let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) {
                found.append((path, try Properties.parse(text, source: path)))
            }
        }
        for (path, props) in found {
            if let n = props["node.id"], n != String(nodeId) {
                throw Mismatch(description: "\(path) belongs to node.id=\(n), but this node is node.id=\(nodeId)")
            }
            if let c = props["cluster.id"] {
                if let want = clusterId, want != c {
                    throw Mismatch(description: "\(path) belongs to cluster \(c), but this node is configured for cluster \(want)")
                }
                clusterId = c
            }
        }
        let id = clusterId ?? newClusterId()
        for dir in logDirs {
            let path = dir + "/meta.properties"
            if FileManager.default.fileExists(atPath: path) { continue }
            let text = "#\n# Written by silt on first start.\nversion=1\nnode.id=\(nodeId)\ncluster.id=\(id)\n"
            let tmp = path + ".tmp"
            guard FileManager.default.createFile(atPath: tmp, contents: Data(text.utf8)) else {
                throw Mismatch(description: "cannot write \(tmp)")
            }
            let fd = open(tmp, O_RDONLY)
            if fd >= 0 { fsync(fd); close(fd) }
            guard rename(tmp, path) == 0 else {
                throw Mismatch(description: "cannot rename \(tmp): \(String(cString: strerror(errno)))")
            }
            let dfd = open(dir, O_RDONLY | O_DIRECTORY)
            if dfd >= 0 { fsync(dfd); close(dfd) }
        }
        return id
    }

    /// A Kafka-style cluster id: 16 random bytes in URL-safe base64 without padding.
    public static func newClusterId() -> String {
        var bytes = [UInt8](repeating: 0, count: 16)
        for i in bytes.indices { bytes[i] = UInt8.random(in: 0...255) }
        bytes[6] = (bytes[6] & 0x0F) | 0x40   // version 4
        bytes[8] = (bytes[8] & 0x3F) | 0x80   // IETF variant
        return Data(bytes).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }
}
