import NIOCore

/// Kafka's rule for compacted topics (LogValidator): every record needs a key, since the log
/// cleaner keeps records by key and would have nothing to keep a keyless one by. Checked on
/// the uncompressed batches of a produce, after `validateProducedRecords` (whose `headers` it
/// takes). Compressed batches are not decompressed here, so their keys go unchecked; the
/// cleaner keeps such batches whole.
public func requireRecordKeys(_ records: ByteBuffer, headers: [RecordBatchHeader], topicPartition: String) throws(RecordBatchError) {
    for header in headers where !header.isCompressed {
        var reader = try RecordReader(batch: records, header: header)
        while let record = try reader.next() {
            guard record.key != nil else {
                throw .invalidRecord("Compacted topic cannot accept message without key in topic partition \(topicPartition).")
            }
        }
    }
}
