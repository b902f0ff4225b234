import Foundation
import Logging
import NIOCore
import NIOPosix
import SiltNet
import SiltProtocol
import XCTest
@testable import SiltAdmin

final class MetadataQuorumTests: XCTestCase {
    typealias MQ = MetadataQuorum
    static let nowMs: Int64 = 1_700_000_010_000

    // MARK: - Fixture: 3 voters (leader 1) and 2 observers, as a v2 response on the wire

    static func replica(_ id: Int32, _ dir: KafkaUUID, _ leo: Int64, _ fetch: Int64, _ caughtUp: Int64)
        -> DescribeQuorumResponse.ReplicaState {
        var r = DescribeQuorumResponse.ReplicaState()
        r.replicaId = id
        r.replicaDirectoryId = dir
        r.logEndOffset = leo
        r.lastFetchTimestamp = fetch
        r.lastCaughtUpTimestamp = caughtUp
        return r
    }

    static func response(errorCode: Int16 = 0, partitionError: Int16 = 0, message: String? = nil) -> DescribeQuorumResponse {
        var p = DescribeQuorumResponse.PartitionData()
        p.partitionIndex = 0
        p.errorCode = partitionError
        p.errorMessage = partitionError == 0 ? nil : message
        p.leaderId = 1
        p.leaderEpoch = 7
        p.highWatermark = 1490
        // The leader is not first: the table must still start with it.
        p.currentVoters = [
            replica(2, KafkaUUID(high: 0x3333_3333_3333_3333, low: 0x4444_4444_4444_4444), 1480, 1_700_000_009_800, 1_700_000_009_700),
            replica(1, KafkaUUID(high: 0x1111_1111_1111_1111, low: 0x2222_2222_2222_2222), 1500, nowMs, nowMs),
            replica(3, KafkaUUID(high: 0x5555_5555_5555_5555, low: 0x6666_6666_6666_6666), 1400, 1_700_000_009_500, 1_700_000_007_000),
        ]
        p.observers = [
            replica(4, KafkaUUID(high: 0x7777_7777_7777_7777, low: 0x0123_4567_89AB_CDEF), 1500, 1_700_000_009_900, 1_700_000_009_900),
            replica(5, .zero, 1200, -1, -1),
        ]
        var t = DescribeQuorumResponse.TopicData()
        t.topicName = "__cluster_metadata"
        t.partitions = [p]
        var r = DescribeQuorumResponse()
        r.errorCode = errorCode
        r.errorMessage = errorCode == 0 ? nil : message
        r.topics = [t]
        r.nodes = (1...3).map { id in
            var n = DescribeQuorumResponse.Node()
            n.nodeId = Int32(id)
            var l = DescribeQuorumResponse.Listener()
            l.name = "CONTROLLER"
            l.host = "controller-\(id)"
            l.port = 9093
            n.listeners = [l]
            return n
        }
        return r
    }

    /// Encodes at `version` and decodes it back, as the client would receive it.
    static func roundTrip(_ r: DescribeQuorumResponse, version: Int16) throws -> DescribeQuorumResponse {
        var buf = ByteBufferAllocator().buffer(capacity: 512)
        r.encode(into: &buf, version: version)
        let out = try DescribeQuorumResponse(from: &buf, version: version)
        XCTAssertEqual(buf.readableBytes, 0)
        return out
    }

    static func quorum(version: Int16 = 2) throws -> MQ.QuorumInfo {
        try MQ.QuorumInfo(response: roundTrip(response(), version: version))
    }

    // MARK: - Golden output (Kafka 3.9's format)

