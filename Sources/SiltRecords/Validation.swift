import NIOCore

/// Validates every batch of a produce request's records the way Kafka's broker does
/// (ProduceRequest.validateRecords + UnifiedLog.analyzeAndValidateRecords + LogValidator).
/// Compressed batches are decoded, bounded by `maxMessageBytes` (a batch whose records inflate
/// past it is refused: zip bombs). Returns the parsed headers, in order, with `index` set to
/// each batch's absolute index in `records`.
///
/// Checks, per batch, in this order:
/// 1. at least 17 bytes left (else trailing garbage / truncated → corruptMessage);
///    magic 2 (0/1 → invalidRecord as Kafka does for produce v3+; other → corruptMessage);
///    batchLength ≥ 49 (→ corruptMessage);
/// 2. baseOffset == 0 (→ invalidRecord);
/// 3. 12 + batchLength ≤ maxMessageBytes (→ messageTooLarge), then the whole batch present (→ corruptMessage);
/// 4. CRC-32C (→ corruptMessage); compression codec 0-4 (→ corruptMessage);
/// 5. recordCount ≥ 1 and lastOffsetDelta == recordCount - 1 (→ invalidRecord; Kafka rejects empty batches);
///    not a control batch; a batch with a producerId has baseSequence ≥ 0 (→ invalidRecord);
/// 6. compressed batches: the records decode within maxMessageBytes (→ decompressedTooLarge) as a
///    valid stream of their codec (→ corruptMessage);
/// 7. the records are walked; their count and framing must match the header exactly (→ invalidRecord);
///    CreateTime topics: every record's timestamp within [now - beforeMaxMs, now + afterMaxMs]
///    (-1 "no timestamp" is exempt, as in Kafka). As Kafka does (KIP-467), every record out
///    of range is named, by its index among the produce's records, in `.invalidTimestamps`,
///    thrown once the batches are otherwise valid.
///
/// Unlike Kafka (which requires exactly one batch per partition in produce v3+), several batches
/// back to back are accepted; an empty `records` returns [].
public func validateProducedRecords(_ records: ByteBuffer, maxMessageBytes: Int, timestampType: TimestampType,
                                    messageTimestampBeforeMaxMs: Int64, messageTimestampAfterMaxMs: Int64,
                                    nowMs: Int64) throws(RecordBatchError) -> [RecordBatchHeader] {
    precondition(maxMessageBytes >= 0, "negative maxMessageBytes")
    precondition(messageTimestampBeforeMaxMs >= 0 && messageTimestampAfterMaxMs >= 0, "negative timestamp bounds")
    let earliestMs = nowMs.subtractingReportingOverflow(messageTimestampBeforeMaxMs)
    let latestMs = nowMs.addingReportingOverflow(messageTimestampAfterMaxMs)
    let earliestAllowedMs = earliestMs.overflow ? Int64.min : earliestMs.partialValue
    let latestAllowedMs = latestMs.overflow ? Int64.max : latestMs.partialValue

    var timestampErrors: [RecordError] = []
    var recordIndex: Int32 = 0
    func checkTimestamp(_ record: Record) {
        defer { recordIndex &+= 1 }
        guard timestampType == .createTime, record.timestamp != -1, timestampErrors.count < recordErrorsMax else { return }
        if record.timestamp < earliestAllowedMs || record.timestamp > latestAllowedMs {
            // Kafka's wording (LogValidator.validateTimestamp).
            timestampErrors.append(RecordError(batchIndex: recordIndex, message:
                "Timestamp \(record.timestamp) of message with offset \(record.offsetDelta) is out of range. "
                + "The timestamp should be within [\(earliestAllowedMs), \(latestAllowedMs)]"))
        }
    }

    var headers: [RecordBatchHeader] = []
    var index = records.readerIndex
    while index < records.writerIndex {
        let remaining = records.writerIndex - index
        guard remaining >= RecordBatchHeader.sizeUpToMagicBytes else {
            throw .corruptMessage("\(remaining) trailing bytes after the last batch")
        }
        let batchLength: Int32 = records.getInteger(at: index + RecordBatchHeader.batchLengthOffset)!
        let header = try RecordBatchHeader(parsing: records, at: index) // magic check, 61 bytes present
        guard batchLength >= RecordBatchHeader.minBatchLength else {
            throw .corruptMessage("batchLength \(batchLength) is smaller than the minimum \(RecordBatchHeader.minBatchLength)")
        }
        guard header.baseOffset == 0 else {
            throw .invalidRecord("the baseOffset of a produced record batch must be 0, got \(header.baseOffset)")
        }
        guard header.totalSize <= maxMessageBytes else {
            throw .messageTooLarge(sizeBytes: header.totalSize, maxBytes: maxMessageBytes)
        }
        guard header.totalSize <= remaining else {
            throw .corruptMessage("batch of \(header.totalSize) bytes truncated to \(remaining) bytes")
        }
        let computed = header.computeCRC(in: records)
        guard computed == header.crc else {
            throw .corruptMessage("record batch CRC mismatch: stored \(header.crc), computed \(computed)")
        }
        guard header.compression != nil else {
            throw .corruptMessage("unknown compression type \(header.attributes & 0x7)")
        }
        guard header.recordCount > 0 else {
            throw .invalidRecord("invalid reported count for record batch: \(header.recordCount)")
        }
        guard Int64(header.lastOffsetDelta) + 1 == Int64(header.recordCount) else {
            throw .invalidRecord("inconsistent batch offset range: lastOffsetDelta \(header.lastOffsetDelta), record count \(header.recordCount)")
        }
        guard !header.isControl else {
            throw .invalidRecord("clients are not allowed to write control records")
        }
        if header.hasProducerId && header.baseSequence < 0 {
            throw .invalidRecord("invalid sequence number \(header.baseSequence) for producer \(header.producerId)")
        }
        var reader = try RecordReader(batch: records, header: header, maxDecompressedBytes: maxMessageBytes)
        var count: Int32 = 0
        while let record = try reader.next() {
            count += 1
            checkTimestamp(record)
        }
        assert(count == header.recordCount)
        headers.append(header)
        index += header.totalSize
    }
    assert(index == records.writerIndex)
    guard timestampErrors.isEmpty else { throw .invalidTimestamps(timestampErrors) }
    return headers
}

