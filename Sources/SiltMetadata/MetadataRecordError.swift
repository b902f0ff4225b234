/// A metadata record that this build cannot decode. Every case that got as far as the
/// record type names the type and version, so the controller can stop with the offset and
/// the type: an unreadable record is never skipped and never truncated.
public enum MetadataRecordError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The frame version is not `MetadataRecordSerde.frameVersion` (the only one there is).
    case unsupportedFrameVersion(UInt32)
    /// A record type this build does not know: written by a newer Silt.
    case unknownType(type: UInt32, version: UInt32)
    /// A known record type in a version newer than this build knows: written by a newer Silt.
    case unsupportedVersion(type: UInt32, name: String, version: UInt32, highestKnown: Int16)
    /// Bytes that do not decode as the type and version they claim: corruption or a bug.
    case malformed(type: UInt32?, version: UInt32?, reason: String)

    /// The record type the frame claims, if the frame got that far.
    public var recordType: UInt32? {
        switch self {
        case .unsupportedFrameVersion: return nil
        case .unknownType(let t, _), .unsupportedVersion(let t, _, _, _): return t
        case .malformed(let t, _, _): return t
        }
    }

    /// The record version the frame claims, if the frame got that far.
    public var recordVersion: UInt32? {
        switch self {
        case .unsupportedFrameVersion: return nil
        case .unknownType(_, let v), .unsupportedVersion(_, _, let v, _): return v
        case .malformed(_, let v, _): return v
        }
    }

    /// True if a newer Silt wrote the record (an unknown type, or a newer version): upgrading
    /// this node is the fix, and the bytes are not corrupt.
    public var isFromNewerRelease: Bool {
        switch self {
        case .unknownType, .unsupportedVersion: return true
        case .unsupportedFrameVersion, .malformed: return false
        }
    }

    public var description: String {
        switch self {
        case .unsupportedFrameVersion(let v):
            return "metadata record frame version \(v) is unknown (this build reads frame version \(MetadataRecordSerde.frameVersion))"
        case .unknownType(let t, let v):
            return "metadata record type \(t) version \(v) is unknown to this build: it was written by a newer Silt; "
                + "upgrade this node to read the log"
        case .unsupportedVersion(let t, let name, let v, let highest):
            return "metadata record type \(t) (\(name)) version \(v) is newer than this build reads (up to \(highest)): "
                + "it was written by a newer Silt; upgrade this node to read the log"
        case .malformed(let t, let v, let reason):
            let type = t.map { t in
                MetadataRecordType(rawValue: Int16(truncatingIfNeeded: t)).map { "type \(t) (\($0.name))" } ?? "type \(t)"
            } ?? "record"
            let version = v.map { " version \($0)" } ?? ""
            return "malformed metadata \(type)\(version): \(reason)"
        }
    }
}
