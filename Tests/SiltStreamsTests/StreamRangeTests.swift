import XCTest
@testable import SiltStreams

final class StreamRangeTests: XCTestCase {
    func testDescription() {
        XCTAssertEqual(StreamRange(streamId: 3, startOffset: 10, endOffset: 20).description, "3[10,20)")
    }
}
