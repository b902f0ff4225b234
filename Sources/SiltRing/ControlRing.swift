import CSupport

/// A fixed-size 16-byte control message.
public struct ControlMessage: Equatable, Sendable {
    public var kind: UInt32
    public var flags: UInt32
    public var value: UInt64

    public init(kind: UInt32, flags: UInt32 = 0, value: UInt64) {
        self.kind = kind
        self.flags = flags
        self.value = value
    }

    /// WAL → broker: everything below LSN `value` is durable.
    public static let kindDurable: UInt32 = 1
    /// Broker → WAL: the WAL may trim everything below LSN `value`.
    public static let kindTrim: UInt32 = 2
    /// Uploader → broker: data below LSN `value` is committed in object storage.
    public static let kindUploadCommitted: UInt32 = 3
}

/// A bounded single-producer single-consumer ring of `ControlMessage`s in its own memfd
/// (one region per direction: e.g. "WAL → broker durable LSN", "broker → WAL trim").
///
/// ```
///  +0    magic u64 "SILTCTRL" │ version u32 │ slotCount u32 │ initialized u32
///  +64   head u64       messages pushed (producer, release-stored after the slot)
///  +128  tail u64       messages popped (consumer, release-stored after reading the slot)
///  +192  notEmptyFutex u32 │ notEmptyWaiters u32   consumer sleeps here
///  +256  notFullFutex u32  │ notFullWaiters u32    producer sleeps here
///  +512  slots[slotCount]: kind u32 │ flags u32 │ value u64   (slot = index & (slotCount-1))
/// ```
///
/// `0 <= head - tail <= slotCount`. The producer caches `tail` and the consumer caches `head`,
/// touching the other side's line only when their cached view says full / empty.
/// Threading: one producer thread and one consumer thread (in any processes).
public final class ControlRing: @unchecked Sendable {
    public static let headerBytes = 512
    public static let messageBytes = 16
    public static let slotCountMax = 1 << 16

    static let magic: UInt64 = 0x4C52_5443_544C_4953  // "SILTCTRL"
    static let version: UInt32 = 1

    enum Offset {
        static let magic = 0
        static let version = 8
        static let slotCount = 12
        static let initialized = 16
        static let head = 64
        static let tail = 128
        static let notEmptyFutex = 192
        static let notEmptyWaiters = 196
        static let notFullFutex = 256
        static let notFullWaiters = 260
    }

    let mapping: SharedMapping
    let slots: UnsafeMutableRawPointer
    /// Capacity in messages, a power of two.
    public let slotCount: Int
    let mask: UInt64
    let head: UnsafeMutablePointer<UInt64>
    let tail: UnsafeMutablePointer<UInt64>
    let notEmptyFutex: UnsafeMutablePointer<UInt32>
    let notEmptyWaiters: UnsafeMutablePointer<UInt32>
    let notFullFutex: UnsafeMutablePointer<UInt32>
    let notFullWaiters: UnsafeMutablePointer<UInt32>

    /// Producer-local view of `tail`; consumer-local view of `head`.
    var cachedTail: UInt64
    var cachedHead: UInt64

    private init(mapping: SharedMapping, slotCount: Int) {
        self.mapping = mapping
        self.slots = mapping.base + ControlRing.headerBytes
        self.slotCount = slotCount
        self.mask = UInt64(slotCount - 1)
        self.head = mapping.word(Offset.head, UInt64.self)
        self.tail = mapping.word(Offset.tail, UInt64.self)
        self.notEmptyFutex = mapping.word(Offset.notEmptyFutex, UInt32.self)
        self.notEmptyWaiters = mapping.word(Offset.notEmptyWaiters, UInt32.self)
        self.notFullFutex = mapping.word(Offset.notFullFutex, UInt32.self)
        self.notFullWaiters = mapping.word(Offset.notFullWaiters, UInt32.self)
        self.cachedTail = silt_atomic_load_acquire_u64(tail)
        self.cachedHead = silt_atomic_load_acquire_u64(head)
    }

    public static func regionBytes(slotCount: Int) -> Int { headerBytes + slotCount * messageBytes }

    /// Sizes `fd` and formats an empty ring of `slotCount` (a power of two, 2...65536) messages.
    public static func create(fd: Int32, slotCount: Int) throws -> ControlRing {
        precondition(slotCount >= 2 && slotCount <= slotCountMax && slotCount & (slotCount - 1) == 0,
                     "slotCount must be a power of two in 2...\(slotCountMax), got \(slotCount)")
        let e = silt_shm_resize(fd, 0)
        guard e == 0 else { throw RingError.system(operation: "ftruncate", errno: e) }
        let mapping = try SharedMapping.create(fd: fd, length: regionBytes(slotCount: slotCount))
        mapping.base.storeBytes(of: magic, toByteOffset: Offset.magic, as: UInt64.self)
        mapping.base.storeBytes(of: version, toByteOffset: Offset.version, as: UInt32.self)
        mapping.base.storeBytes(of: UInt32(slotCount), toByteOffset: Offset.slotCount, as: UInt32.self)
        silt_atomic_store_release_u32(mapping.word(Offset.initialized, UInt32.self), 1)
        return ControlRing(mapping: mapping, slotCount: slotCount)
    }

