import NIOCore

/// Kafka's rule for compacted topics (LogValidator): every record needs a key, since the log
/// cleaner keeps records by key and would have nothing to keep a keyless one by. Checked on
/// the batches of a produce, after `validateProducedRecords` (whose `headers` it takes);
/// compressed batches are decoded again, within `maxDecompressedBytes`.
///
/// As Kafka does (KIP-467), every keyless record is named (`.invalidRecords`, by its index
/// among the produce's records, at most `recordErrorsMax` of them) and the whole produce is
/// refused, the keyed records with it.
public func requireRecordKeys(_ records: ByteBuffer, headers: [RecordBatchHeader], topicPartition: String,
                              maxDecompressedBytes: Int = RecordCompression.decompressedBytesMaxDefault) throws(RecordBatchError) {
    var errors: [RecordError] = []
    var index: Int32 = 0
    for header in headers {
        var reader = try RecordReader(batch: records, header: header, maxDecompressedBytes: maxDecompressedBytes)
        while let record = try reader.next() {
            if record.key == nil && errors.count < recordErrorsMax {
                errors.append(RecordError(batchIndex: index,
                                          message: "Compacted topic cannot accept message without key in topic partition \(topicPartition)."))
            }
            index += 1
        }
    }
    guard errors.isEmpty else { throw .invalidRecords(errors) }
}

/// The most record errors one produce answer names (a batch holds at most 2^31 records; the
/// answer stays small).
public let recordErrorsMax = 1000
