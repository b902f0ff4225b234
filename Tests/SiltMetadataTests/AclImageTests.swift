import Foundation
import NIOCore
import SiltMetadata
import SiltProtocol
import XCTest

/// ACL records fold into the image, and a snapshot of the image carries them.
final class AclImageTests: XCTestCase {
    func binding(_ name: String, _ op: KafkaAclOperation) -> AclBinding {
        AclBinding(resourceType: .topic, resourceName: name, patternType: .literal, principal: "User:*", host: "*",
                   operation: op, permission: .deny)
    }

    func testApplyAndSnapshot() throws {
        var image = MetadataImage()
        let a = UUID(), b = UUID()
        image.apply(.accessControlEntry(id: a, binding("t", .all)))
        image.apply(.accessControlEntry(id: b, binding("u", .read)))
        XCTAssertEqual(image.acls, [a: binding("t", .all), b: binding("u", .read)])
        image.apply(.removeAccessControlEntry(id: a))
        XCTAssertEqual(image.acls, [b: binding("u", .read)])
        XCTAssertEqual(image.nextOffset, 3)

        let records = image.snapshotRecords
        XCTAssertTrue(records.contains(.accessControlEntry(id: b, binding("u", .read))))
        // Through the binary form, as a snapshot is written and read.
        let decoded = try records.map { try MetadataRecordSerde.decode(MetadataRecordSerde.encode($0)) }
        let restored = MetadataImage(snapshot: decoded, endOffset: image.nextOffset)
        XCTAssertEqual(restored, image)
        XCTAssertEqual(restored.sortedAcls.map { $0.binding }, [binding("u", .read)])
    }

    func testAnInvalidAclRecordIsMalformed() {
        var bad = AccessControlEntryRecord()
        bad.id = UUID().kafka
        bad.resourceType = AclResourceType.topic.rawValue
        bad.resourceName = "t"
        bad.patternType = AclPatternType.match.rawValue   // never stored: a filter's pattern
        bad.principal = "User:*"
        bad.host = "*"
        bad.operation = KafkaAclOperation.read.rawValue
        bad.permissionType = AclPermissionType.allow.rawValue
        var buffer = ByteBuffer()
        buffer.writeUnsignedVarint(1); buffer.writeUnsignedVarint(UInt32(AccessControlEntryRecord.apiKey)); buffer.writeUnsignedVarint(0)
        bad.encode(into: &buffer, version: 0)
        XCTAssertThrowsError(try MetadataRecordSerde.decode(Array(buffer.readableBytesView))) { e in
            XCTAssertTrue("\(e)".contains("Invalid patternType MATCH"), "\(e)")
        }
    }
}
