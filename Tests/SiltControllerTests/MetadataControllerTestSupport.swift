import Foundation
import Logging
import SiltConfig
@testable import SiltController
import SiltMetadata
import XCTest

/// Images compared for their state: a reopened controller's log has one more offset (the
/// control batch its new leader epoch starts with), nothing else.
enum MetadataControllerTestSupport {
    static func withoutOffset(_ image: MetadataImage) -> MetadataImage {
        var copy = image
        copy.skip(to: Int64.max / 2)
        return copy
    }
}

/// A test case with a metadata-log directory of its own (made fresh for each test, removed
/// after it) and a single-node `MetadataController` opened on it: the fixture of the config,
/// group-config and SCRAM tests.
class ControllerDirectoryTestCase: XCTestCase {
    var dir: String!

    override func setUp() {
        super.setUp()
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("silt-\(type(of: self))-\(UUID())").path
    }

    override func tearDown() {
        try? FileManager.default.removeItem(atPath: dir)
        super.tearDown()
    }

    /// Opens (or reopens) the controller on `dir`; topic configs are checked as a broker checks them.
    func open(snapshotIntervalBytes: Int = 20 << 20,
              validateConfigs: @escaping ([String: String]) throws -> Void = TopicConfig.validate) throws -> MetadataController {
        try MetadataController(directory: dir, logger: Logger(label: "test"), snapshotIntervalBytes: snapshotIntervalBytes,
                               validateConfigs: validateConfigs)
    }
}