    func testStatusGolden() throws {
        let text = try MQ.statusText(clusterId: "MkU3OEVBNTcwNTJENDM2Qg", Self.quorum())
        XCTAssertEqual(text, """
            ClusterId:              MkU3OEVBNTcwNTJENDM2Qg
            LeaderId:               1
            LeaderEpoch:            7
            HighWatermark:          1490
            MaxFollowerLag:         100
            MaxFollowerLagTimeMs:   3000
            CurrentVoters:          [{"id": 2, "directoryId": "MzMzMzMzMzNERERERERERA", "endpoints": ["CONTROLLER://controller-2:9093"]}, \
            {"id": 1, "directoryId": "EREREREREREiIiIiIiIiIg", "endpoints": ["CONTROLLER://controller-1:9093"]}, \
            {"id": 3, "directoryId": "VVVVVVVVVVVmZmZmZmZmZg", "endpoints": ["CONTROLLER://controller-3:9093"]}]
            CurrentObservers:       [{"id": 4, "directoryId": "d3d3d3d3d3cBI0VniavN7w"}, {"id": 5}]

            """)
    }

    func testReplicationGolden() throws {
        let text = try MQ.replicationText(Self.quorum(), humanReadable: false, nowMs: Self.nowMs)
        XCTAssertEqual(text, [
            "NodeId\tDirectoryId           \tLogEndOffset\tLag\tLastFetchTimestamp\tLastCaughtUpTimestamp\tStatus  \t",
            "1     \tEREREREREREiIiIiIiIiIg\t1500        \t0  \t1700000010000     \t1700000010000        \tLeader  \t",
            "2     \tMzMzMzMzMzNERERERERERA\t1480        \t20 \t1700000009800     \t1700000009700        \tFollower\t",
            "3     \tVVVVVVVVVVVmZmZmZmZmZg\t1400        \t100\t1700000009500     \t1700000007000        \tFollower\t",
            "4     \td3d3d3d3d3cBI0VniavN7w\t1500        \t0  \t1700000009900     \t1700000009900        \tObserver\t",
            "5     \tAAAAAAAAAAAAAAAAAAAAAA\t1200        \t300\t-1                \t-1                   \tObserver\t",
        ].map { $0 + "\n" }.joined())
    }

    func testReplicationHumanReadableGolden() throws {
        let text = try MQ.replicationText(Self.quorum(), humanReadable: true, nowMs: Self.nowMs + 250)
        XCTAssertEqual(text, [
            "NodeId\tDirectoryId           \tLogEndOffset\tLag\tLastFetchTimestamp\tLastCaughtUpTimestamp\tStatus  \t",
            "1     \tEREREREREREiIiIiIiIiIg\t1500        \t0  \t250 ms ago        \t250 ms ago           \tLeader  \t",
            "2     \tMzMzMzMzMzNERERERERERA\t1480        \t20 \t450 ms ago        \t550 ms ago           \tFollower\t",
            "3     \tVVVVVVVVVVVmZmZmZmZmZg\t1400        \t100\t750 ms ago        \t3250 ms ago          \tFollower\t",
            "4     \td3d3d3d3d3cBI0VniavN7w\t1500        \t0  \t350 ms ago        \t350 ms ago           \tObserver\t",
            "5     \tAAAAAAAAAAAAAAAAAAAAAA\t1200        \t300\t-1                \t-1                   \tObserver\t",
        ].map { $0 + "\n" }.joined())
    }

    func testVersionZeroResponseHasNoTimestampsDirectoryIdsOrEndpoints() throws {
        let q = try Self.quorum(version: 0)
        XCTAssertTrue(q.nodes.isEmpty)
        XCTAssertTrue((q.voters + q.observers).allSatisfy {
            $0.directoryId == .zero && $0.lastFetchTimestamp == nil && $0.lastCaughtUpTimestamp == nil
        })
        let status = try MQ.statusText(clusterId: "c", q)
        XCTAssertTrue(status.contains("MaxFollowerLagTimeMs:   -1\n"), status)
        XCTAssertTrue(status.contains("CurrentVoters:          [{\"id\": 2}, {\"id\": 1}, {\"id\": 3}]\n"), status)
        XCTAssertTrue(status.contains("CurrentObservers:       [{\"id\": 4}, {\"id\": 5}]\n"), status)
        // --human-readable leaves unknown timestamps as -1 rather than failing.
        let table = try MQ.replicationText(q, humanReadable: true, nowMs: Self.nowMs)
        XCTAssertEqual(table.split(separator: "\n")[1],
                       "1     \tAAAAAAAAAAAAAAAAAAAAAA\t1500        \t0  \t-1                \t-1                   \tLeader  \t")
    }