    /// Maps an existing ring, validating magic, version and geometry.
    public static func attach(fd: Int32) throws -> ControlRing {
        let size = try SharedMemory.size(of: fd)
        guard size >= regionBytes(slotCount: 2) else {
            throw RingError.badGeometry("region is \(size) bytes, smaller than a control ring")
        }
        let mapping = try SharedMapping(fd: fd, length: size)
        guard silt_atomic_load_acquire_u32(mapping.word(Offset.initialized, UInt32.self)) == 1 else {
            throw RingError.notInitialized
        }
        let m = mapping.base.load(fromByteOffset: Offset.magic, as: UInt64.self)
        guard m == magic else { throw RingError.badMagic(found: m) }
        let v = mapping.base.load(fromByteOffset: Offset.version, as: UInt32.self)
        guard v == version else { throw RingError.badVersion(found: v) }
        let n = Int(mapping.base.load(fromByteOffset: Offset.slotCount, as: UInt32.self))
        guard n >= 2, n <= slotCountMax, n & (n - 1) == 0, size == regionBytes(slotCount: n) else {
            throw RingError.badGeometry("slot count \(n), region \(size)")
        }
        let ring = ControlRing(mapping: mapping, slotCount: n)
        let h = ring.pushedCount, t = ring.poppedCount
        guard t <= h, h - t <= UInt64(n) else {
            throw RingError.badGeometry("head \(h) tail \(t)")
        }
        return ring
    }

    /// Messages pushed since creation.
    public var pushedCount: UInt64 { silt_atomic_load_acquire_u64(head) }
    /// Messages popped since creation.
    public var poppedCount: UInt64 { silt_atomic_load_acquire_u64(tail) }
    /// Messages waiting.
    public var count: Int { Int(pushedCount &- poppedCount) }

    // MARK: producer

    /// Pushes `message` if there is a free slot now. Producer side only.
    public func tryPush(_ message: ControlMessage) -> Bool {
        let h = silt_atomic_load_relaxed_u64(head)  // our own value
        if h - cachedTail >= UInt64(slotCount) {
            cachedTail = silt_atomic_load_acquire_u64(tail)
            if h - cachedTail >= UInt64(slotCount) { return false }
        }
        let slot = slots + Int(h & mask) * ControlRing.messageBytes
        slot.storeBytes(of: message.kind, toByteOffset: 0, as: UInt32.self)
        slot.storeBytes(of: message.flags, toByteOffset: 4, as: UInt32.self)
        slot.storeBytes(of: message.value, toByteOffset: 8, as: UInt64.self)
        silt_atomic_store_release_u64(head, h + 1)
        FutexWait.wake(word: notEmptyFutex, waiters: notEmptyWaiters)
        return true
    }

    /// Pushes `message`, sleeping (futex) while the ring is full, at most `timeout`
    /// (nil: no limit). Returns false on timeout. Producer side only.
    public func push(_ message: ControlMessage, timeout: Duration?) -> Bool {
        if tryPush(message) { return true }
        let deadline = FutexWait.deadline(after: timeout)
        let h = silt_atomic_load_relaxed_u64(head)
        let ok = FutexWait.until(word: notFullFutex, waiters: notFullWaiters, deadline: deadline) {
            h - silt_atomic_load_acquire_u64(tail) < UInt64(slotCount)
        }
        return ok && tryPush(message)
    }

    // MARK: consumer

    /// Pops the oldest message if there is one. Consumer side only.
    public func tryPop() -> ControlMessage? {
        let t = silt_atomic_load_relaxed_u64(tail)  // our own value
        if t == cachedHead {
            cachedHead = silt_atomic_load_acquire_u64(head)
            if t == cachedHead { return nil }
        }
        let slot = UnsafeRawPointer(slots + Int(t & mask) * ControlRing.messageBytes)
        let message = ControlMessage(kind: slot.load(fromByteOffset: 0, as: UInt32.self),
                                     flags: slot.load(fromByteOffset: 4, as: UInt32.self),
                                     value: slot.load(fromByteOffset: 8, as: UInt64.self))
        silt_atomic_store_release_u64(tail, t + 1)
        FutexWait.wake(word: notFullFutex, waiters: notFullWaiters)
        return message
    }

    /// Pops the oldest message, sleeping (futex) while the ring is empty, at most `timeout`
    /// (nil: no limit). Returns nil on timeout. Consumer side only.
    public func pop(timeout: Duration?) -> ControlMessage? {
        if let m = tryPop() { return m }
        let deadline = FutexWait.deadline(after: timeout)
        let t = silt_atomic_load_relaxed_u64(tail)
        let ok = FutexWait.until(word: notEmptyFutex, waiters: notEmptyWaiters, deadline: deadline) {
            silt_atomic_load_acquire_u64(head) > t
        }
        return ok ? tryPop() : nil
    }
}
