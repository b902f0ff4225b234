/// What the WAL writer (`WALWriter`) needs of a log, whatever holds it: the io_uring `WAL` on a
/// block device or file, or the `ObjectWAL` in an S3 bucket (S3 WAL mode). Both are circular
/// in LSN terms: records cover contiguous LSN ranges from the trim point to the head, a record
/// is durable once it and every record before it are stored, and a trim frees what the
/// uploader has committed to stream objects.
///
/// Not thread-safe: the WAL writer's thread owns it.
public protocol WriteAheadLog: AnyObject {
    /// Where it lives, for messages: a path, or the bucket and prefix.
    var location: String { get }
    var maxRecordPayloadBytes: Int { get }
    /// The LSN the next record must start at.
    var headLSN: UInt64 { get }
    /// Everything below it is stored (and every acknowledgement may go out).
    var durableLSN: UInt64 { get }
    var trimLSN: UInt64 { get }
    var usedBytes: UInt64 { get }
    var capacityBytes: UInt64 { get }
    /// A record may be submitted now (the in-flight bound is not reached, the log did not fail).
    var canSubmit: Bool { get }
    var inFlightWrites: Int { get }
    /// When to submit what waits: nil means at once (group commit); otherwise a window.
    var batching: WALBatching? { get }
    /// Copies `payloads` into one record covering [startLSN, endLSN) and starts storing it.
    /// Throws `WALError.full` when the log cannot take it until a trim (nothing is written).
    @discardableResult
    func submit(payloads: [UnsafeRawBufferPointer], startLSN: UInt64, endLSN: UInt64) throws -> WriteTicket
    /// Takes the records stored since the last call; with `wait`, blocks until one is (when any is
    /// in flight). Returns the new durable LSN when it advanced.
    func reap(wait: Bool) throws -> UInt64?
    /// Frees the records that end at or below `lsn` (a durable LSN). Returns the trim LSN in force.
    @discardableResult
    func trim(to lsn: UInt64) throws -> UInt64
    /// Moves an empty log to start at `lsn` (the log buffer's LSNs ran ahead of it).
    func rebase(nextLSN lsn: UInt64) throws
    func close() throws
}

/// A batch window (S3 WAL mode): what waits is submitted once `intervalMs` has passed since the
/// previous record was submitted, or at once when `bytes` wait. An idle log's first record goes
/// at once; under load, one record per window.
public struct WALBatching: Sendable, Equatable {
    public var intervalMs: Int
    public var bytes: Int
    public init(intervalMs: Int, bytes: Int) {
        precondition(intervalMs >= 0 && bytes > 0)
        self.intervalMs = intervalMs
        self.bytes = bytes
    }
}

/// The checks every `submit` makes before it stores anything: the payload fits a record, the
/// LSN range continues the log, and a write may be added.
enum SubmitChecks {
    static func check(payloadBytes: Int, maxPayloadBytes: Int, startLSN: UInt64, endLSN: UInt64, nextLSN: UInt64,
                      inFlight: Int, inFlightLimit: Int) throws {
        guard payloadBytes <= maxPayloadBytes else {
            throw WALError.recordTooLarge(payloadBytes: payloadBytes, maxPayloadBytes: maxPayloadBytes)
        }
        guard startLSN == nextLSN, endLSN > startLSN, endLSN - startLSN >= UInt64(payloadBytes) else {
            throw WALError.lsnDiscontinuity(expectedStartLSN: nextLSN, startLSN: startLSN, endLSN: endLSN)
        }
        guard inFlight < inFlightLimit else { throw WALError.inFlightLimitReached(limit: inFlightLimit) }
    }
}

extension WAL: WriteAheadLog {
    public var location: String { path }
    public var maxRecordPayloadBytes: Int { config.maxRecordPayloadBytes }
    public var batching: WALBatching? { nil }
}
