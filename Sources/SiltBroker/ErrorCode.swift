import SiltProtocol

/// Kafka error codes the broker returns itself (Kafka's `Errors` numbering). Record batch and
/// storage errors carry their own codes (`RecordBatchError`, `StorageError`, `ControllerError`).
typealias ErrorCode = KafkaErrorCode

