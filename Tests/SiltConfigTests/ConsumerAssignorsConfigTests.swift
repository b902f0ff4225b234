import SiltConfig
import XCTest

final class ConsumerAssignorsConfigTests: XCTestCase {
    func testShortAndClassNamesInOrderOfPreference() throws {
        XCTAssertEqual(try ServerConfig.parseConsumerAssignors("uniform,range"), ["uniform", "range"])
        XCTAssertEqual(try ServerConfig.parseConsumerAssignors(
            "org.apache.kafka.coordinator.group.assignor.RangeAssignor, uniform, range"), ["range", "uniform"])
        XCTAssertThrowsError(try ServerConfig.parseConsumerAssignors("sticky"))
        XCTAssertThrowsError(try ServerConfig.parseConsumerAssignors(" , "))
    }
}
