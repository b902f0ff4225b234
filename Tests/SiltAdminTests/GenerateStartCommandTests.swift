import XCTest
@testable import SiltAdmin

final class GenerateStartCommandTests: XCTestCase {
    let url = "s3://s3.us-east-1.amazonaws.com?s3-access-key=xxx&s3-secret-key=yyy&s3-region=us-east-1&s3-endpoint-protocol=https&s3-data-bucket=automq-data&s3-path-style=false&s3-ops-bucket=automq-ops&cluster-id=40ErA_nGQ_qNPDz0uodTEA"
    let controllers = "192.168.0.1:9093;192.168.0.2:9093;192.168.0.3:9093"
    let brokers = "192.168.0.4:9092;192.168.0.5:9092"
    let voters = "0@192.168.0.1:9093,1@192.168.0.2:9093,2@192.168.0.3:9093"

    func testAutoMQFiveHostExample() throws {
        let lines = try GenerateStartCommand.startLines(s3url: url, controllerList: controllers, brokerList: brokers,
                                                        controllerOnlyMode: false)
        let p = "bin/kafka-server-start.sh --s3-url=\"\(url)\" "
        XCTAssertEqual(lines, [
            p + "--override process.roles=broker,controller --override node.id=0 --override controller.quorum.voters=\(voters) --override listeners=PLAINTEXT://192.168.0.1:9092,CONTROLLER://192.168.0.1:9093 --override advertised.listeners=PLAINTEXT://192.168.0.1:9092 ",
            p + "--override process.roles=broker,controller --override node.id=1 --override controller.quorum.voters=\(voters) --override listeners=PLAINTEXT://192.168.0.2:9092,CONTROLLER://192.168.0.2:9093 --override advertised.listeners=PLAINTEXT://192.168.0.2:9092 ",
            p + "--override process.roles=broker,controller --override node.id=2 --override controller.quorum.voters=\(voters) --override listeners=PLAINTEXT://192.168.0.3:9092,CONTROLLER://192.168.0.3:9093 --override advertised.listeners=PLAINTEXT://192.168.0.3:9092 ",
            p + "--override process.roles=broker --override node.id=3 --override controller.quorum.voters=\(voters) --override listeners=PLAINTEXT://192.168.0.4:9092 --override advertised.listeners=PLAINTEXT://192.168.0.4:9092 ",
            p + "--override process.roles=broker --override node.id=4 --override controller.quorum.voters=\(voters) --override listeners=PLAINTEXT://192.168.0.5:9092 --override advertised.listeners=PLAINTEXT://192.168.0.5:9092 ",
        ])
        let text = try GenerateStartCommand.render(s3url: url, controllerList: controllers, brokerList: brokers, controllerOnlyMode: false)
        let out = text.components(separatedBy: "\n")
        XCTAssertEqual(out.first, "############  Start Commandline ##############")
        XCTAssertEqual(out.filter { $0.hasPrefix("bin/kafka-server-start.sh") }, lines)
        // Each start line is followed by a blank line; the tip comes last.
        for l in lines {
            let i = out.firstIndex(of: l)!
            XCTAssertEqual(out[i + 1], "")
        }
        XCTAssertTrue(text.hasSuffix("\n\nTIPS: Start controllers first and then the brokers.\n\n"))
    }

    func testControllerOnlyMode() throws {
        let lines = try GenerateStartCommand.startLines(s3url: url, controllerList: controllers, brokerList: brokers,
                                                        controllerOnlyMode: true)
        let p = "bin/kafka-server-start.sh --s3-url=\"\(url)\" "
        XCTAssertEqual(lines.count, 5)
        XCTAssertEqual(lines[0], p + "--override process.roles=controller --override node.id=0 --override controller.quorum.voters=\(voters) --override listeners=CONTROLLER://192.168.0.1:9093 ")
        XCTAssertEqual(lines[2], p + "--override process.roles=controller --override node.id=2 --override controller.quorum.voters=\(voters) --override listeners=CONTROLLER://192.168.0.3:9093 ")
        XCTAssertEqual(lines[3], p + "--override process.roles=broker --override node.id=3 --override controller.quorum.voters=\(voters) --override listeners=PLAINTEXT://192.168.0.4:9092 --override advertised.listeners=PLAINTEXT://192.168.0.4:9092 ")
        XCTAssertEqual(lines[4], p + "--override process.roles=broker --override node.id=4 --override controller.quorum.voters=\(voters) --override listeners=PLAINTEXT://192.168.0.5:9092 --override advertised.listeners=PLAINTEXT://192.168.0.5:9092 ")
        // In controller-only mode a controller may listen on 9092.
        XCTAssertNoThrow(try GenerateStartCommand.startLines(s3url: url, controllerList: "10.0.0.1:9092", brokerList: "10.0.0.2:9092", controllerOnlyMode: true))
    }

    func testServersOnlyWhenBrokersAreTheControllers() throws {
        let lines = try GenerateStartCommand.startLines(s3url: url, controllerList: controllers,
                                                        brokerList: "192.168.0.1:9092;192.168.0.2:9092;192.168.0.3:9092",
                                                        controllerOnlyMode: false)
        XCTAssertEqual(lines.count, 3)
        XCTAssertTrue(lines.allSatisfy { $0.contains("process.roles=broker,controller") })
    }

    func testHttpSchemeStrippedFromS3URL() throws {
        let withScheme = "s3://http://127.0.0.1:9000?s3-region=r&s3-endpoint-protocol=http&s3-data-bucket=d&cluster-id=c"
        let lines = try GenerateStartCommand.startLines(s3url: withScheme, controllerList: "127.0.0.1:9093", brokerList: "127.0.0.1:9092", controllerOnlyMode: false)
        XCTAssertEqual(lines.count, 1)
        XCTAssertTrue(lines[0].hasPrefix("bin/kafka-server-start.sh --s3-url=\"s3://127.0.0.1:9000?s3-region=r&"))
    }

    func assertError(_ c: String, _ b: String, s3: String? = nil, only: Bool = false, mentions needle: String,
                     file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try GenerateStartCommand.startLines(s3url: s3 ?? url, controllerList: c, brokerList: b, controllerOnlyMode: only),
                             file: file, line: line) { error in
            XCTAssertTrue("\(error)".contains(needle), "'\(error)' does not mention '\(needle)'", file: file, line: line)
        }
    }

    func testBadInput() {
        assertError("192.168.0.1", brokers, mentions: "--controller-list: '192.168.0.1' is not ip:port")
        assertError(controllers, "192.168.0.4:abc", mentions: "--broker-list: '192.168.0.4:abc' has an invalid port")
        assertError(controllers, "192.168.0.4:70000", mentions: "invalid port")
        assertError("", brokers, mentions: "--controller-list is empty")
        assertError(controllers, ";", mentions: "--broker-list is empty")
        assertError("192.168.0.1:9093,192.168.0.2:9093", brokers, mentions: "is not ip:port")
        assertError("bad host!:9093", brokers, mentions: "invalid host")
        assertError("192.168.0.1:9093;192.168.0.1:9093", brokers, mentions: "appears twice")
        assertError("192.168.0.1:9092", brokers, mentions: "can not be 9092")
        assertError(controllers, brokers, s3: "s3://h?s3-region=r&s3-data-bucket=d", mentions: "'cluster-id'")
    }
}