    // MARK: - Lag

    func testMaxFollowerLag() throws {
        let lag = try MQ.maxFollowerLag(Self.quorum())
        XCTAssertEqual(lag.lag, 100)          // leader LEO 1500 - voter 3's 1400; observers do not count
        XCTAssertEqual(lag.lagTimeMs, 3000)   // leader caught up at now, voter 3 at now - 3000
    }

    func testMaxFollowerLagLeaderIsTheMinimum() throws {
        typealias R = MQ.QuorumInfo.Replica
        // The leader comes first and ties with a follower: Kafka's min keeps the first, the leader → 0.
        var q = MQ.QuorumInfo(leaderId: 1, leaderEpoch: 1, highWatermark: 10, voters: [
            R(replicaId: 1, logEndOffset: 10, lastFetchTimestamp: nil, lastCaughtUpTimestamp: 500),
            R(replicaId: 2, logEndOffset: 10, lastFetchTimestamp: nil, lastCaughtUpTimestamp: 100),
        ], observers: [])
        XCTAssertEqual(try MQ.maxFollowerLag(q).lag, 0)
        XCTAssertEqual(try MQ.maxFollowerLag(q).lagTimeMs, 0)
        // The same tie with the follower first: its caught-up time counts.
        q.voters.reverse()
        XCTAssertEqual(try MQ.maxFollowerLag(q).lagTimeMs, 400)
        // A single voter: no lag.
        q.voters = [R(replicaId: 1, logEndOffset: 10, lastFetchTimestamp: nil, lastCaughtUpTimestamp: nil)]
        XCTAssertEqual(try MQ.maxFollowerLag(q).lag, 0)
        XCTAssertEqual(try MQ.maxFollowerLag(q).lagTimeMs, 0)
        // An unknown caught-up time: -1.
        q.voters.append(R(replicaId: 2, logEndOffset: 4, lastFetchTimestamp: nil, lastCaughtUpTimestamp: 9))
        XCTAssertEqual(try MQ.maxFollowerLag(q).lag, 6)
        XCTAssertEqual(try MQ.maxFollowerLag(q).lagTimeMs, -1)
    }

    func testNoLeaderIsAClearError() {
        let q = MQ.QuorumInfo(leaderId: -1, leaderEpoch: 3, highWatermark: -1, voters: [
            .init(replicaId: 1, logEndOffset: 5, lastFetchTimestamp: nil, lastCaughtUpTimestamp: nil),
        ], observers: [])
        XCTAssertThrowsError(try MQ.statusText(clusterId: "c", q)) { e in
            XCTAssertTrue("\(e)".contains("no leader"), "\(e)")
        }
        XCTAssertThrowsError(try MQ.replicationText(q, humanReadable: false, nowMs: 0))
    }

    func testRelativeTimeRejectsClockDrift() throws {
        XCTAssertEqual(try MQ.relativeTimeMs(900, "last fetch", nowMs: 1000), 100)
        XCTAssertEqual(try MQ.relativeTimeMs(1000, "last fetch", nowMs: 1000), 0)
        XCTAssertThrowsError(try MQ.relativeTimeMs(1001, "last fetch", nowMs: 1000)) { e in
            XCTAssertEqual("\(e)", "Error while computing relative time, possible drift in system clock.\n"
                + "Current timestamp is 1000, last fetch timestamp is 1001")
        }
        XCTAssertThrowsError(try MQ.relativeTimeMs(0, "last caught up", nowMs: 1000))
    }

    // MARK: - Errors in the response

