/// The broker/node keys Silt accepts. Kafka's keys keep Kafka's meaning and defaults;
/// the `s3.*` keys use AutoMQ's names so published start lines carry over unchanged.
/// Keys that a later subsystem will give meaning to are accepted and validated now.
extension ServerConfig {
    public static let keyDefs: [ConfigKeyDef] = [
        // Identity and roles.
        .init("node.id", .int, "0", .atLeast(0), doc: "This node's id in the cluster."),
        .init("process.roles", .list, "broker,controller", .oneOf(["broker", "controller"]),
              doc: "Roles this node runs: broker, controller or both."),
        .init("cluster.id", .string, nil, doc: "Cluster id; generated and stored in meta.properties on first start when absent."),
        .init("controller.quorum.voters", .list, nil, .custom(ServerConfig.validateVoters),
              doc: "id@host:port of every controller voter."),
        .init("controller.quorum.bootstrap.servers", .list, nil, doc: "host:port of controllers to bootstrap from."),
        .init("broker.heartbeat.interval.ms", .int, "2000", .atLeast(10),
              doc: "How often a broker heartbeats to the active controller."),
        .init("broker.session.timeout.ms", .int, "9000", .atLeast(100),
              doc: "A broker without a heartbeat for this long is fenced: its partitions go offline until it is back. "
                + "A broker that has not reached the controller for this long stops taking writes."),
        .init("broker.rack", .string, nil, doc: "The broker's rack; new partitions spread over racks."),
        .init("controller.quorum.election.timeout.ms", .int, "1000", .atLeast(1),
              doc: "Without a leader for this long (randomised up to twice it), a voter starts an election (pre-vote first)."),
        .init("controller.quorum.fetch.timeout.ms", .int, "2000", .atLeast(8),
              doc: "A follower that has not heard from the leader for this long starts an election; a leader that has "
                + "not heard from a majority for this long resigns."),
        .init("controller.quorum.election.backoff.max.ms", .int, "1000", .atLeast(1),
              doc: "The longest random wait before a voter tries again after a lost election."),
        // Listeners.
        .init("listeners", .list, "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093",
              .custom(ServerConfig.validateListeners), doc: "NAME://host:port of every listener."),
        .init("advertised.listeners", .list, nil, .custom(ServerConfig.validateListeners),
              doc: "Listeners published to clients; defaults to the non-controller listeners."),
        .init("listener.security.protocol.map", .list,
              "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL",
              .custom(ServerConfig.validateProtocolMap), doc: "Listener name to security protocol."),
        .init("controller.listener.names", .list, "CONTROLLER", doc: "Listener names used by controllers."),
        .init("inter.broker.listener.name", .string, "PLAINTEXT", doc: "Listener brokers use among themselves."),
        .init("socket.request.max.bytes", .int, "104857600", .atLeast(1), doc: "Largest request frame accepted."),
        .init("num.network.threads", .int, "3", .atLeast(1), doc: "The broker's event loops when set; otherwise one per core."),
        .init("num.io.threads", .int, "8", .atLeast(1), doc: "I/O threads."),
        // Authorization (SiltAuthorizer; docs/security.md).
        .init("authorizer.class.name", .string, "", .custom(ServerConfig.validateAuthorizer),
              doc: "Kafka's authorizer class: org.apache.kafka.metadata.authorizer.StandardAuthorizer turns ACLs on "
                + "(Silt's own implementation of it); empty: no authorizer, every request is allowed and the ACL APIs "
                + "answer SECURITY_DISABLED."),
        .init("super.users", .string, "", doc: "Principals allowed everything whatever the ACLs say, separated by ';' "
                + "(User:admin;User:ops)."),
        .init("allow.everyone.if.no.acl.found", .bool, "false",
              doc: "With an authorizer: a resource that no ACL names is open to everyone (true) or to super users only."),
        // Logs and topics.
        .init("log.dirs", .list, nil, doc: "Directories holding partition data and metadata."),
        .init("log.dir", .string, "silt-data", doc: "Data directory when log.dirs is not set."),
        .init("num.partitions", .int, "1", .atLeast(1), doc: "Partitions of an auto-created topic."),
        .init("default.replication.factor", .int, "1", .atLeast(1), doc: "Accepted for compatibility; object storage is the replica."),
        .init("auto.create.topics.enable", .bool, "true", doc: "Create topics on Metadata requests for unknown names."),
        .init("delete.topic.enable", .bool, "true", doc: "Allow DeleteTopics."),
        .init("message.max.bytes", .int, "1048588", .atLeast(0), readOnly: false, doc: "Largest record batch accepted."),
        .init("log.segment.bytes", .int, "1073741824", .atLeast(14), doc: "Segment file size."),
        .init("log.roll.ms", .long, "604800000", .atLeast(1), doc: "Segment age before rolling."),
        .init("log.retention.ms", .long, "604800000", .atLeast(-1), doc: "Retention time."),
        .init("log.retention.hours", .int, "168", .atLeast(-1), doc: "Retention time in hours."),
        .init("log.retention.bytes", .long, "-1", .atLeast(-1), doc: "Retention size per partition."),
        .init("log.retention.check.interval.ms", .long, "300000", .atLeast(1),
              doc: "How often the controller applies time and size retention (trims streams)."),
        .init("log.cleanup.policy", .list, "delete", .oneOf(["delete", "compact"]), doc: "Default cleanup policy."),
        .init("log.cleaner.delete.retention.ms", .long, "86400000", .atLeast(0), doc: "Tombstone retention."),
        .init("log.cleaner.enable", .bool, "true", doc: "Run the log cleaner (in the uploader) for topics with cleanup.policy=compact."),
        .init("log.cleaner.backoff.ms", .long, "15000", .atLeast(0), doc: "Pause between log cleaner passes."),
        .init("log.cleaner.min.cleanable.ratio", .double, "0.5", .custom(TopicConfig.validateRatio),
              doc: "Default min.cleanable.dirty.ratio of topics."),
        .init("log.cleaner.min.compaction.lag.ms", .long, "0", .atLeast(0), doc: "Default min.compaction.lag.ms of topics."),
        .init("log.cleaner.stream.max.bytes", .long, "134217728", .atLeast(1 << 20),
              doc: "Silt: the largest stream (bytes of the objects holding it) the log cleaner cleans; it holds them in memory."),
        .init("log.message.timestamp.type", .string, "CreateTime", .oneOf(["CreateTime", "LogAppendTime"]),
              doc: "Default timestamp type of topics."),
        .init("log.message.timestamp.before.max.ms", .long, String(Int64.max), .atLeast(0),
              doc: "How far in the past a CreateTime timestamp may be."),
        .init("log.message.timestamp.after.max.ms", .long, String(Int64.max), .atLeast(0),
              doc: "How far in the future a CreateTime timestamp may be."),
        .init("min.insync.replicas", .int, "1", .atLeast(1), doc: "Accepted for compatibility."),
        .init("compression.type", .string, "producer", .oneOf(TopicConfig.compressionTypes),
              doc: "Default compression.type of topics: produced batches are recompressed to it unless it is producer."),
        .init("compression.gzip.level", .int, "-1", .custom(TopicConfig.validateGzipLevel),
              doc: "Default compression.gzip.level of topics."),
        .init("compression.lz4.level", .int, "9", .between(1, 17), doc: "Default compression.lz4.level of topics."),
        .init("compression.zstd.level", .int, "3", .between(-131072, 22),
              doc: "Default compression.zstd.level of topics."),
        .init("log.cleaner.max.compaction.lag.ms", .long, String(Int64.max), .atLeast(1),
              doc: "Default max.compaction.lag.ms of topics."),
        // Broker synonyms of Kafka 3.x topic keys that Silt accepts, stores and describes but
        // does not act on (see TopicConfig.Def.ignoredReason).
        .init("log.flush.interval.messages", .long, String(Int64.max), .atLeast(1),
              doc: "Default flush.messages of topics (no effect: a produce is acknowledged once durable in the WAL)."),
        .init("log.flush.interval.ms", .long, nil, .atLeast(0),
              doc: "Default flush.ms of topics (no effect: a produce is acknowledged once durable in the WAL)."),
        .init("log.segment.delete.delay.ms", .long, "60000", .atLeast(0),
              doc: "Default file.delete.delay.ms of topics (no effect; see s3.object.deletion.delay.ms)."),
        .init("log.index.interval.bytes", .int, "4096", .atLeast(0), doc: "Default index.interval.bytes of topics (no effect in Silt)."),
        .init("log.index.size.max.bytes", .int, "10485760", .atLeast(4), doc: "Default segment.index.bytes of topics (no effect in Silt)."),
        .init("log.roll.jitter.ms", .long, "0", .atLeast(0), doc: "Default segment.jitter.ms of topics (no effect in Silt)."),
        .init("log.preallocate", .bool, "false", doc: "Default preallocate of topics (no effect in Silt)."),
        .init("log.local.retention.ms", .long, "-2", .atLeast(-2), doc: "Default local.retention.ms of topics (no effect in Silt)."),
        .init("log.local.retention.bytes", .long, "-2", .atLeast(-2), doc: "Default local.retention.bytes of topics (no effect in Silt)."),
        .init("log.message.downconversion.enable", .bool, "true",
              doc: "Default message.downconversion.enable of topics (no effect: Silt serves only record batch v2)."),
        .init("log.message.format.version", .string, "3.0-IV1", .custom(TopicConfig.validateMessageFormatVersion),
              doc: "Default message.format.version of topics; ignored, as Kafka 3.x ignores it."),
        .init("log.message.timestamp.difference.max.ms", .long, String(Int64.max), .atLeast(0),
              doc: "Default message.timestamp.difference.max.ms of topics (deprecated in Kafka; Silt uses the before/after keys)."),
        .init("unclean.leader.election.enable", .bool, "false",
              doc: "Default unclean.leader.election.enable of topics (no effect: one replica per partition)."),
        .init("offsets.topic.replication.factor", .int, "1", .atLeast(1), doc: "Accepted for compatibility."),
        .init("transaction.state.log.replication.factor", .int, "1", .atLeast(1), doc: "Accepted for compatibility."),
        .init("transaction.state.log.min.isr", .int, "1", .atLeast(1), doc: "Accepted for compatibility."),
        .init("producer.id.expiration.ms", .int, "86400000", .atLeast(1),
              doc: "How long a partition remembers an idle idempotent producer's sequence numbers."),
        .init("group.initial.rebalance.delay.ms", .int, "3000", .atLeast(0), doc: "Used by the group coordinator."),
        .init("group.min.session.timeout.ms", .int, "6000", .atLeast(0), doc: "Shortest session timeout a group member may ask for."),
        .init("group.max.session.timeout.ms", .int, "1800000", .atLeast(0), doc: "Longest session timeout a group member may ask for."),
        .init("group.max.size", .int, String(Int32.max), .atLeast(1), doc: "Most members of one classic group."),
        .init("group.consumer.session.timeout.ms", .int, "45000", .atLeast(1),
              doc: "A KIP-848 (group.protocol=consumer) member silent this long is removed from its group."),
        .init("group.consumer.heartbeat.interval.ms", .int, "5000", .atLeast(1), doc: "How often KIP-848 members heartbeat."),
        .init("group.consumer.min.session.timeout.ms", .int, "45000", .atLeast(1),
              doc: "Smallest consumer.session.timeout.ms a group config may set."),
        .init("group.consumer.max.session.timeout.ms", .int, "60000", .atLeast(1),
              doc: "Largest consumer.session.timeout.ms a group config may set."),
        .init("group.consumer.min.heartbeat.interval.ms", .int, "5000", .atLeast(1),
              doc: "Smallest consumer.heartbeat.interval.ms a group config may set."),
        .init("group.consumer.max.heartbeat.interval.ms", .int, "15000", .atLeast(1),
              doc: "Largest consumer.heartbeat.interval.ms a group config may set."),
        .init("group.consumer.max.size", .int, String(Int32.max), .atLeast(1), doc: "Most members of one KIP-848 group."),
        .init("group.consumer.assignors", .string, "uniform,range", .custom({ v in
            do { _ = try ServerConfig.parseConsumerAssignors(v); return nil } catch let e as ConfigError { return e.reason } catch { return "\(error)" }
        }), doc: "KIP-848 server-side assignors (uniform, range), the first the default."),
        .init("offsets.topic.num.partitions", .int, "50", .atLeast(1), doc: "Partitions of __consumer_offsets (fixed once created)."),
        .init("offset.metadata.max.bytes", .int, "4096", .atLeast(0), doc: "Largest commit metadata string accepted."),
        .init("metadata.log.max.record.bytes.between.snapshots", .long, "20971520", .atLeast(1),
              doc: "Metadata log bytes after which the controller writes a snapshot."),
        // Object storage and WAL (AutoMQ's names).
        .init("s3.wal.path", .string, nil, doc: "WAL device or file, or 0@s3://bucket?... for S3 WAL mode."),
        .init("s3.wal.capacity", .long, "2147483648", .atLeast(1 << 20), doc: "WAL ring size."),
        .init("s3.wal.takeover.paths", .string, "", .custom({ v in
            do { _ = try ServerConfig.parseTakeoverPaths(v); return nil } catch let e as ConfigError { return e.reason } catch { return "\(error)" }
        }), doc: "Other nodes' WALs this node can open when their broker dies (nodeId@path,...): it commits their tail and moves their partitions."),
        .init("s3.wal.cache.size", .long, "-1", .atLeast(-1), doc: "Log buffer size; -1 sizes it from memory."),
        .init("s3.wal.trim.interval.ms", .int, "1000", .atLeast(10), doc: "Unused since the WAL is trimmed after each object commit; accepted for old start lines."),
        .init("s3.wal.upload.threshold", .long, "-1", .atLeast(-1), doc: "Bytes that trigger an upload."),
        .init("s3.wal.upload.interval.ms", .long, "60000", .atLeast(1), doc: "Longest wait before an upload."),
        .init("s3.block.cache.size", .long, "-1", .atLeast(-1), doc: "S3 read cache size."),
        .init("s3.object.block.size", .int, "524288", .atLeast(1024), doc: "Data block inside an object."),
        .init("s3.object.part.size", .int, "16777216", .atLeast(5 << 20), doc: "Multipart part size."),
        .init("s3.stream.object.split.size", .int, "8388608", .atLeast(1), doc: "Stream object threshold."),
        .init("s3.stream.set.object.compaction.interval.minutes", .int, "5", .atLeast(1), doc: "SSO compaction period."),
        .init("s3.stream.object.compaction.interval.minutes", .int, "30", .atLeast(1), doc: "SO compaction period."),
        .init("s3.stream.set.object.compaction.interval.ms", .long, nil, .atLeast(100),
              doc: "SSO compaction period in milliseconds; overrides the minutes key (tests, benchmarks)."),
        .init("s3.stream.object.compaction.interval.ms", .long, nil, .atLeast(100),
              doc: "SO compaction period in milliseconds; overrides the minutes key (tests, benchmarks)."),
        .init("s3.network.baseline.bandwidth", .long, "1073741824", .atLeast(1), doc: "Compaction/catch-up cap."),
        .init("s3.object.prepare.ttl.ms", .long, "3600000", .atLeast(1000),
              doc: "How long a prepared object id may stay uncommitted before the janitor deletes the object."),
        .init("s3.object.janitor.interval.ms", .long, "10000", .atLeast(100),
              doc: "How often the controller deletes expired prepared objects and unreferenced objects."),
        .init("s3.object.deletion.delay.ms", .long, "60000", .atLeast(0),
              doc: "How long a dead object (compacted away, trimmed, deleted topic) stays in the bucket for reads in flight."),
        .init("s3.upload.parallelism", .int, "4", .atLeast(1), doc: "Parts of one multipart upload in flight at once."),
        .init("s3.telemetry.metrics.exporter.uri", .string, nil,
              doc: "prometheus://?host=127.0.0.1&port=9090 serves Prometheus text at /metrics."),
        .init("s3.data.buckets", .string, nil, doc: "Data bucket URL(s)."),
        .init("s3.ops.buckets", .string, nil, doc: "Ops bucket URL(s)."),
        .init("s3.endpoint", .string, nil, doc: "S3 endpoint."),
        .init("s3.region", .string, nil, doc: "S3 region."),
        .init("s3.bucket", .string, nil, doc: "S3 data bucket."),
        .init("s3.path.style", .bool, "false", doc: "Path-style addressing."),
        .init("s3.credentials.file", .string, nil, doc: "A file with the S3 access and secret key (AWS shared-credentials format or s3.access.key=/s3.secret.key= lines)."),
        // The auto balancer (SiltController/AutoBalancer.swift, docs/cluster.md): AutoMQ's names
        // where AutoMQ has the key.
        .init("autobalancer.controller.enable", .bool, "false",
              doc: "Continuous self-balancing on the active controller (AutoMQ's guide turns it on with --override)."),
        .init("autobalancer.controller.anomaly.detect.interval.ms", .long, "10000", .between(100, 3_600_000),
              doc: "How often the auto balancer checks the goals and plans moves."),
        .init("autobalancer.controller.network.in.distribution.detect.avg.deviation", .double, "0.15",
              .custom(TopicConfig.validateDeviation),
              doc: "A broker's bytes in may stay within this share of the cluster mean (0.01-1)."),
        .init("autobalancer.controller.network.out.distribution.detect.avg.deviation", .double, "0.15",
              .custom(TopicConfig.validateDeviation),
              doc: "A broker's bytes out may stay within this share of the cluster mean (0.01-1)."),
        .init("autobalancer.controller.network.in.usage.distribution.detect.threshold", .long, "1048576",
              .between(0, 1 << 40), doc: "Bytes in per second (cluster mean per broker) below which bytes in are not balanced."),
        .init("autobalancer.controller.network.out.usage.distribution.detect.threshold", .long, "1048576",
              .between(0, 1 << 40), doc: "Bytes out per second (cluster mean per broker) below which bytes out are not balanced."),
        .init("autobalancer.controller.execution.concurrency", .int, "10", .between(1, 1000),
              doc: "Partition moves in flight at once, at most (the balancer's and everyone else's)."),
        .init("autobalancer.controller.partition.cooldown.ms", .long, "300000", .between(0, 86_400_000),
              doc: "A partition the balancer moved is not moved again for load or counts before this long."),
        .init("autobalancer.controller.move.min.improvement.ratio", .double, "0.05", .custom(TopicConfig.validateRatio),
              doc: "A move for load must narrow the gap between the two brokers it touches by this share of the mean (0-1)."),
        .init("autobalancer.controller.load.window.ms", .long, "60000", .between(1000, 3_600_000),
              doc: "The recent window of load reports a partition's load is averaged over."),
        .init("elasticstream.enable", .bool, "true", doc: "AutoMQ stream storage switch; always on in Silt."),
        // Kafka's listener SASL keys that a broker reconfigures at run time (AlterConfigs of a
        // BROKER resource); see `ignoredDynamicKeys`.
        .init("sasl.kerberos.kinit.cmd", .string, "/usr/bin/kinit", doc: "Kerberos kinit command path (no effect: no SASL listener)."),
        .init("sasl.kerberos.min.time.before.relogin", .long, "60000", .atLeast(0),
              doc: "Login thread sleep time between refresh attempts (no effect: no SASL listener)."),
        .init("sasl.kerberos.service.name", .string, nil, doc: "The Kerberos principal name Kafka runs as (no effect: no SASL listener)."),
        .init("sasl.kerberos.ticket.renew.jitter", .double, "0.05",
              doc: "Random jitter added to the renewal time (no effect: no SASL listener)."),
        .init("sasl.kerberos.ticket.renew.window.factor", .double, "0.8",
              doc: "Share of the ticket's lifetime after which it is renewed (no effect: no SASL listener)."),
        .init("sasl.login.refresh.buffer.seconds", .int, "300", .between(0, 3600),
              doc: "Time before credential expiry to keep when refreshing (no effect: no SASL listener)."),
        .init("sasl.login.refresh.min.period.seconds", .int, "60", .between(0, 900),
              doc: "Minimum wait before refreshing credentials (no effect: no SASL listener)."),
        .init("sasl.login.refresh.window.factor", .double, "0.8", .custom({ v in
            guard let d = Double(v), d >= 0.5, d <= 1 else { return "must be between 0.5 and 1.0" }
            return nil
        }), doc: "Share of the credential's lifetime after which it is refreshed (no effect: no SASL listener)."),
        .init("sasl.login.refresh.window.jitter", .double, "0.05", .custom({ v in
            guard let d = Double(v), d >= 0, d <= 0.25 else { return "must be between 0.0 and 0.25" }
            return nil
        }), doc: "Random jitter added to the refresh time (no effect: no SASL listener)."),
    ]

