import NIOCore

/// Kafka's rule for compacted topics (LogValidator): every record needs a key, since the log
/// cleaner keeps records by key and would have nothing to keep a keyless one by. Checked on
/// the batches of a produce, after `validateProducedRecords` (whose `headers` it takes);
/// compressed batches are decoded again, within `maxDecompressedBytes`.
public func requireRecordKeys(_ records: ByteBuffer, headers: [RecordBatchHeader], topicPartition: String,
                              maxDecompressedBytes: Int = RecordCompression.decompressedBytesMaxDefault) throws(RecordBatchError) {
    for header in headers {
        var reader = try RecordReader(batch: records, header: header, maxDecompressedBytes: maxDecompressedBytes)
        while let record = try reader.next() {
            guard record.key != nil else {
                throw .invalidRecord("Compacted topic cannot accept message without key in topic partition \(topicPartition).")
            }
        }
    }
}
