import Foundation
import SiltConfig
import XCTest
import SiltObjectStore
@testable import SiltAdmin

final class ClusterMarkerTests: XCTestCase {
    var dir: String!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("silt-marker-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: dir)
    }

    func testFirstStartWritesMarkerThenSameIdMatchesAndOtherIdIsRefused() async throws {
        let store = try LocalObjectStore(rootDirectory: dir)
        let first = try await NodeStart.prepareNodeStart(clusterId: "clusterA", nodeId: 0, store: store, bucket: "ops")
        XCTAssertEqual(first, .created)
        let body = String(decoding: try await store.get("cluster/clusterA", range: nil), as: UTF8.self)
        XCTAssertTrue(body.contains("cluster.id=clusterA"))
        XCTAssertTrue(body.contains("created.by.node.id=0"))

        let again = try await NodeStart.prepareNodeStart(clusterId: "clusterA", nodeId: 1, store: store, bucket: "ops")
        XCTAssertEqual(again, .matched)

        do {
            _ = try await NodeStart.prepareNodeStart(clusterId: "clusterB", nodeId: 0, store: store, bucket: "ops")
            XCTFail("a start for another cluster must be refused")
        } catch let e as NodeStart.ClusterMismatch {
            XCTAssertEqual(e.existing, ["clusterA"])
            XCTAssertTrue(e.description.contains("bucket ops belongs to cluster clusterA"), e.description)
            XCTAssertTrue(e.description.contains("this node starts cluster clusterB"), e.description)
        }
        // The refused start wrote nothing.
        let markers = try await NodeStart.markers(store)
        XCTAssertEqual(markers, ["clusterA"])
    }

    func testNoStoreIsSkipped() async throws {
        let outcome = try await NodeStart.prepareNodeStart(clusterId: "x", nodeId: 0, store: nil)
        XCTAssertEqual(outcome, .skipped)
    }

    func testFromS3URLAndConfig() async throws {
        let store = try LocalObjectStore(rootDirectory: dir)
        let u = try S3URL.parse("s3://127.0.0.1:9000?s3-access-key=a&s3-secret-key=b&s3-region=r&s3-endpoint-protocol=http&s3-data-bucket=d&s3-ops-bucket=o&cluster-id=CID1")
        let config = try ServerConfig.load(propertiesFile: nil, layers: NodeStart.layers(s3url: u), overrides: ["node.id=3"])
        let r1 = try await NodeStart.prepareNodeStart(s3url: u, config: config, store: store)
        XCTAssertEqual(r1, .created)
        let other = try S3URL.parse(u.format().replacingOccurrences(of: "cluster-id=CID1", with: "cluster-id=CID2"))
        let config2 = try ServerConfig.load(propertiesFile: nil, layers: NodeStart.layers(s3url: other), overrides: [])
        do {
            _ = try await NodeStart.prepareNodeStart(s3url: other, config: config2, store: store)
            XCTFail("expected a mismatch")
        } catch let e as NodeStart.ClusterMismatch {
            XCTAssertTrue(e.description.contains("bucket o belongs to cluster CID1"), e.description)
        }
    }

    func testBlockingVariant() throws {
        let store = try LocalObjectStore(rootDirectory: dir)
        XCTAssertEqual(try NodeStart.prepareNodeStartBlocking(clusterId: "c1", nodeId: 0, store: store), .created)
        XCTAssertThrowsError(try NodeStart.prepareNodeStartBlocking(clusterId: "c2", nodeId: 0, store: store))
    }
}