    /// Broker keys Kafka reconfigures at run time (AlterConfigs of a BROKER resource) that
    /// Silt accepts, stores and describes without acting on them, with why: Kafka's clients
    /// and tools set them (librdkafka's test 0081 alters `sasl.kerberos.min.time.before.relogin`).
    public static let ignoredDynamicKeys: [String: String] = Dictionary(uniqueKeysWithValues: [
        "sasl.kerberos.kinit.cmd", "sasl.kerberos.min.time.before.relogin", "sasl.kerberos.service.name",
        "sasl.kerberos.ticket.renew.jitter", "sasl.kerberos.ticket.renew.window.factor",
        "sasl.login.refresh.buffer.seconds", "sasl.login.refresh.min.period.seconds",
        "sasl.login.refresh.window.factor", "sasl.login.refresh.window.jitter",
    ].map { ($0, "Silt has no SASL listener yet") })

    static let keyDefsByName: [String: ConfigKeyDef] =
        Dictionary(uniqueKeysWithValues: keyDefs.map { ($0.name, $0) })

    public static func keyDef(_ name: String) -> ConfigKeyDef? { keyDefsByName[name] }
}

/// Topic-level keys, each backed by the broker key that supplies its default.
public enum TopicConfig {
    public struct Def: Sendable {
        public var key: ConfigKeyDef
        public var brokerSynonym: String?
        /// Why Silt accepts this key without acting on it (nil: Silt applies it).
        public var ignoredReason: String?