    func testErrorCodeNames() {
        XCTAssertEqual(MQ.errorName(0), "NONE")
        XCTAssertEqual(MQ.errorName(-1), "UNKNOWN_SERVER_ERROR")
        XCTAssertEqual(MQ.errorName(3), "UNKNOWN_TOPIC_OR_PARTITION")
        XCTAssertEqual(MQ.errorName(6), "NOT_LEADER_OR_FOLLOWER")
        XCTAssertEqual(MQ.errorName(35), "UNSUPPORTED_VERSION")
        XCTAssertEqual(MQ.errorName(41), "NOT_CONTROLLER")
        XCTAssertEqual(MQ.errorName(94), "INCONSISTENT_VOTER_SET")
        XCTAssertEqual(MQ.errorName(114), "MISMATCHED_ENDPOINT_TYPE")
        XCTAssertEqual(MQ.errorName(127), "VOTER_NOT_FOUND")
        XCTAssertEqual(MQ.errorName(133), "SHARE_SESSION_LIMIT_REACHED")
        XCTAssertEqual(MQ.errorName(134), "UNKNOWN_SERVER_ERROR")
        XCTAssertEqual(MQ.errorName(-7), "UNKNOWN_SERVER_ERROR")
        XCTAssertEqual(KafkaErrorCode.names.count, 134)
        XCTAssertEqual(Set(KafkaErrorCode.names).count, 134)
    }

    func testPartitionErrorIsNamed() throws {
        let r = try Self.roundTrip(Self.response(partitionError: 6, message: "Node 2 is not the leader"), version: 2)
        XCTAssertThrowsError(try MQ.QuorumInfo(response: r)) { e in
            XCTAssertEqual(e as? MQ.QuorumError, MQ.QuorumError(code: 6, message: "Node 2 is not the leader"))
            XCTAssertEqual("\(e)", "NOT_LEADER_OR_FOLLOWER: Node 2 is not the leader")
        }
        // v0 carries no message: the name alone.
        let r0 = try Self.roundTrip(Self.response(partitionError: 6), version: 0)
        XCTAssertThrowsError(try MQ.QuorumInfo(response: r0)) { e in
            XCTAssertEqual("\(e)", "NOT_LEADER_OR_FOLLOWER")
        }
    }

    func testTopLevelErrorIsNamed() throws {
        let r = try Self.roundTrip(Self.response(errorCode: 31, message: "denied"), version: 2)
        XCTAssertThrowsError(try MQ.QuorumInfo(response: r)) { e in
            XCTAssertEqual("\(e)", "CLUSTER_AUTHORIZATION_FAILED: denied")
        }
    }

    func testUnexpectedTopicShapeIsRejected() {
        var r = Self.response()
        r.topics[0].topicName = "other"
        XCTAssertThrowsError(try MQ.QuorumInfo(response: r)) { e in
            XCTAssertTrue("\(e)".contains("when __cluster_metadata was expected"), "\(e)")
        }
        r = Self.response()
        r.topics = []
        XCTAssertThrowsError(try MQ.QuorumInfo(response: r))
        r = Self.response()
        r.topics[0].partitions[0].partitionIndex = 1
        XCTAssertThrowsError(try MQ.QuorumInfo(response: r))
    }

    func testPickVersion() {
        XCTAssertEqual(MQ.pickVersion(client: 0...2, server: 0...2), 2)
        XCTAssertEqual(MQ.pickVersion(client: 0...2, server: 0...1), 1)
        XCTAssertEqual(MQ.pickVersion(client: 0...2, server: 1...5), 2)
        XCTAssertNil(MQ.pickVersion(client: 0...2, server: 3...4))
        XCTAssertNil(MQ.pickVersion(client: 0...2, server: nil))
    }

    // MARK: - Command line

    func parse(_ line: String) throws -> MQ.Options {
        guard case .run(let o) = try MQ.parse(line.split(separator: " ").map(String.init)) else {
            XCTFail("expected options for '\(line)'")
            throw MQ.Failure.terse("help")
        }
        return o
    }