/// Legacy form: `message.timestamp.difference.max.ms` bounds both directions (Kafka default Int64.max: disabled).
public func validateProducedRecords(_ records: ByteBuffer, maxMessageBytes: Int, timestampType: TimestampType,
                                    messageTimestampDifferenceMaxMs: Int64 = .max,
                                    nowMs: Int64) throws(RecordBatchError) -> [RecordBatchHeader] {
    try validateProducedRecords(records, maxMessageBytes: maxMessageBytes, timestampType: timestampType,
                                messageTimestampBeforeMaxMs: messageTimestampDifferenceMaxMs,
                                messageTimestampAfterMaxMs: messageTimestampDifferenceMaxMs, nowMs: nowMs)
}

/// Rewrites, in place, the broker-owned fields of the complete batch at absolute `index`:
/// baseOffset and partitionLeaderEpoch (neither is covered by the CRC, so the CRC is untouched).
///
/// When `logAppendTimeMs` is non-nil (topic uses LogAppendTime) this does what Kafka's
/// `DefaultRecordBatch.setMaxTimestamp(LOG_APPEND_TIME, now)` does: sets the timestampType bit in
/// attributes and maxTimestamp = logAppendTimeMs, leaves baseTimestamp and the record deltas alone,
/// and recomputes the CRC. Readers then treat maxTimestamp as every record's timestamp.
///
/// Returns the updated header. Precondition: a complete magic-2 batch at `index`.
@discardableResult
public func assignOffsets(_ buffer: inout ByteBuffer, at index: Int, baseOffset: Int64, partitionLeaderEpoch: Int32,
                          logAppendTimeMs: Int64?) -> RecordBatchHeader {
    guard var header = try? RecordBatchHeader(parsing: buffer, at: index), header.isComplete(in: buffer) else {
        preconditionFailure("assignOffsets: no complete magic-2 batch at index \(index)")
    }
    buffer.setInteger(baseOffset, at: index + RecordBatchHeader.baseOffsetOffset)
    buffer.setInteger(partitionLeaderEpoch, at: index + RecordBatchHeader.partitionLeaderEpochOffset)
    header.baseOffset = baseOffset
    header.partitionLeaderEpoch = partitionLeaderEpoch
    if let logAppendTimeMs {
        let attributes = header.attributes | 0x8
        buffer.setInteger(attributes, at: index + RecordBatchHeader.attributesOffset)
        buffer.setInteger(logAppendTimeMs, at: index + RecordBatchHeader.maxTimestampOffset)
        header.attributes = attributes
        header.maxTimestamp = logAppendTimeMs
        let crc = header.computeCRC(in: buffer)
        buffer.setInteger(crc, at: index + RecordBatchHeader.crcOffset)
        header.crc = crc
    }
    return header
}