        public init(key: ConfigKeyDef, brokerSynonym: String?, ignoredReason: String? = nil) {
            self.key = key; self.brokerSynonym = brokerSynonym; self.ignoredReason = ignoredReason
        }
    }

    public static let defs: [Def] = [
        Def(key: .init("cleanup.policy", .list, "delete", .oneOf(["delete", "compact"]), readOnly: false,
                       doc: "delete or compact."), brokerSynonym: "log.cleanup.policy"),
        Def(key: .init("retention.ms", .long, "604800000", .atLeast(-1), readOnly: false,
                       doc: "Retention time."), brokerSynonym: "log.retention.ms"),
        Def(key: .init("retention.bytes", .long, "-1", .atLeast(-1), readOnly: false,
                       doc: "Retention size per partition."), brokerSynonym: "log.retention.bytes"),
        Def(key: .init("max.message.bytes", .int, "1048588", .atLeast(0), readOnly: false,
                       doc: "Largest record batch."), brokerSynonym: "message.max.bytes"),
        Def(key: .init("message.timestamp.type", .string, "CreateTime", .oneOf(["CreateTime", "LogAppendTime"]),
                       readOnly: false, doc: "CreateTime or LogAppendTime."), brokerSynonym: "log.message.timestamp.type"),
        Def(key: .init("message.timestamp.before.max.ms", .long, String(Int64.max), .atLeast(0), readOnly: false,
                       doc: "Largest allowed age of a CreateTime timestamp."),
            brokerSynonym: "log.message.timestamp.before.max.ms"),
        Def(key: .init("message.timestamp.after.max.ms", .long, String(Int64.max), .atLeast(0), readOnly: false,
                       doc: "Largest allowed lead of a CreateTime timestamp."),
            brokerSynonym: "log.message.timestamp.after.max.ms"),
        Def(key: .init("segment.bytes", .int, "1073741824", .atLeast(14), readOnly: false,
                       doc: "Segment size."), brokerSynonym: "log.segment.bytes"),
        Def(key: .init("segment.ms", .long, "604800000", .atLeast(1), readOnly: false,
                       doc: "Segment age."), brokerSynonym: "log.roll.ms"),
        Def(key: .init("delete.retention.ms", .long, "86400000", .atLeast(0), readOnly: false,
                       doc: "Tombstone retention."), brokerSynonym: "log.cleaner.delete.retention.ms"),
        Def(key: .init("min.cleanable.dirty.ratio", .double, "0.5", .custom(TopicConfig.validateRatio), readOnly: false,
                       doc: "Share of records written since the last clean that makes the log cleaner clean a partition again."),
            brokerSynonym: "log.cleaner.min.cleanable.ratio"),
        Def(key: .init("min.compaction.lag.ms", .long, "0", .atLeast(0), readOnly: false,
                       doc: "The youngest a record may be and still be cleaned."), brokerSynonym: "log.cleaner.min.compaction.lag.ms"),
        Def(key: .init("min.insync.replicas", .int, "1", .atLeast(1), readOnly: false,
                       doc: "Accepted for compatibility."), brokerSynonym: "min.insync.replicas"),
        Def(key: .init("compression.type", .string, "producer", .oneOf(TopicConfig.compressionTypes), readOnly: false,
                       doc: "uncompressed, zstd, lz4, snappy, gzip or producer."), brokerSynonym: "compression.type"),
        Def(key: .init("compression.gzip.level", .int, "-1", .custom(TopicConfig.validateGzipLevel), readOnly: false,
                       doc: "gzip level when compression.type=gzip."), brokerSynonym: "compression.gzip.level"),
        Def(key: .init("compression.lz4.level", .int, "9", .between(1, 17), readOnly: false,
                       doc: "lz4 level when compression.type=lz4."), brokerSynonym: "compression.lz4.level"),
        Def(key: .init("compression.zstd.level", .int, "3", .between(-131072, 22), readOnly: false,
                       doc: "zstd level when compression.type=zstd."), brokerSynonym: "compression.zstd.level"),
        // Kafka 3.x's other topic keys: accepted, validated as Kafka validates them, stored and
        // described, without an effect in Silt (a warning is logged when one is set).
        Def(key: .init("file.delete.delay.ms", .long, "60000", .atLeast(0), readOnly: false,
                       doc: "Delay before a deleted segment file is removed."), brokerSynonym: "log.segment.delete.delay.ms",
            ignoredReason: "Silt has no segment files; dead objects wait s3.object.deletion.delay.ms"),
        Def(key: .init("flush.messages", .long, String(Int64.max), .atLeast(1), readOnly: false,
                       doc: "Messages between forced fsyncs."), brokerSynonym: "log.flush.interval.messages",
            ignoredReason: "a produce is acknowledged only once it is durable in the WAL"),
        Def(key: .init("flush.ms", .long, String(Int64.max), .atLeast(0), readOnly: false,
                       doc: "Time between forced fsyncs."), brokerSynonym: "log.flush.interval.ms",
            ignoredReason: "a produce is acknowledged only once it is durable in the WAL"),
        Def(key: .init("follower.replication.throttled.replicas", .list, "", .custom(TopicConfig.validateThrottledReplicas),
                       readOnly: false, doc: "Replicas throttled on the follower side (* or partition:broker,...)."),
            brokerSynonym: nil, ignoredReason: "Silt has one replica per partition"),
        Def(key: .init("index.interval.bytes", .int, "4096", .atLeast(0), readOnly: false,
                       doc: "Bytes between offset index entries."), brokerSynonym: "log.index.interval.bytes",
            ignoredReason: "objects carry their own index"),
        Def(key: .init("leader.replication.throttled.replicas", .list, "", .custom(TopicConfig.validateThrottledReplicas),
                       readOnly: false, doc: "Replicas throttled on the leader side (* or partition:broker,...)."),
            brokerSynonym: nil, ignoredReason: "Silt has one replica per partition"),
        Def(key: .init("local.retention.bytes", .long, "-2", .atLeast(-2), readOnly: false,
                       doc: "Tiered storage: local retention size."), brokerSynonym: "log.local.retention.bytes",
            ignoredReason: "all data lives in object storage"),
        Def(key: .init("local.retention.ms", .long, "-2", .atLeast(-2), readOnly: false,
                       doc: "Tiered storage: local retention time."), brokerSynonym: "log.local.retention.ms",
            ignoredReason: "all data lives in object storage"),
        Def(key: .init("max.compaction.lag.ms", .long, String(Int64.max), .atLeast(1), readOnly: false,
                       doc: "The longest a record may stay uncleaned: the stream is uploaded within it (at most once a second) and cleaned whatever its dirty ratio."),
            brokerSynonym: "log.cleaner.max.compaction.lag.ms"),
        Def(key: .init("message.downconversion.enable", .bool, "true", readOnly: false,
                       doc: "Down-convert for old consumers."), brokerSynonym: "log.message.downconversion.enable",
            ignoredReason: "Silt serves only record batch v2"),
        Def(key: .init("message.format.version", .string, "3.0-IV1", .custom(TopicConfig.validateMessageFormatVersion),
                       readOnly: false, doc: "Deprecated message format version."), brokerSynonym: "log.message.format.version",
            ignoredReason: "Kafka 3.x ignores it too: every batch is v2"),
        Def(key: .init("message.timestamp.difference.max.ms", .long, String(Int64.max), .atLeast(0), readOnly: false,
                       doc: "Deprecated; see message.timestamp.before.max.ms and message.timestamp.after.max.ms."),
            brokerSynonym: "log.message.timestamp.difference.max.ms",
            ignoredReason: "Silt checks message.timestamp.before.max.ms and message.timestamp.after.max.ms"),
        Def(key: .init("preallocate", .bool, "false", readOnly: false,
                       doc: "Preallocate segment files."), brokerSynonym: "log.preallocate",
            ignoredReason: "Silt has no segment files"),
        Def(key: .init("remote.storage.enable", .bool, "false", readOnly: false,
                       doc: "Tiered storage for this topic."), brokerSynonym: nil,
            ignoredReason: "all data lives in object storage"),
        Def(key: .init("remote.log.copy.disable", .bool, "false", readOnly: false,
                       doc: "Tiered storage: stop copying to remote storage."), brokerSynonym: nil,
            ignoredReason: "all data lives in object storage"),
        Def(key: .init("remote.log.delete.on.disable", .bool, "false", readOnly: false,
                       doc: "Tiered storage: delete remote data when disabled."), brokerSynonym: nil,
            ignoredReason: "all data lives in object storage"),
        Def(key: .init("segment.index.bytes", .int, "10485760", .atLeast(4), readOnly: false,
                       doc: "Offset index size."), brokerSynonym: "log.index.size.max.bytes",
            ignoredReason: "objects carry their own index"),
        Def(key: .init("segment.jitter.ms", .long, "0", .atLeast(0), readOnly: false,
                       doc: "Random jitter on segment.ms."), brokerSynonym: "log.roll.jitter.ms",
            ignoredReason: "Silt has no segment files"),
        Def(key: .init("unclean.leader.election.enable", .bool, "false", readOnly: false,
                       doc: "Elect an out-of-sync replica as leader."), brokerSynonym: "unclean.leader.election.enable",
            ignoredReason: "Silt has one replica per partition"),
    ]

