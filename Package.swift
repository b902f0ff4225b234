// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "silt",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "silt", targets: ["silt"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-atomics.git", from: "1.3.0"),
    ],
    targets: [
        // The C layer: hardware CRC32C now; io_uring, curl, futex and memfd helpers later.
        .target(name: "CSupport", path: "CSupport",
                cSettings: [.unsafeFlags(["-O2"])]),
        // Kafka wire protocol: primitives plus types generated from the JSON specs.
        .target(name: "SiltProtocol", dependencies: [
            .product(name: "NIOCore", package: "swift-nio"),
        ]),
        // Record batch v2: parsing, validation, offset assignment.
        .target(name: "SiltRecords", dependencies: [
            "CSupport",
            .product(name: "NIOCore", package: "swift-nio"),
        ]),
        // Durable partition logs under log.dirs.
        .target(name: "SiltStorage", dependencies: [
            "CSupport", "SiltRecords",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        // Metadata: topics, partitions, configs as an append-only log of records.
        .target(name: "SiltController", dependencies: [
            "CSupport",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        // The Kafka-facing broker: network server and API handlers.
        .target(name: "SiltBroker", dependencies: [
            "SiltProtocol", "SiltRecords", "SiltStorage", "SiltController", "SiltNode",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        // Node configuration (Kafka-style keys) and, later, the supervisor.
        .target(name: "SiltNode", dependencies: [
            .product(name: "Logging", package: "swift-log"),
        ]),
        .executableTarget(name: "silt", dependencies: [
            "SiltBroker", "SiltNode",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "NIOPosix", package: "swift-nio"),
        ]),
        .testTarget(name: "SiltProtocolTests", dependencies: ["SiltProtocol"]),
        .testTarget(name: "SiltRecordsTests", dependencies: ["SiltRecords", "CSupport"]),
        .testTarget(name: "SiltStorageTests", dependencies: ["SiltStorage", "SiltRecords"]),
        .testTarget(name: "SiltNodeTests", dependencies: ["SiltNode"]),
        .testTarget(name: "SiltControllerTests", dependencies: ["SiltController"]),
        .testTarget(name: "SiltBrokerTests", dependencies: [
            "SiltBroker", "SiltProtocol", "SiltRecords", "SiltStorage", "SiltController", "SiltNode",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
        ]),
    ],
    swiftLanguageModes: [.v5]
)