    func assertFailure(_ line: String, _ expected: MQ.Failure, file: StaticString = #filePath, line l: UInt = #line) {
        XCTAssertThrowsError(try MQ.parse(line.split(separator: " ").map(String.init)), file: file, line: l) { e in
            XCTAssertEqual(e as? MQ.Failure, expected, file: file, line: l)
        }
    }

    func testParseGood() throws {
        XCTAssertEqual(try parse("--bootstrap-server localhost:9092 describe --status"),
                       MQ.Options(bootstrap: .servers([.init(host: "localhost", port: 9092)]), commandConfig: nil,
                                  describe: .status))
        XCTAssertEqual(try parse("--bootstrap-controller c1:9093,c2:9093,[::1]:9093 describe --replication"),
                       MQ.Options(bootstrap: .controllers([.init(host: "c1", port: 9093), .init(host: "c2", port: 9093),
                                                           .init(host: "::1", port: 9093)]),
                                  commandConfig: nil, describe: .replication(humanReadable: false)))
        XCTAssertEqual(try parse("--command-config=/tmp/a.properties --bootstrap-server=b:9092 describe --human-readable --replication"),
                       MQ.Options(bootstrap: .servers([.init(host: "b", port: 9092)]), commandConfig: "/tmp/a.properties",
                                  describe: .replication(humanReadable: true)))
        XCTAssertEqual(try MQ.parse(["--bootstrap-server", "b:1", "describe", "-h"]), .help)
        XCTAssertEqual(try MQ.parse(["--help"]), .help)
        XCTAssertEqual(MQ.HostPort(host: "::1", port: 9093).description, "[::1]:9093")
    }

    func testParseBad() {
        assertFailure("describe --status", .usage("one of the arguments --bootstrap-server --bootstrap-controller is required"))
        assertFailure("--bootstrap-server a:1 --bootstrap-controller b:2 describe --status",
                      .usage("argument --bootstrap-controller: not allowed with argument --bootstrap-server"))
        assertFailure("--bootstrap-controller b:2 --bootstrap-server a:1 describe --status",
                      .usage("argument --bootstrap-server: not allowed with argument --bootstrap-controller"))
        assertFailure("--bootstrap-server a:1", .usage("too few arguments"))
        assertFailure("--bootstrap-server", .usage("argument --bootstrap-server: expected one argument"))
        assertFailure("--bootstrap-server --status describe", .usage("argument --bootstrap-server: expected one argument"))
        assertFailure("--bootstrap-server a:1 describe --status --replication",
                      .terse("Only one of --status or --replication should be specified with describe sub-command"))
        assertFailure("--bootstrap-server a:1 describe",
                      .terse("One of --status or --replication must be specified with describe sub-command"))
        assertFailure("--bootstrap-server a:1 describe --status --human-readable",
                      .terse("The option --human-readable is only supported along with --replication"))
        assertFailure("--bootstrap-server a:1 describe --status --verbose", .usage("unrecognized arguments: '--verbose'"))
        assertFailure("--bootstrap-server a:1 --status describe", .usage("unrecognized arguments: '--status'"))
        assertFailure("--bootstrap-server a:1 list", .usage(
            "argument command: invalid choice: 'list' (choose from 'describe', 'add-controller', 'remove-controller')"))
        for bad in ["a", "a:", ":9092", "a:0", "a:70000", "a:b", "a:1,,b:2", "::1:9092", "[::1]9092"] {
            XCTAssertThrowsError(try MQ.parse(["--bootstrap-server", bad, "describe", "--status"]), bad) { e in
                guard case .usage(let m)? = e as? MQ.Failure else { return XCTFail("\(e)") }
                XCTAssertTrue(m.hasPrefix("argument --bootstrap-server: invalid host:port"), m)
            }
        }
    }

