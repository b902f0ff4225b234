// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "silt",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "silt", targets: ["silt"]),
        .executable(name: "silt-bench", targets: ["SiltBench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-atomics.git", from: "1.3.0"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift.git", from: "0.2.0"),
    ],
    targets: [
        // The C layer: CRC32C, io_uring (liburing), memfd, futex, libcurl + OpenSSL, and the
        // record codecs (zlib, libsnappy, liblz4, libzstd).
        .target(name: "CSupport", path: "CSupport",
                cSettings: [.unsafeFlags(["-O2"])],
                linkerSettings: [.linkedLibrary("uring"), .linkedLibrary("curl"), .linkedLibrary("crypto"),
                                 .linkedLibrary("z"), .linkedLibrary("snappy"), .linkedLibrary("lz4"), .linkedLibrary("zstd")]),
        // Kafka wire protocol: primitives plus types generated from the JSON specs.
        .target(name: "SiltProtocol", dependencies: [
            .product(name: "NIOCore", package: "swift-nio"),
        ]),
        // Node configuration: Kafka-style keys and their definitions, the properties format,
        // and meta.properties in log.dirs. Foundation only; every role and tool reads it.
        .target(name: "SiltConfig"),
        // Record batch v2: parsing, validation, offset assignment.
        .target(name: "SiltRecords", dependencies: [
            "CSupport",
            .product(name: "NIOCore", package: "swift-nio"),
        ]),
        // Shared-memory log buffer (one writer, two readers) and SPSC control rings.
        .target(name: "SiltRing", dependencies: [
            "CSupport",
            .product(name: "Atomics", package: "swift-atomics"),
        ]),
        // The write-ahead log on a raw block device or file: io_uring, O_DIRECT, group commit;
        // or in an S3 bucket (ObjectWAL, S3 WAL mode); and its hand-off region to the broker and
        // the uploader (WALState, WALFrameCodec).
        .target(name: "SiltWAL", dependencies: [
            "CSupport", "SiltRing", "SiltObjectStore",
            .product(name: "Logging", package: "swift-log"),
        ]),
        // Kafka-framed networking shared by the broker and the controller: listeners,
        // framing, in-order pipelining, and the client connection brokers use.
        .target(name: "SiltNet", dependencies: [
            "CSupport", "SiltProtocol",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        // Object storage: the ObjectStore protocol, S3 (libcurl + OpenSSL SigV4) and file://.
        .target(name: "SiltObjectStore", dependencies: [
            "CSupport",
            .product(name: "Logging", package: "swift-log"),
        ]),
        // Operator tooling: the s3url, generate-s3-url's checks, generate-start-command, kafka-metadata-quorum.
        .target(name: "SiltAdmin", dependencies: [
            "SiltObjectStore", "SiltConfig", "SiltNet", "SiltProtocol", "SiltRecords",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
        ]),
        // Streams on object storage: the stream set object format, the block cache, uploads
        // and compaction.
        .target(name: "SiltStreams", dependencies: [
            "CSupport", "SiltObjectStore", "SiltRecords",
            .product(name: "Logging", package: "swift-log"),
        ]),
        // Counters shared by a node's processes, served as Prometheus text.
        .target(name: "SiltMetrics", dependencies: [
            "CSupport", "SiltObjectStore", "SiltProtocol",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        // Partitions as streams (offsets, the high watermark, idempotent producers' state and its
        // snapshot files under log.dirs); their bytes live in the log buffer and object storage.
        .target(name: "SiltStorage", dependencies: [
            "CSupport", "SiltRecords",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        // Metadata records (versioned binary, generated from specs/metadata), the image they
        // fold into, and their record-batch form: shared by the controller and the brokers.
        .target(name: "SiltMetadata", dependencies: [
            "SiltProtocol", "SiltRecords", "SiltStreams",
            .product(name: "NIOCore", package: "swift-nio"),
        ]),
        // The controller quorum's replicated log: a deterministic Raft core (KRaft's protocol)
        // that knows nothing about topics, driven by the controller's I/O.
        .target(name: "SiltRaft"),
        // Metadata: topics, partitions, configs as an append-only log of records.
        .target(name: "SiltController", dependencies: [
            "CSupport", "SiltRaft", "SiltProtocol", "SiltRecords", "SiltNet", "SiltConfig", "SiltObjectStore", "SiltStreams", "SiltMetadata",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        // The classic group coordinator and committed offsets (state kept in __consumer_offsets).
        .target(name: "SiltGroups", dependencies: [
            "SiltProtocol",
            .product(name: "NIOCore", package: "swift-nio"),
        ]),
        // Kafka's StandardAuthorizer over the ACLs of the metadata image (pure: no I/O).
        .target(name: "SiltAuthorizer", dependencies: ["SiltProtocol"]),
        // The Kafka-facing broker: network server and API handlers.
        .target(name: "SiltBroker", dependencies: [
            "SiltProtocol", "SiltRecords", "SiltStorage", "SiltController", "SiltConfig", "SiltRing", "SiltWAL", "SiltNet",
            "SiltStreams", "SiltObjectStore", "SiltMetrics", "SiltGroups", "SiltMetadata", "SiltRaft", "SiltAuthorizer",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        // The uploader role's logic: uploads from the log buffer, the object lifecycle requests
        // to the controller, and the compaction and log cleaner loop.
        .target(name: "SiltUploader", dependencies: [
            "SiltWAL", "SiltRing", "SiltStreams", "SiltObjectStore", "SiltMetrics", "SiltMetadata", "SiltNet", "SiltProtocol",
            "SiltConfig",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        // The supervisor of role processes (`silt server`): executables, signals, restarts.
        .target(name: "SiltNode", dependencies: [
            "CSupport",
            .product(name: "Logging", package: "swift-log"),
        ]),
        .executableTarget(name: "silt", dependencies: [
            "SiltBroker", "SiltConfig", "SiltNode", "SiltRing", "SiltWAL", "SiltController", "SiltNet", "SiltAdmin", "SiltObjectStore",
            "SiltUploader", "SiltMetrics", "SiltMetadata",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "NIOPosix", package: "swift-nio"),
        ]),
        // Load generator on Silt's own codec (run on demand, not in CI).
        .executableTarget(name: "SiltBench", dependencies: [
            "SiltProtocol", "SiltRecords", "SiltWAL", "CSupport",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Histogram", package: "hdrhistogram-swift"),
        ], path: "Benchmarks/SiltBench"),
        .testTarget(name: "SiltProtocolTests", dependencies: ["SiltProtocol"]),
        .testTarget(name: "SiltRecordsTests", dependencies: ["SiltRecords", "CSupport"]),
        .testTarget(name: "SiltStorageTests", dependencies: ["SiltStorage", "SiltRecords"]),
        .testTarget(name: "SiltConfigTests", dependencies: ["SiltConfig"]),
        .testTarget(name: "SiltNodeTests", dependencies: ["SiltNode"]),
        .testTarget(name: "SiltMetadataTests", dependencies: [
            "SiltMetadata", "SiltProtocol", "SiltRecords", "SiltStreams",
            .product(name: "NIOCore", package: "swift-nio"),
        ]),
        .testTarget(name: "SiltControllerTests", dependencies: [
            "SiltController", "SiltMetadata", "SiltRaft", "SiltConfig", "SiltNet", "SiltObjectStore", "SiltProtocol", "SiltStreams",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
        ]),
        .testTarget(name: "SiltRaftTests", dependencies: ["SiltRaft"]),
        .testTarget(name: "SiltAuthorizerTests", dependencies: ["SiltAuthorizer", "SiltProtocol"]),
        .testTarget(name: "SiltGroupsTests", dependencies: ["SiltGroups", "SiltProtocol",
                                                           .product(name: "NIOCore", package: "swift-nio")]),
        .testTarget(name: "SiltRingTests", dependencies: ["SiltRing", "CSupport"]),
        .testTarget(name: "SiltWALTests", dependencies: ["SiltWAL", "SiltRing", "CSupport", "SiltObjectStore"]),
        .testTarget(name: "SiltObjectStoreTests", dependencies: ["SiltObjectStore", "CSupport"]),
        .testTarget(name: "SiltStreamsTests", dependencies: ["SiltStreams", "SiltObjectStore", "SiltRecords", "CSupport"]),
        .testTarget(name: "SiltMetricsTests", dependencies: [
            "SiltMetrics", "SiltObjectStore", "CSupport",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
        ]),
        .testTarget(name: "SiltAdminTests", dependencies: [
            "SiltAdmin", "SiltObjectStore", "SiltConfig", "SiltProtocol", "SiltNet", "SiltRecords",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
        ]),
        .testTarget(name: "SiltBrokerTests", dependencies: [
            "SiltBroker", "SiltProtocol", "SiltRecords", "SiltStorage", "SiltController", "SiltConfig", "SiltNet", "SiltRing",
            "SiltMetrics", "SiltObjectStore", "SiltStreams", "SiltMetadata", "SiltUploader", "SiltWAL", "SiltAuthorizer",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
        ]),
        // The uploader against a real controller on loopback (the role's wire path) and a file:// store.
        .testTarget(name: "SiltUploaderTests", dependencies: [
            "SiltUploader", "SiltBroker", "SiltController", "SiltMetadata", "SiltNet", "SiltConfig", "SiltObjectStore",
            "SiltProtocol", "SiltRecords", "SiltRing", "SiltStreams", "SiltWAL", "SiltMetrics",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"),
        ]),
    ],
    swiftLanguageModes: [.v5]
)
