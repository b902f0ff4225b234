import Foundation
import Logging
import NIOCore
@testable import SiltBroker
import SiltConfig
import SiltController
import SiltProtocol
import SiltRecords
import SiltStorage
import XCTest

/// InitProducerId, producer id blocks, idempotent produce through the broker, and producer
/// state recovery (snapshot + replay) across a broker restart.
extension BrokerTests {
    func initProducerId(version: Int16 = 4, transactionalId: String? = nil, producerId: Int64 = -1,
                        epoch: Int16 = -1) throws -> InitProducerIdResponse {
        var req = InitProducerIdRequest()
        req.transactionalId = transactionalId
        req.transactionTimeoutMs = 60_000
        req.producerId = producerId
        req.producerEpoch = epoch
        return try call(req, version: version)
    }

    func idempotentBatch(pid: Int64, epoch: Int16 = 0, seq: Int32, _ values: [String]) -> ByteBuffer {
        var b = RecordBatchBuilder(producerId: pid, producerEpoch: epoch, baseSequence: seq)
        for (i, v) in values.enumerated() {
            b.append(key: "k\(i)", value: v, timestamp: Int64(Date().timeIntervalSince1970 * 1000))
        }
        return b.build()
    }

    func testInitProducerIdHandsOutFreshIdsAtEpochZeroAtEveryVersion() throws {
        var seen = Set<Int64>()
        for version: Int16 in 0...5 {
            let resp = try initProducerId(version: version)
            XCTAssertEqual(resp.errorCode, 0, "v\(version)")
            XCTAssertEqual(resp.producerEpoch, 0)
            XCTAssertGreaterThanOrEqual(resp.producerId, 0)
            XCTAssertTrue(seen.insert(resp.producerId).inserted, "id \(resp.producerId) handed out twice")
        }
        // KIP-360: an idempotent producer that sends its old id and epoch gets a new id, epoch 0.
        let old = try XCTUnwrap(seen.max())
        let bumped = try initProducerId(version: 4, producerId: old, epoch: 3)
        XCTAssertEqual(bumped.errorCode, 0)
        XCTAssertEqual(bumped.producerEpoch, 0)
        XCTAssertFalse(seen.contains(bumped.producerId))
        // An id without an epoch (or the reverse) is malformed.
        XCTAssertEqual(try initProducerId(version: 3, producerId: old, epoch: -1).errorCode, 42)
        XCTAssertEqual(try initProducerId(version: 3, producerId: -1, epoch: 2).errorCode, 42)
    }

    func testInitProducerIdWithATransactionalIdIsRefused() throws {
        for id in ["txn-1", ""] {
            let resp = try initProducerId(version: 4, transactionalId: id)
            XCTAssertEqual(resp.errorCode, 42, "INVALID_REQUEST: transactions are not supported")
            XCTAssertEqual(resp.producerId, -1)
        }
    }

    func testProducerIdBlocksAreNeverReusedAcrossRestarts() throws {
        let first = try initProducerId().producerId
        // The block reaches the broker's copy of the metadata log as the log propagates.
        let deadline = Date().addingTimeInterval(5)
        while broker.metadata.image.nextProducerId == 0 && Date() < deadline { usleep(5_000) }
        XCTAssertEqual(broker.metadata.image.nextProducerId == 0, false, "the block is in the metadata log")
        try restart()
        let second = try initProducerId().producerId
        XCTAssertGreaterThanOrEqual(second, first + Int64(MetadataController.producerIdBlockSize),
                                    "a restarted broker takes a new block")
    }