    func testControllerMembershipCommandsAreRefused() {
        for sub in ["add-controller", "remove-controller"] {
            XCTAssertThrowsError(try MQ.parse(["--bootstrap-controller", "c:9093", sub, "--controller-id", "3"])) { e in
                guard case .terse(let m)? = e as? MQ.Failure else { return XCTFail("\(e)") }
                XCTAssertTrue(m.hasPrefix("\(sub) is not supported by Silt yet"), m)
            }
        }
    }

    func testCommandConfig() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("mq-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("client.properties").path
        try "# comment\n! also a comment\nsecurity.protocol=SASL_PLAINTEXT\n\nrequest.timeout.ms: 5000\n"
            .write(toFile: path, atomically: true, encoding: .utf8)
        XCTAssertEqual(try MQ.commandConfigKeys(path: path), ["security.protocol", "request.timeout.ms"])
        let missing = dir.appendingPathComponent("nope.properties").path
        XCTAssertThrowsError(try MQ.commandConfigKeys(path: missing)) { e in
            XCTAssertEqual(e as? MQ.Failure, .terse("Properties file \(missing) does not exist."))
        }
    }

    // MARK: - Against a closed port

    func testUnreachableServer() throws {
        // A port nothing listens on: bind one, close it, and use its number.
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        XCTAssertGreaterThanOrEqual(fd, 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) }
        }
        _ = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
        }
        let port = Int(UInt16(bigEndian: addr.sin_port))
        close(fd)

        var errors: [String] = []
        var output = ""
        let options = MQ.Options(bootstrap: .controllers([.init(host: "127.0.0.1", port: port)]),
                                 commandConfig: nil, describe: .status)
        let code = MQ.run(options, out: { output += $0 }, err: { errors.append($0) })
        XCTAssertEqual(code, 1)
        XCTAssertEqual(output, "")
        XCTAssertEqual(errors.count, 1)
        XCTAssertTrue(errors[0].hasPrefix("Failed to connect to 127.0.0.1:\(port): "), errors[0])
    }

    // MARK: - Against fake nodes on loopback (KafkaServer)

    /// A node that serves ApiVersions, DescribeQuorum (the fixture, or `quorumError`) and,
    /// when `clusterId` is set, DescribeCluster. Anything else closes the connection, as
    /// Silt's servers do.
    final class FakeNode: KafkaRequestHandler, @unchecked Sendable {
        let quorumVersions: ClosedRange<Int16>
        let clusterId: String?
        let quorumError: Int16
        private let lock = NSLock()
        private var _seenQuorumVersions: [Int16] = []
        var seenQuorumVersions: [Int16] { lock.withLock { _seenQuorumVersions } }

        init(quorumVersions: ClosedRange<Int16>, clusterId: String?, quorumError: Int16 = 0) {
            self.quorumVersions = quorumVersions
            self.clusterId = clusterId
            self.quorumError = quorumError
        }

        func handle(frame: ByteBuffer, context: RequestContext) throws -> EventLoopFuture<ByteBuffer?> {
            let (apiKey, apiVersion, _) = try peekRequestKey(frame)
            let loop = context.eventLoop
            switch apiKey {
            case ApiVersionsRequest.apiKey:
                return try serveRequest(ApiVersionsRequest.self, frame: frame, eventLoop: loop) { _, _ in
                    var resp = ApiVersionsResponse()
                    var ranges: [(Int16, ClosedRange<Int16>)] = [(18, 0...4), (55, self.quorumVersions)]
                    if self.clusterId != nil { ranges.append((60, 0...1)) }
                    resp.apiKeys = ranges.map { key, range in
                        var v = ApiVersionsResponse.ApiVersion()
                        v.apiKey = key
                        v.minVersion = range.lowerBound
                        v.maxVersion = range.upperBound
                        return v
                    }
                    return loop.makeSucceededFuture(resp)
                }
            case DescribeQuorumRequest.apiKey where quorumVersions.contains(apiVersion):
                lock.withLock { _seenQuorumVersions.append(apiVersion) }
                return try serveRequest(DescribeQuorumRequest.self, frame: frame, eventLoop: loop) { req, _ in
                    XCTAssertEqual(req.topics.map(\.topicName), ["__cluster_metadata"])
                    XCTAssertEqual(req.topics.first?.partitions.map(\.partitionIndex), [0])
                    let resp = MetadataQuorumTests.response(partitionError: self.quorumError, message: "not the leader")
                    return loop.makeSucceededFuture(resp)
                }
            case DescribeClusterRequest.apiKey where clusterId != nil:
                return try serveRequest(DescribeClusterRequest.self, frame: frame, eventLoop: loop) { _, _ in
                    var resp = DescribeClusterResponse()
                    resp.clusterId = self.clusterId!
                    return loop.makeSucceededFuture(resp)
                }
            default:
                throw RequestViolation("fake node does not serve api key \(apiKey) v\(apiVersion)")
            }
        }
    }

    func withNodes(_ nodes: [FakeNode], _ body: ([MQ.HostPort]) throws -> Void) throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? group.syncShutdownGracefully() }
        var logger = Logger(label: "test.fake-node")
        logger.logLevel = .critical
        var servers: [KafkaServer] = []
        defer { servers.forEach { $0.stop() } }
        var addresses: [MQ.HostPort] = []
        for node in nodes {
            let server = KafkaServer(group: group, service: node, frameBytesMax: 1 << 20, logger: logger)
            try server.start(endpoints: [.init(name: "CONTROLLER", host: "127.0.0.1", port: 0)])
            servers.append(server)
            addresses.append(.init(host: "127.0.0.1", port: server.boundPorts[0]))
        }
        try body(addresses)
    }

    func testControllersSkipANonLeaderAndPrintUnknownClusterId() throws {
        let follower = FakeNode(quorumVersions: 0...2, clusterId: nil, quorumError: 6)
        let leader = FakeNode(quorumVersions: 0...2, clusterId: nil)
        try withNodes([follower, leader]) { addresses in
            var out = "", errors: [String] = []
            let code = MQ.run(MQ.Options(bootstrap: .controllers(addresses), commandConfig: nil, describe: .status),
                              out: { out += $0 }, err: { errors.append($0) })
            XCTAssertEqual(code, 0, "\(errors)")
            XCTAssertEqual(errors, [])
            XCTAssertEqual(out, try MQ.statusText(clusterId: "unknown", Self.quorum()))
        }
        XCTAssertEqual(follower.seenQuorumVersions, [2])
        XCTAssertEqual(leader.seenQuorumVersions, [2])
    }

    func testServerGivesClusterIdAndVersionIsNegotiated() throws {
        let broker = FakeNode(quorumVersions: 0...1, clusterId: "MkU3OEVBNTcwNTJENDM2Qg")
        try withNodes([broker]) { addresses in
            var out = "", errors: [String] = []
            let code = MQ.run(MQ.Options(bootstrap: .servers(addresses), commandConfig: nil, describe: .status),
                              out: { out += $0 }, err: { errors.append($0) })
            XCTAssertEqual(code, 0, "\(errors)")
            // v1: timestamps but no directory ids or endpoints.
            XCTAssertTrue(out.hasPrefix("ClusterId:              MkU3OEVBNTcwNTJENDM2Qg\nLeaderId:               1\n"), out)
            XCTAssertTrue(out.contains("MaxFollowerLagTimeMs:   3000\n"), out)
            XCTAssertTrue(out.hasSuffix("CurrentVoters:          [{\"id\": 2}, {\"id\": 1}, {\"id\": 3}]\n"
                + "CurrentObservers:       [{\"id\": 4}, {\"id\": 5}]\n"), out)
        }
        XCTAssertEqual(broker.seenQuorumVersions, [1])
    }

    func testErrorCodeFromTheLastNodeIsReported() throws {
        let follower = FakeNode(quorumVersions: 0...2, clusterId: nil, quorumError: 6)
        try withNodes([follower]) { addresses in
            var out = "", errors: [String] = []
            let code = MQ.run(MQ.Options(bootstrap: .controllers(addresses), commandConfig: nil,
                                         describe: .replication(humanReadable: false)),
                              out: { out += $0 }, err: { errors.append($0) })
            XCTAssertEqual(code, 1)
            XCTAssertEqual(out, "")
            XCTAssertEqual(errors, ["DescribeQuorum at \(addresses[0]) failed: NOT_LEADER_OR_FOLLOWER: not the leader"])
        }
    }

    func testNodeWithoutDescribeQuorum() throws {
        let old = FakeNode(quorumVersions: 3...4, clusterId: nil)
        try withNodes([old]) { addresses in
            var errors: [String] = []
            let code = MQ.run(MQ.Options(bootstrap: .controllers(addresses), commandConfig: nil, describe: .status),
                              out: { _ in }, err: { errors.append($0) })
            XCTAssertEqual(code, 1)
            XCTAssertEqual(errors, ["UNSUPPORTED_VERSION: \(addresses[0]) does not serve DescribeQuorum (api key 55) versions 0-2"])
        }
        XCTAssertEqual(old.seenQuorumVersions, [])
    }

    /// The named constants Silt uses agree with Kafka's numbering in the one table.
    func testNamedErrorCodesAgreeWithKafkasTable() {
        let named: [(Int16, String)] = [
            (KafkaErrorCode.offsetOutOfRange, "OFFSET_OUT_OF_RANGE"), (KafkaErrorCode.notLeaderOrFollower, "NOT_LEADER_OR_FOLLOWER"),
            (KafkaErrorCode.requestTimedOut, "REQUEST_TIMED_OUT"), (KafkaErrorCode.notController, "NOT_CONTROLLER"),
            (KafkaErrorCode.invalidRequest, "INVALID_REQUEST"), (KafkaErrorCode.fencedLeaderEpoch, "FENCED_LEADER_EPOCH"),
            (KafkaErrorCode.unknownLeaderEpoch, "UNKNOWN_LEADER_EPOCH"), (KafkaErrorCode.inconsistentVoterSet, "INCONSISTENT_VOTER_SET"),
            (KafkaErrorCode.snapshotNotFound, "SNAPSHOT_NOT_FOUND"), (KafkaErrorCode.positionOutOfRange, "POSITION_OUT_OF_RANGE"),
            (KafkaErrorCode.unknownTopicId, "UNKNOWN_TOPIC_ID"), (KafkaErrorCode.inconsistentClusterId, "INCONSISTENT_CLUSTER_ID"),
            (KafkaErrorCode.unsupportedEndpointType, "UNSUPPORTED_ENDPOINT_TYPE"), (KafkaErrorCode.policyViolation, "POLICY_VIOLATION"),
            (KafkaErrorCode.kafkaStorageError, "KAFKA_STORAGE_ERROR"), (KafkaErrorCode.unknownProducerId, "UNKNOWN_PRODUCER_ID"),
            (KafkaErrorCode.coordinatorLoadInProgress, "COORDINATOR_LOAD_IN_PROGRESS"), (KafkaErrorCode.unknownServerError, "UNKNOWN_SERVER_ERROR"),
            (KafkaErrorCode.topicAlreadyExists, "TOPIC_ALREADY_EXISTS"), (KafkaErrorCode.invalidPartitions, "INVALID_PARTITIONS"),
            (KafkaErrorCode.invalidConfig, "INVALID_CONFIG"), (KafkaErrorCode.electionNotNeeded, "ELECTION_NOT_NEEDED"),
            (KafkaErrorCode.eligibleLeadersNotAvailable, "ELIGIBLE_LEADERS_NOT_AVAILABLE"),
        ]
        for (code, name) in named { XCTAssertEqual(KafkaErrorCode.name(code), name, "code \(code)") }
    }
}
