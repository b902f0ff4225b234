import Foundation
import SiltMetadata
import XCTest

/// A snapshot's records rebuild the image they came from.
final class MetadataImageSnapshotTests: XCTestCase {
    /// A topic grown after later topics were created lists stream ids above theirs first;
    /// the snapshot still loads (it stopped the controller with "stream 5 reused" before).
    func testGrownTopicBeforeLaterTopicsRoundTrips() {
        var image = MetadataImage()
        let ids = (0..<3).map { _ in UUID() }
        image.apply(.topic(.init(name: "t0", id: ids[0], partitions: 2, configs: [:], streamIds: [1, 2])))
        image.apply(.topic(.init(name: "t1", id: ids[1], partitions: 2, configs: [:], streamIds: [3, 4])))
        image.apply(.partitionCount(topicId: ids[0], count: 3, streamIds: [5]))
        image.apply(.topic(.init(name: "t2", id: ids[2], partitions: 1, configs: [:], streamIds: [6])))
        image.apply(.brokerRegistration(BrokerRegistration(nodeId: 1, incarnationId: UUID(), brokerEpoch: 1, rack: nil,
                                                           listeners: [BrokerEndpoint(name: "P", host: "h", port: 1)], fenced: false)))
        image.apply(.partitionLeader(streamId: 5, PartitionLeadership(leader: 1, leaderEpoch: 0, replicas: [1], streamEpoch: 0)))
        let rebuilt = MetadataImage(snapshot: image.snapshotRecords, endOffset: image.nextOffset)
        XCTAssertEqual(rebuilt, image)
        XCTAssertEqual(rebuilt.nextStreamId, 7)
        // The log itself still refuses an id below the next one.
        var again = rebuilt
        again.apply(.topic(.init(name: "t3", id: UUID(), partitions: 1, configs: [:], streamIds: [7])))
        XCTAssertEqual(again.nextStreamId, 8)
    }
}