    /// `compression.type` values, as Kafka 3.x's BrokerCompressionType names them.
    public static let compressionTypes = ["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"]

    /// Topic keys that Silt stores and describes but does not act on, with why; a warning
    /// names them when they are set.
    public static func ignoredKeys(_ keys: some Sequence<String>) -> [(key: String, reason: String)] {
        keys.sorted().compactMap { k in defsByName[k]?.ignoredReason.map { (k, $0) } }
    }

    /// gzip's levels (1...9) or -1, its default (Kafka's GzipCompression).
    @Sendable static func validateGzipLevel(_ raw: String) -> String? {
        guard let v = Int(raw), v == -1 || (1...9).contains(v) else { return "must be -1 or between 1 and 9" }
        return nil
    }

    /// A Kafka release as `message.format.version` takes it in Kafka 3.x (MetadataVersion's
    /// parse): 0.8.0 to 0.11.0 by their first three parts, 1.0 to 3.9 by their first two,
    /// with an optional -IVn suffix; later parts are ignored, so `0.10.0.0` and `2.8.1` pass.
    @Sendable static func validateMessageFormatVersion(_ raw: String) -> String? {
        var text = Substring(raw)
        if let dash = text.firstIndex(of: "-") {
            let suffix = text[text.index(after: dash)...]
            guard suffix.hasPrefix("IV"), let n = Int(suffix.dropFirst(2)), n >= 0 else {
                return "not a Kafka version (e.g. 2.8, 3.0-IV1, 0.10.0.0)"
            }
            text = text[..<dash]
        }
        let parts = text.split(separator: ".", omittingEmptySubsequences: false).map { Int($0) }
        guard parts.count >= 2, parts.allSatisfy({ $0 != nil && $0! >= 0 }) else {
            return "not a Kafka version (e.g. 2.8, 3.0-IV1, 0.10.0.0)"
        }
        let major = parts[0]!, minor = parts[1]!
        let known: Bool
        switch major {
        case 0: known = parts.count >= 3 && TopicConfig.zeroReleases.contains([minor, parts[2]!])
        case 1: known = minor <= 1
        case 2: known = minor <= 8
        case 3: known = minor <= 9
        default: known = false
        }
        return known ? nil : "unknown Kafka version; Kafka 3.x takes 0.8.0 to 3.9 (e.g. 2.8, 3.0-IV1, 0.10.0.0)"
    }

