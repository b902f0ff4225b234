import Foundation
import NIOCore
import SiltProtocol
import XCTest
@testable import SiltAdmin

/// kafka-reassign-partitions: command lines, the JSON files in and out, the proposal of
/// --generate, the requests and the text printed, without a network (the lead's cluster
/// integration test runs the tool against two brokers).
final class KafkaReassignPartitionsTests: XCTestCase {
    typealias KR = KafkaReassignPartitions
    typealias TP = KafkaReassignPartitions.TopicPartition
    let bs = ["--bootstrap-server", "127.0.0.1:9092"]

    func options(_ args: [String]) throws -> KR.Options {
        guard case .run(let o) = try KR.parse(args) else { throw AdminSession.Failure("help") }
        return o
    }

    func assertFails(_ body: @autoclosure () throws -> Any, _ text: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try body(), file: file, line: line) { e in
            XCTAssertTrue("\(e)".contains(text), "\(e)", file: file, line: line)
        }
    }

    // MARK: - Command line

    func testParsesKafkasForms() throws {
        let execute = try options(bs + ["--reassignment-json-file", "r.json", "--execute", "--additional", "--throttle", "50000000",
                                        "--replica-alter-log-dirs-throttle=100", "--timeout", "5000"])
        XCTAssertEqual(execute.action, .execute)
        XCTAssertEqual(execute.bootstrap, [.init(host: "127.0.0.1", port: 9092)])
        XCTAssertEqual(execute.reassignmentJsonFile, "r.json")
        XCTAssertTrue(execute.additional)
        XCTAssertEqual(execute.throttle, 50_000_000)
        XCTAssertEqual(execute.logDirsThrottle, 100)
        XCTAssertEqual(execute.timeoutMs, 5000)

        let generate = try options(bs + ["--topics-to-move-json-file", "t.json", "--broker-list", "5,2,3", "--generate",
                                         "--disable-rack-aware"])
        XCTAssertEqual(generate.action, .generate)
        XCTAssertEqual(generate.topicsToMoveJsonFile, "t.json")
        XCTAssertEqual(generate.brokerList, [5, 2, 3], "in the given order")
        XCTAssertTrue(generate.disableRackAware)

        let verify = try options(bs + ["--verify", "--reassignment-json-file=r.json", "--preserve-throttles"])
        XCTAssertEqual(verify.action, .verify)
        XCTAssertTrue(verify.preserveThrottles)
        XCTAssertEqual(try options(bs + ["--cancel", "--reassignment-json-file", "r.json"]).action, .cancel)
        XCTAssertEqual(try options(bs + ["--list", "--command-config", "admin.properties"]).commandConfig, "admin.properties")
        XCTAssertEqual(try KR.parse(["--help"]), .help)
    }

    func testRefusesBadCommandLines() {
        let file = ["--reassignment-json-file", "r.json"]
        assertFails(try KR.parse(bs + file),
                    "Command must include exactly one action: --generate, --execute, --verify, --cancel, --list")
        assertFails(try KR.parse(bs + file + ["--execute", "--verify"]), "exactly one action")
        assertFails(try KR.parse(file + ["--execute"]), "Please specify either --bootstrap-server or --bootstrap-controller")
        assertFails(try KR.parse(bs + ["--execute"]), "Missing required argument \"[reassignment-json-file]\"")
        assertFails(try KR.parse(bs + ["--generate", "--topics-to-move-json-file", "t.json"]),
                    "Missing required argument \"[broker-list]\"")
        assertFails(try KR.parse(bs + file + ["--verify", "--throttle", "10"]), "Option \"[throttle]\" can't be used with action \"[verify]\"")
        assertFails(try KR.parse(bs + file + ["--execute", "--broker-list", "1"]), "Option \"[broker-list]\" can't be used with action \"[execute]\"")
        assertFails(try KR.parse(bs + file + ["--list"]), "Option \"[reassignment-json-file]\" can't be used with action \"[list]\"")
        assertFails(try KR.parse(bs + file + ["--execute", "--throttle", "fast"]), "Option --throttle: 'fast' is not a long integer")
        assertFails(try KR.parse(bs + ["--generate", "--topics-to-move-json-file", "t", "--broker-list", "1,x"]),
                    "--broker-list: 'x' is not a broker id")
        assertFails(try KR.parse(bs + ["--generate", "--topics-to-move-json-file", "t", "--broker-list", "1,2,1,2"]),
                    "Broker list contains duplicate entries: [1, 2]")
        assertFails(try KR.parse(bs + file + ["--execute", "--frobnicate"]), "--frobnicate is not a recognized option")
        assertFails(try KR.parse(bs + file + ["--execute", "stray"]), "Unexpected argument 'stray'")
        assertFails(try KR.parse(["--zookeeper", "z:2181", "--list"]), "--zookeeper is not supported: Silt has no ZooKeeper")
        assertFails(try KR.parse(["--bootstrap-controller", "c:9093", "--list"]), "--bootstrap-controller is not supported")
        assertFails(try KR.parse(["--bootstrap-server", "nohost", "--list"]), "invalid host:port 'nohost'")
        assertFails(try KR.parse(bs + ["--execute", "--reassignment-json-file"]), "Option --reassignment-json-file requires an argument")
    }

    /// Throttles are accepted with --execute and warned about; -1 (Kafka's "none") is silent.
    func testThrottlesWarnThatTheyHaveNoEffect() throws {
        let o = try options(bs + ["--execute", "--reassignment-json-file", "r", "--throttle", "1000",
                                  "--replica-alter-log-dirs-throttle", "-1"])
        let w = KR.warnings(o)
        XCTAssertEqual(w.count, 1)
        XCTAssertTrue(w[0].hasPrefix("Warning: --throttle 1000 has no effect: Silt moves no data between brokers"), w[0])
        XCTAssertEqual(KR.warnings(try options(bs + ["--execute", "--reassignment-json-file", "r"])), [])
    }

    // MARK: - JSON in and out

    /// Kafka's own output (ReassignPartitionsUnitTest, one replica per partition) parses and
    /// prints back byte for byte.
    func testReassignmentJSONRoundTripsKafkasForm() throws {
        let kafka = "{\"version\":1,\"partitions\":"
            + "[{\"topic\":\"bar\",\"partition\":0,\"replicas\":[7],\"log_dirs\":[\"any\"]},"
            + "{\"topic\":\"foo\",\"partition\":1,\"replicas\":[4],\"log_dirs\":[\"any\"]}]}"
        let parsed = try KR.parseReassignment(kafka)
        XCTAssertEqual(parsed, [KR.Assignment(TP("bar", 0), [7]), KR.Assignment(TP("foo", 1), [4])])
        XCTAssertEqual(KR.reassignmentJSON(try KR.checkForExecute(parsed)), kafka)

        // The form of Kafka's --help (spaced, version last, no log_dirs) and any order in.
        let help = "{\"partitions\":\n\t[{\"topic\": \"foo\",\n\t  \"partition\": 1,\n\t  \"replicas\": [3] },"
            + "{\"partition\": 0, \"topic\": \"foo\", \"replicas\": [2]}],\n\"version\":1\n}\n"
        let targets = try KR.checkForExecute(try KR.parseReassignment(help))
        XCTAssertEqual(KR.reassignmentJSON(targets),
                       "{\"version\":1,\"partitions\":[{\"topic\":\"foo\",\"partition\":0,\"replicas\":[2],\"log_dirs\":[\"any\"]},"
                       + "{\"topic\":\"foo\",\"partition\":1,\"replicas\":[3],\"log_dirs\":[\"any\"]}]}")
        // No version means 1; no partitions is an empty list (refused by --execute only).
        XCTAssertEqual(try KR.parseReassignment("{}"), [])
        XCTAssertEqual(KR.reassignmentJSON([:]), "{\"version\":1,\"partitions\":[]}")
    }

    /// The rollback text is Kafka's (ReassignPartitionsUnitTest's expected string, which has
    /// several replicas a partition: the printer takes whatever Metadata shows).
    func testCurrentAssignmentTextIsKafkas() {
        let current: [TP: [Int32]] = [TP("bar", 0): [7, 8], TP("foo", 1): [4, 5, 6]]
        XCTAssertEqual(KR.currentAssignmentText(current), [
            "Current partition replica assignment",
            "",
            "{\"version\":1,\"partitions\":"
                + "[{\"topic\":\"bar\",\"partition\":0,\"replicas\":[7,8],\"log_dirs\":[\"any\",\"any\"]},"
                + "{\"topic\":\"foo\",\"partition\":1,\"replicas\":[4,5,6],\"log_dirs\":[\"any\",\"any\",\"any\"]}]}",
            "",
            "Save this to use as the --reassignment-json-file option during rollback",
        ].joined(separator: "\n") + "\n")
    }

    func testReassignmentJSONRefusals() {
        assertFails(try KR.parseReassignment("{\"version\":1,\"partitions\":[{\"topic\":\"foo\",\"partition\":0,\"replicas\":[1,2]}]}"),
                    "Partition foo-0 has replicas [1, 2]: Silt keeps one replica per partition (object storage is the replica): "
                    + "give exactly one broker")
        assertFails(try KR.parseReassignment("{\"partitions\":[{\"topic\":\"foo\",\"partition\":0,\"replicas\":[1],\"log_dirs\":[\"/tmp/a\"]}]}"),
                    "log dir '/tmp/a' cannot be honoured")
        assertFails(try KR.parseReassignment("{\"partitions\":[{\"topic\":\"foo\",\"partition\":0,\"replicas\":[1],\"log_dirs\":[\"any\",\"any\"]}]}"),
                    "Size of replicas list [1] is different from size of log dirs list [any, any] for partition foo-0")
        assertFails(try KR.parseReassignment("{\"version\":2,\"partitions\":[]}"), "Not supported version field value 2")
        assertFails(try KR.parseReassignment("{\"partitions\":[{\"topic\":\"foo\",\"partition\":0,"),
                    "The input string is not a valid JSON")
        assertFails(try KR.parseReassignment("not json"), "The input string is not a valid JSON: not JSON")
        assertFails(try KR.parseReassignment("[1]"), "The input string is not a valid JSON: the top level is not an object")
        assertFails(try KR.parseReassignment("{\"partitions\":[{\"topic\":\"foo\",\"partition\":\"0\",\"replicas\":[1]}]}"),
                    "partitions[0].partition is not an integer")
        assertFails(try KR.parseReassignment("{\"partitions\":[{\"topic\":\"foo\",\"partition\":0.5,\"replicas\":[1]}]}"),
                    "a number is not a 32-bit integer")
        assertFails(try KR.parseReassignment("{\"partitions\":[{\"partition\":0,\"replicas\":[1]}]}"), "partitions[0].topic is missing")
        assertFails(try KR.parseReassignment("{\"partitions\":[{\"topic\":\"foo\",\"partition\":0,\"replicas\":[\"1\"]}]}"),
                    "partitions[0].replicas[0] is not an integer")
    }

    /// Kafka's checks before --execute (ReassignPartitionsUnitTest.testParseExecuteAssignmentArgs, one replica each).
    func testExecuteChecksAreKafkas() {
        assertFails(try KR.checkForExecute(try KR.parseReassignment("{\"version\":1,\"partitions\":[]}")),
                    "Partition reassignment list cannot be empty")
        assertFails(try KR.checkForExecute(try KR.parseReassignment(
            "{\"version\":1,\"partitions\":[{\"topic\":\"foo\",\"partition\":0,\"replicas\":[]}]}")),
                    "Partition replica list cannot be empty")
        assertFails(try KR.checkForExecute(try KR.parseReassignment(
            "{\"version\":1,\"partitions\":[{\"topic\":\"foo\",\"partition\":0,\"replicas\":[0],\"log_dirs\":[\"any\"]},"
            + "{\"topic\":\"foo\",\"partition\":0,\"replicas\":[2],\"log_dirs\":[\"any\"]}]}")),
                    "Partition reassignment contains duplicate topic partitions: foo-0")
        // Replica lists with a broker twice are refused too; Silt's one-broker rule comes first.
        assertFails(try KR.checkForExecute([KR.Assignment(TP("foo", 0), [0, 0])]),
                    "Partition replica lists may not contain duplicate entries: foo-0 contains multiple entries for 0")
    }

    func testTopicsToMoveJSON() throws {
        XCTAssertEqual(try KR.parseTopicsToMove("{\"topics\": [{\"topic\": \"foo\"},{\"topic\": \"bar\"}], \"version\":1}"), ["foo", "bar"])
        XCTAssertEqual(try KR.parseTopicsToMove("{\"topics\":[{\"topic\":\"foo\"}]}"), ["foo"])
        assertFails(try KR.parseTopicsToMove("{\"topics\": [{\"topic\": \"foo\"},{\"topic\": \"foo\"}], \"version\":1}"),
                    "List of topics to reassign contains duplicate entries: [foo]")
        assertFails(try KR.parseTopicsToMove("{\"topics\": [{\"name\": \"foo\"}]}"), "topics[0].topic is missing")
        assertFails(try KR.parseTopicsToMove("{\"version\":3}"), "Not supported version field value 3")
    }

    func testJSONStringsAreEscapedAsJacksonDoes() {
        XCTAssertEqual(KR.jsonString("a.b-c_d"), "\"a.b-c_d\"")
        XCTAssertEqual(KR.jsonString("q\"\\/\n\u{1}é"), "\"q\\\"\\\\/\\n\\u0001é\"")
    }

    // MARK: - --generate

    /// One broker a partition, round robin over the sorted brokers in topic/partition order.
    func testGenerateSpreadsOneBrokerPerPartitionEvenly() {
        let parts = [TP("u", 1), TP("t", 2), TP("t", 0), TP("u", 0), TP("t", 1)]
        let proposal = KR.propose(parts, brokers: [2, 1])
        XCTAssertEqual(proposal, [TP("t", 0): [1], TP("t", 1): [2], TP("t", 2): [1], TP("u", 0): [2], TP("u", 1): [1]])
        // Counts differ by at most one, whatever the numbers.
        let many = (0..<10).map { TP("x", Int32($0)) }
        let counts = Dictionary(grouping: KR.propose(many, brokers: [7, 3, 5]).values.map { $0[0] }, by: { $0 }).mapValues(\.count)
        XCTAssertEqual(counts, [3: 4, 5: 3, 7: 3])

        let current: [TP: [Int32]] = [TP("t", 0): [2], TP("t", 1): [2]]
        XCTAssertEqual(KR.generateText(current: current, proposed: KR.propose(Array(current.keys), brokers: [1, 2])), [
            "Current partition replica assignment",
            "{\"version\":1,\"partitions\":[{\"topic\":\"t\",\"partition\":0,\"replicas\":[2],\"log_dirs\":[\"any\"]},"
                + "{\"topic\":\"t\",\"partition\":1,\"replicas\":[2],\"log_dirs\":[\"any\"]}]}",
            "",
            "Proposed partition reassignment configuration",
            "{\"version\":1,\"partitions\":[{\"topic\":\"t\",\"partition\":0,\"replicas\":[1],\"log_dirs\":[\"any\"]},"
                + "{\"topic\":\"t\",\"partition\":1,\"replicas\":[2],\"log_dirs\":[\"any\"]}]}",
        ].joined(separator: "\n") + "\n")
    }

    // MARK: - Requests and answers

    func testAlterRequestCarriesTargetsAndCancels() throws {
        let req = KR.alterRequest([TP("b", 0): [2], TP("a", 1): nil, TP("a", 0): [1]])
        XCTAssertEqual(req.topics.map(\.name), ["a", "b"])
        XCTAssertEqual(req.topics[0].partitions.map(\.partitionIndex), [0, 1])
        XCTAssertEqual(req.topics[0].partitions.map(\.replicas), [[1], nil])
        XCTAssertEqual(req.topics[1].partitions.map(\.replicas), [[2]])
        // A null replica list (cancel) survives the wire at v0, as Kafka reads it.
        var buf = ByteBufferAllocator().buffer(capacity: 64)
        req.encode(into: &buf, version: 0)
        let back = try AlterPartitionReassignmentsRequest(from: &buf, version: 0)
        XCTAssertEqual(back.topics[0].partitions.map(\.replicas), [[1], nil])
        XCTAssertEqual(buf.readableBytes, 0)
    }

    func testAlterErrorsNameKafkasErrors() {
        var resp = AlterPartitionReassignmentsResponse()
        var t = AlterPartitionReassignmentsResponse.ReassignableTopicResponse()
        t.name = "t"
        for (i, code, message) in [(Int32(0), Int16(0), String?.none), (1, KafkaErrorCode.invalidReplicaAssignment, "broker 9 is not registered."),
                                   (2, KafkaErrorCode.noReassignmentInProgress, "")] {
            var p = AlterPartitionReassignmentsResponse.ReassignablePartitionResponse()
            p.partitionIndex = i
            p.errorCode = code
            p.errorMessage = message
            t.partitions.append(p)
        }
        resp.responses = [t]
        let asked: Set<TP> = [TP("t", 0), TP("t", 1), TP("t", 2), TP("t", 3)]
        let errors = KR.alterErrors(resp, asked: asked)
        XCTAssertEqual(errors, [TP("t", 1): "INVALID_REPLICA_ASSIGNMENT: broker 9 is not registered.",
                                TP("t", 2): "NO_REASSIGNMENT_IN_PROGRESS",
                                TP("t", 3): "UNKNOWN_SERVER_ERROR: the answer does not mention this partition"])
        XCTAssertEqual(KR.errorList("Error reassigning partition(s):", errors), """
            Error reassigning partition(s):
            t-1: INVALID_REPLICA_ASSIGNMENT: broker 9 is not registered.
            t-2: NO_REASSIGNMENT_IN_PROGRESS
            t-3: UNKNOWN_SERVER_ERROR: the answer does not mention this partition
            """)
        // A top-level error fails every partition asked.
        resp.errorCode = KafkaErrorCode.notController
        resp.errorMessage = nil
        XCTAssertEqual(KR.alterErrors(resp, asked: [TP("t", 0)]), [TP("t", 0): "NOT_CONTROLLER"])
    }

    /// --verify's lines (ReassignPartitionsUnitTest.testPartitionReassignStatesToString).
    func testVerifyTextIsKafkas() {
        let states: [TP: KR.PartitionState] = [
            TP("foo", 0): .init(current: [1, 2, 3], target: [1, 2, 3], done: true),
            TP("foo", 1): .init(current: [1, 2, 3], target: [1, 2, 4], done: false),
            TP("bar", 0): .init(current: [1, 2, 3], target: [1, 2, 4], done: false),
        ]
        XCTAssertEqual(KR.statusText(states), """
            Status of partition reassignment:
            Reassignment of partition bar-0 is still in progress.
            Reassignment of partition foo-0 is completed.
            Reassignment of partition foo-1 is still in progress.

            """)
        // From the two answers: moving → in progress; settled elsewhere → Kafka's "no active" line.
        let targets = [KR.Assignment(TP("t", 0), [2]), KR.Assignment(TP("t", 1), [2]), KR.Assignment(TP("t", 2), [2]),
                       KR.Assignment(TP("gone", 0), [1])]
        let s = KR.states(targets, moving: [TP("t", 1)], replicas: [TP("t", 0): [2], TP("t", 2): [1]])
        XCTAssertEqual(KR.statusText(s), """
            Status of partition reassignment:
            There is no active reassignment of partition gone-0, but replica set is  rather than 1.
            Reassignment of partition t-0 is completed.
            Reassignment of partition t-1 is still in progress.
            There is no active reassignment of partition t-2, but replica set is 1 rather than 2.

            """)
    }

    func testListTextIsKafkas() {
        XCTAssertEqual(KR.listText([:]), "No partition reassignments found.\n")
        var resp = ListPartitionReassignmentsResponse()
        var t = ListPartitionReassignmentsResponse.OngoingTopicReassignment()
        t.name = "t"
        var p = ListPartitionReassignmentsResponse.OngoingPartitionReassignment()
        p.partitionIndex = 1
        p.replicas = [1, 2]
        p.addingReplicas = [2]
        p.removingReplicas = [1]
        var q = p
        q.partitionIndex = 0
        q.replicas = [3]
        q.addingReplicas = []
        q.removingReplicas = []
        t.partitions = [p, q]
        resp.topics = [t]
        XCTAssertEqual(KR.listText(KR.ongoing(resp)), """
            Current partition reassignments:
            t-0: replicas: 3.
            t-1: replicas: 1,2. adding: 2. removing: 1.

            """)
        let req = KR.listRequest([TP("b", 0), TP("a", 2), TP("a", 0), TP("a", 2)])
        XCTAssertEqual(req.topics?.map(\.name), ["a", "b"])
        XCTAssertEqual(req.topics?.map(\.partitionIndexes), [[0, 2], [0]])
        XCTAssertNil(KR.listRequest(nil).topics, "null: every partition")
    }

    // MARK: - Running

    /// A missing or bad file is reported before any connection (port 1 would refuse it).
    func testFileProblemsComeBeforeConnecting() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("silt-reassign-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        func run(_ args: [String]) throws -> (Int32, [String]) {
            var errors: [String] = []
            let o = try options(["--bootstrap-server", "127.0.0.1:1"] + args)
            let code = KR.run(o, out: { XCTFail("no output expected: \($0)") }, err: { errors.append($0) })
            return (code, errors)
        }
        let missing = dir.appendingPathComponent("missing.json").path
        XCTAssertEqual(try run(["--execute", "--reassignment-json-file", missing]).1,
                       ["Error: --reassignment-json-file \(missing): no such file"])
        let two = dir.appendingPathComponent("two.json")
        try Data("{\"version\":1,\"partitions\":[{\"topic\":\"t\",\"partition\":0,\"replicas\":[1,2]}]}".utf8).write(to: two)
        let (code, errors) = try run(["--verify", "--reassignment-json-file", two.path])
        XCTAssertEqual(code, 1)
        XCTAssertEqual(errors, ["Error: Partition t-0 has replicas [1, 2]: Silt keeps one replica per partition "
            + "(object storage is the replica): give exactly one broker"])
        let topics = dir.appendingPathComponent("topics.json")
        try Data("{\"topics\":[{\"topic\":\"t\"}".utf8).write(to: topics)
        let bad = try run(["--generate", "--topics-to-move-json-file", topics.path, "--broker-list", "1"])
        XCTAssertEqual(bad.0, 1)
        XCTAssertEqual(bad.1.count, 1)
        XCTAssertTrue(bad.1[0].hasPrefix("Error: The input string is not a valid JSON"), bad.1[0])
        // A good file gets as far as the connection.
        XCTAssertEqual(try run(["--list"]).1, ["Error: Failed to connect to 127.0.0.1:1: Connection refused"])
    }
}