    func testIdempotentProduceDeduplicatesAndAppliesTheSequenceRules() throws {
        try createTopic("idem")
        let pid = try initProducerId().producerId
        XCTAssertEqual(try produce("idem", batch(["plain"])).baseOffset, 0)
        let first = try produce("idem", idempotentBatch(pid: pid, seq: 0, ["a", "b"]))
        XCTAssertEqual(first.errorCode, 0)
        XCTAssertEqual(first.baseOffset, 1)
        let retry = try produce("idem", idempotentBatch(pid: pid, seq: 0, ["a", "b"]))
        XCTAssertEqual(retry.errorCode, 0, "a retry succeeds")
        XCTAssertEqual(retry.baseOffset, 1, "with the original offset")
        XCTAssertEqual(broker.logs.partition(topic: "idem", partition: 0)?.logEndOffset, 3, "and nothing is appended")

        XCTAssertEqual(try produce("idem", idempotentBatch(pid: pid, seq: 5, ["gap"])).errorCode, 45)
        XCTAssertEqual(try produce("idem", idempotentBatch(pid: pid, seq: 2, ["c"])).baseOffset, 3)
        XCTAssertEqual(try produce("idem", idempotentBatch(pid: pid, epoch: 1, seq: 3, ["bad-epoch-start"])).errorCode, 45)
        XCTAssertEqual(try produce("idem", idempotentBatch(pid: pid, epoch: 1, seq: 0, ["bumped"])).baseOffset, 4)
        XCTAssertEqual(try produce("idem", idempotentBatch(pid: pid, epoch: 0, seq: 3, ["zombie"])).errorCode, 47)
        // An id the controller never handed out.
        let stranger = broker.metadata.image.nextProducerId + 1_000_000
        XCTAssertEqual(try produce("idem", idempotentBatch(pid: stranger, seq: 0, ["x"])).errorCode, 59)
        // Transactional batches stay refused.
        var txn = RecordBatchBuilder(producerId: pid, producerEpoch: 1, baseSequence: 1, isTransactional: true)
        txn.append(key: "k", value: "v", timestamp: Int64(Date().timeIntervalSince1970 * 1000))
        XCTAssertEqual(try produce("idem", txn.build()).errorCode, 87)   // INVALID_RECORD
    }

    func testProducerStateSurvivesARestartBySnapshotAndReplay() throws {
        try createTopic("durable")
        let pid = try initProducerId().producerId
        XCTAssertEqual(try produce("durable", idempotentBatch(pid: pid, seq: 0, ["a"])).baseOffset, 0)
        XCTAssertEqual(try produce("durable", idempotentBatch(pid: pid, seq: 1, ["b", "c"])).baseOffset, 1)
        let keeper = ProducerStateKeeper(broker: broker, config: try ServerConfig(properties: ["log.dirs": dir!]), logger: logger)
        keeper.snapshotAll()   // state as of offset 3
        let streamId = broker.metadata.image.topic(named: "durable")!.streamIds[0]
        XCTAssertEqual(ProducerStateSnapshot.read(from: keeper.path(streamId: streamId))?.offset, 3)
        XCTAssertEqual(try produce("durable", idempotentBatch(pid: pid, seq: 3, ["d"])).baseOffset, 3)   // only in the log

        for wipeSnapshots in [false, true] {
            try restart()
            let recovered = ProducerStateKeeper(broker: broker, config: try ServerConfig(properties: ["log.dirs": dir!]),
                                                logger: logger)
            if wipeSnapshots { try FileManager.default.removeItem(atPath: recovered.directory) }
            try recovered.recover()
            XCTAssertEqual(recovered.replayedBatches, wipeSnapshots ? 4 : 1, "only what the snapshot does not cover")
            let log = try XCTUnwrap(broker.logs.partition(topic: "durable", partition: 0))
            XCTAssertEqual(log.producerStateSnapshot().producers.first?.batches.map(\.firstOffset),
                           wipeSnapshots ? [0, 1, 3, 4] : [0, 1, 3], "wiped: \(wipeSnapshots)")
            // Retries of batches from before the snapshot and after it are both recognised.
            XCTAssertEqual(try produce("durable", idempotentBatch(pid: pid, seq: 1, ["b", "c"])).baseOffset, 1)
            XCTAssertEqual(try produce("durable", idempotentBatch(pid: pid, seq: 3, ["d"])).baseOffset, 3)
            XCTAssertEqual(try produce("durable", idempotentBatch(pid: pid, seq: 7, ["gap"])).errorCode, 45)
            XCTAssertEqual(log.logEndOffset, wipeSnapshots ? 5 : 4)
            if !wipeSnapshots {
                XCTAssertEqual(try produce("durable", idempotentBatch(pid: pid, seq: 4, ["e"])).baseOffset, 4)
                recovered.snapshotAll()
            }
        }

        // A snapshot beyond the log end (its batches were lost) is not trusted.
        var fake = ProducerStateTable()
        var h = try parseBatchHeaders(idempotentBatch(pid: pid, seq: 5, ["lost"]))[0]
        h.baseOffset = 99
        fake.record([h])
        try restart()
        let keeper2 = ProducerStateKeeper(broker: broker, config: try ServerConfig(properties: ["log.dirs": dir!]), logger: logger)
        try ProducerStateSnapshot(offset: 100, table: fake).write(to: keeper2.path(streamId: streamId))
        try keeper2.recover()
        XCTAssertEqual(try produce("durable", idempotentBatch(pid: pid, seq: 5, ["e2"])).baseOffset, 5,
                       "seq 5 is new: the lost batch's state was dropped")
    }
}
