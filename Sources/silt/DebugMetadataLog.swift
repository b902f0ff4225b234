import ArgumentParser
import Foundation
import SiltController
import SiltMetadata
import SiltRaft

/// `silt debug metadata-log --dir <log.dirs>/__cluster_metadata`: a stopped controller's
/// quorum log as JSON (like Kafka's kafka-dump-log for `__cluster_metadata`): the quorum
/// state, the snapshot and log offsets, the topics the whole log folds to, and a digest of
/// every batch (offset, epoch, bytes), so that tests can check that voters' logs agree.
/// Opening cuts a torn final write, as the controller itself would at its next start.
struct DebugMetadataLog: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "metadata-log",
        abstract: "Print a stopped controller's metadata quorum log as JSON.")

    @Option(help: "The metadata log directory (<log.dirs>/__cluster_metadata).")
    var dir: String

    func run() throws {
        let (_, persisted) = try RaftLogStore.open(directory: dir)
        var image = MetadataImage()
        if let s = persisted.snapshot {
            image = MetadataImage(snapshot: try MetadataSnapshot.decode(s.bytes), endOffset: s.id.endOffset)
        }
        // FNV-1a over every batch after the snapshot: equal digests, equal logs.
        var digest: UInt64 = 0xcbf2_9ce4_8422_2325
        func mix(_ bytes: some Sequence<UInt8>) { for b in bytes { digest = (digest ^ UInt64(b)) &* 0x100_0000_01b3 } }
        for batch in persisted.batches {
            mix(withUnsafeBytes(of: batch.baseOffset.bigEndian, Array.init))
            mix(withUnsafeBytes(of: batch.epoch.bigEndian, Array.init))
            for r in batch.records { mix(r) }
            if batch.isControl {
                image.skip(to: batch.endOffset)
            } else {
                for r in batch.records { image.apply(try MetadataRecordSerde.decode(r)) }
            }
        }
        let out: [String: Any] = [
            "quorumState": ["epoch": persisted.quorum.epoch, "votedFor": persisted.quorum.votedFor ?? -1,
                            "leaderId": persisted.quorum.leaderId ?? -1],
            "snapshotEndOffset": persisted.snapshot?.id.endOffset ?? 0,
            "logEndOffset": persisted.batches.last?.endOffset ?? (persisted.snapshot?.id.endOffset ?? 0),
            "batches": persisted.batches.count,
            "lastEpoch": persisted.batches.last?.epoch ?? (persisted.snapshot?.id.epoch ?? 0),
            "digest": String(format: "%016llx", digest),
            "topics": image.topicsByName.keys.sorted(),
        ]
        let data = try JSONSerialization.data(withJSONObject: out, options: [.sortedKeys])
        print(String(decoding: data, as: UTF8.self))
    }
}
