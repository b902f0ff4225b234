import CSupport

/// Where objects of the stream storage live in the data bucket.
///
/// `<4 hex digits>/<cluster id>/o/<object id>`: the leading hash spreads consecutive ids
/// over 65 536 prefixes, so S3's per-prefix request rate limits never bite, and the cluster
/// id keeps two clusters sharing one bucket apart.
public enum ObjectKeys {
    public static func object(clusterId: String, objectId: UInt64) -> String {
        var id = objectId.littleEndian
        let crc = withUnsafeBytes(of: &id) { silt_crc32c(0, $0.baseAddress!, $0.count) }
        let prefix = String(UInt16(truncatingIfNeeded: crc ^ (crc >> 16)), radix: 16)
        return String(repeating: "0", count: 4 - prefix.count) + prefix + "/\(clusterId)/o/\(objectId)"
    }
}