    /// The 0.x releases as (minor, patch).
    static let zeroReleases: Set<[Int]> = [[8, 0], [8, 1], [8, 2], [9, 0], [10, 0], [10, 1], [10, 2], [11, 0]]

    /// `*` or a list of `partition:broker` (Kafka's ThrottledReplicaListValidator).
    @Sendable static func validateThrottledReplicas(_ raw: String) -> String? {
        let items = ConfigKeyDef.parseList(raw)
        if items == ["*"] { return nil }
        for item in items {
            let pb = item.split(separator: ":", omittingEmptySubsequences: false)
            guard pb.count == 2, let p = Int32(pb[0]), p >= 0, let b = Int32(pb[1]), b >= 0 else {
                return "must be * or a list of partition:broker (e.g. 0:101,1:102)"
            }
        }
        return nil
    }

    /// A ratio between 0 and 1 (`min.cleanable.dirty.ratio`).
    @Sendable static func validateDeviation(_ raw: String) -> String? {
        guard let v = Double(raw), v >= 0.01, v <= 1 else { return "must be between 0.01 and 1" }
        return nil
    }

    @Sendable static func validateRatio(_ raw: String) -> String? {
        guard let v = Double(raw), v >= 0, v <= 1 else { return "must be between 0 and 1" }
        return nil
    }

    public static let defsByName: [String: Def] = Dictionary(uniqueKeysWithValues: defs.map { ($0.key.name, $0) })

    /// Validates topic overrides; returns the first error.
    public static func validate(_ overrides: [String: String]) throws {
        for (k, v) in overrides.sorted(by: { $0.key < $1.key }) {
            guard let def = defsByName[k] else {
                throw ConfigError(key: k, value: v, reason: "unknown topic configuration")
            }
            try def.key.check(v)
        }
    }
}
