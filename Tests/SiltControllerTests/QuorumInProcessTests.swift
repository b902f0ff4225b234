import Foundation
import Logging
import NIOCore
import NIOPosix
import SiltConfig
import SiltMetadata
import SiltNet
import SiltProtocol
import XCTest
@testable import SiltController

/// Three controllers of one quorum in this process, on real sockets (the production driver,
/// disk and KRaft wire), and the client brokers use to find the active one.
final class QuorumInProcessTests: XCTestCase {
    var root: String!
    var group: MultiThreadedEventLoopGroup!
    var controllers: [MetadataController?] = []
    var servers: [KafkaServer?] = []
    var ports: [Int] = []

    override func setUpWithError() throws {
        root = NSTemporaryDirectory() + "silt-quorum-\(UUID().uuidString)"
        group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        ports = try (0..<3).map { _ in try Self.freePort() }
        let voters = ports.enumerated().map { QuorumDriver.Voter(id: Int32($0.offset), host: "127.0.0.1", port: $0.element) }
        for i in 0..<3 {
            try start(i, voters: voters)
        }
    }

    override func tearDownWithError() throws {
        for i in 0..<3 { stop(i) }
        try group.syncShutdownGracefully()
        try? FileManager.default.removeItem(atPath: root)
    }

    static func freePort() throws -> Int {
        let channel = try ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton).bind(host: "127.0.0.1", port: 0).wait()
        defer { try? channel.close().wait() }
        return channel.localAddress!.port!
    }

    func start(_ i: Int, voters: [QuorumDriver.Voter]) throws {
        var logger = Logger(label: "quorum-\(i)")
        logger.logLevel = .warning
        let setup = MetadataController.QuorumSetup(nodeId: Int32(i), voters: voters, clusterId: "in-process",
                                                   electionTimeoutMs: 150, fetchTimeoutMs: 300, electionBackoffMaxMs: 100)
        let c = try MetadataController(directory: root + "/c\(i)", logger: logger, snapshotIntervalBytes: 1 << 20,
                                       quorum: setup, group: group, onFatal: { XCTFail("controller \(i) stopped: \($0)") }) { _ in }
        let config = try ServerConfig(properties: ["node.id": "\(i)", "log.dirs": root + "/c\(i)",
                                                   "controller.quorum.voters": voters.map { "\($0.id)@\($0.host):\($0.port)" }
                                                       .joined(separator: ","),
                                                   "listeners": "CONTROLLER://127.0.0.1:\(ports[i])",
                                                   "process.roles": "controller"])
        let server = KafkaServer(group: group, service: ControllerService(controller: c, config: config, logger: logger),
                                 frameBytesMax: 1 << 20, logger: logger)
        try server.start(endpoints: [.init(name: "CONTROLLER", host: "127.0.0.1", port: ports[i])])
        if controllers.count > i { controllers[i] = c; servers[i] = server } else { controllers.append(c); servers.append(server) }
    }

    func stop(_ i: Int) {
        controllers[i]?.close()
        servers[i]?.stop()
        controllers[i] = nil
        servers[i] = nil
    }

    func activeController(timeout: TimeInterval = 10) throws -> Int {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if let i = controllers.indices.first(where: { controllers[$0]?.isActive == true }) { return i }
            usleep(10_000)
        }
        throw NoLeader(description: "no active controller within \(timeout) s")
    }

    struct NoLeader: Error, CustomStringConvertible { var description: String }

    func createTopic(_ client: ControllerQuorumClient, _ name: String) throws -> Int16 {
        var t = CreateTopicsRequest.CreatableTopic()
        t.name = name
        t.numPartitions = 1
        t.replicationFactor = 1
        var req = CreateTopicsRequest()
        req.topics = [t]
        req.timeoutMs = 5000
        return try client.send(req, version: 5, timeout: .seconds(10)).wait().topics[0].errorCode
    }

    func testTheClientFindsTheActiveControllerAndChangesSurviveItsLoss() throws {
        var leader = -1
        XCTAssertNoThrow(leader = try activeController(), "a leader is elected")
        // The client starts at a follower: it is sent on to the leader.
        let follower = (leader + 1) % 3
        let endpoints = [follower, leader, (leader + 2) % 3].map {
            ControllerQuorumClient.Endpoint(id: Int32($0), host: "127.0.0.1", port: ports[$0])
        }
        let client = ControllerQuorumClient(group: group, endpoints: endpoints, clientId: "test", logger: Logger(label: "client"))
        defer { client.close() }
        for n in 0..<5 { XCTAssertEqual(try createTopic(client, "before-\(n)"), 0) }

        // The answer came after the commit: every voter applies the topics.
        let deadline = Date().addingTimeInterval(5)
        while Date() < deadline, !controllers.allSatisfy({ $0!.committedImage.topic(named: "before-4") != nil }) { usleep(10_000) }
        for c in controllers { XCTAssertNotNil(c!.committedImage.topic(named: "before-4")) }
        // A follower refuses changes without validating them against its own image.
        XCTAssertThrowsError(try controllers[follower]!.createTopic(name: "before-0", partitions: 1, configs: [:], validateOnly: false)) {
            XCTAssertEqual(($0 as? ControllerError)?.kafkaErrorCode, 41, "NOT_CONTROLLER, not TOPIC_ALREADY_EXISTS")
        }

        // The leader goes; the other two elect a new one and the client follows.
        stop(leader)
        var next = -1
        XCTAssertNoThrow(next = try activeController())
        XCTAssertNotEqual(next, leader)
        for n in 0..<5 { XCTAssertEqual(try createTopic(client, "after-\(n)"), 0) }
        XCTAssertEqual(try createTopic(client, "before-2"), 36, "TOPIC_ALREADY_EXISTS: the new leader has every committed topic")
        XCTAssertEqual(controllers[next]!.committedImage.topicsByName.keys.filter { $0.hasPrefix("before-") }.count, 5)
    }

    /// Voter sets are compared by ids: another name for a voter is not a different set.
    func testVoterSetsAreComparedByIds() {
        let q = controllers[0]!.quorum!
        XCTAssertTrue(q.sameVoters(q.voterString))
        XCTAssertTrue(q.sameVoters("2@ctrl-2:9093,0@ctrl-0:9093,1@ctrl-1:9093"))
        XCTAssertFalse(q.sameVoters("0@127.0.0.1:1,1@127.0.0.1:2,5@127.0.0.1:3"))
        XCTAssertFalse(q.sameVoters("0@127.0.0.1:1,1@127.0.0.1:2"))
        XCTAssertFalse(q.sameVoters(""))
        XCTAssertFalse(q.sameVoters("zero@host:1,1@h:2,2@h:3"))
    }
}
