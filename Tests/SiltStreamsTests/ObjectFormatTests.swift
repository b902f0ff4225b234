// The object format: builder layout, index parsing, lookups and malformed input.

import CSupport
import XCTest
@testable import SiltStreams

final class ObjectFormatTests: XCTestCase {
    /// Three streams interleaved; returns the builder and what each stream got.
    private func filledBuilder(blockBytes: Int = 2500) -> (StreamSetObjectBuilder, [UInt64: [UInt8]]) {
        let b = StreamSetObjectBuilder(blockBytesTarget: blockBytes)
        var expected: [UInt64: [UInt8]] = [:]
        let frames: [UInt64: [(base: Int64, end: Int64, bytes: [UInt8])]] = [
            7: Batches.frames(start: 100, count: 20), 3: Batches.frames(start: 0, count: 5), 9: Batches.frames(start: 50, count: 2),
        ]
        for i in 0..<20 {
            for id: UInt64 in [9, 7, 3] where i < frames[id]!.count {
                b.add(id, frames[id]![i])
                expected[id, default: []] += frames[id]![i].bytes
            }
        }
        return (b, expected)
    }

    func testBuildAndParseRoundTrip() throws {
        let (b, expected) = filledBuilder()
        XCTAssertEqual(b.bytesAdded, expected.values.reduce(0) { $0 + $1.count })
        let (set, streams) = b.finish(splitBytes: Int.max)
        XCTAssertTrue(b.isEmpty)
        XCTAssertTrue(streams.isEmpty)
        let obj = try XCTUnwrap(set)
        XCTAssertEqual(obj.kind, .streamSet)
        XCTAssertEqual(obj.ranges, [StreamRange(streamId: 3, startOffset: 0, endOffset: 90),
                                    StreamRange(streamId: 7, startOffset: 100, endOffset: 100 + 390),
                                    StreamRange(streamId: 9, startOffset: 50, endOffset: 80)])
        let index = try ObjectIndex.parse(object: obj.bytes)
        XCTAssertEqual(index.ranges, obj.ranges)
        XCTAssertEqual(index.dataBytes, Int64(obj.bytes.count - index.entries.count * 40 - ObjectIndex.footerBytes))
        // Sorted by (stream, offset); each stream's blocks concatenate to exactly what was added.
        for id: UInt64 in [3, 7, 9] {
            let blocks = index.blocks(streamId: id, from: 0)
            let data = blocks.flatMap { obj.bytes[Int($0.position)..<(Int($0.position) + $0.size)] }
            XCTAssertEqual(data, expected[id]!)
            for e in blocks {
                // Blocks close before exceeding the target (every frame here is smaller); none splits a frame.
                XCTAssertLessThanOrEqual(e.size, 2500)
                XCTAssertEqual(try obj.bytes[Int(e.position)..<(Int(e.position) + e.size)].withUnsafeBytes {
                    try RecordBatches.walk(block: $0, entry: e).count
                }, e.batchCount)
            }
        }
        XCTAssertGreaterThan(index.blocks(streamId: 7, from: 0).count, 5)
    }

    func testOversizedPayloadGetsItsOwnBlock() throws {
        let b = StreamSetObjectBuilder(blockBytesTarget: 1000)
        b.add(1, (0, 1, Batches.make(baseOffset: 0, records: 1, size: 300)))
        b.add(1, (1, 2, Batches.make(baseOffset: 1, records: 1, size: 5000)))
        b.add(1, (2, 3, Batches.make(baseOffset: 2, records: 1, size: 300)))
        b.add(1, (3, 4, Batches.make(baseOffset: 3, records: 1, size: 300)))
        let index = try ObjectIndex.parse(object: b.finish(splitBytes: .max).streamSet!.bytes)
        XCTAssertEqual(index.entries.map(\.size), [300, 5000, 600])
        XCTAssertEqual(index.entries.map(\.startOffset), [0, 1, 2])
    }

    func testFinishSplitsBigStreamsIntoStreamObjects() throws {
        let (b, expected) = filledBuilder()
        let (set, streams) = b.finish(splitBytes: expected[3]!.count)  // 3 and 7 are big enough, 9 is not
        XCTAssertEqual(set?.ranges.map(\.streamId), [9])
        XCTAssertEqual(streams.map { $0.ranges.map(\.streamId) }, [[3], [7]])
        XCTAssertEqual(streams.map(\.kind), [.stream, .stream])
        for s in streams { XCTAssertEqual(try ObjectIndex.parse(object: s.bytes).ranges, s.ranges) }
        let again = b.finish(splitBytes: 0)
        XCTAssertNil(again.streamSet)
        XCTAssertTrue(again.streamObjects.isEmpty)
    }

    func testBlocksLookup() throws {
        let (b, _) = filledBuilder(blockBytes: 1000)
        let index = try ObjectIndex.parse(object: b.finish(splitBytes: .max).streamSet!.bytes)
        let all = index.blocks(streamId: 7, from: 0)
        XCTAssertEqual(all.first?.startOffset, 100)
        for e in all {
            XCTAssertEqual(index.blocks(streamId: 7, from: e.startOffset).first, e)
            XCTAssertEqual(index.blocks(streamId: 7, from: e.endOffset - 1).first, e)
            XCTAssertEqual(index.blocks(streamId: 7, from: e.startOffset).last, all.last)
        }
        XCTAssertTrue(index.blocks(streamId: 7, from: 490).isEmpty)
        XCTAssertTrue(index.blocks(streamId: 8, from: 0).isEmpty)
        XCTAssertTrue(index.blocks(streamId: 10, from: 0).isEmpty)
        XCTAssertEqual(index.blocks(streamId: 9, from: 0).map(\.streamId), [9, 9])  // 500 + 1074 bytes > 1000
        XCTAssertEqual(index.blocks(streamId: 9, from: 60).map(\.startOffset), [60])
    }

    func testMalformedInputsThrowTypedErrors() throws {
        let (b, _) = filledBuilder()
        let good = b.finish(splitBytes: .max).streamSet!.bytes
        let n = good.count
        func expect(_ bytes: [UInt8], _ check: (ObjectFormatError) -> Bool, line: UInt = #line) {
            XCTAssertThrowsError(try ObjectIndex.parse(object: bytes), line: line) { e in
                XCTAssertTrue(check(e as! ObjectFormatError), "\(e)", line: line)
            }
        }
        expect(Array(good.prefix(10))) { if case .truncated = $0 { return true }; return false }
        var bad = good; bad[n - 1] ^= 1
        expect(bad) { if case .badMagic = $0 { return true }; return false }
        bad = good; bad[n - 10] = 9
        expect(bad) { $0 == .unsupportedVersion(9) }
        bad = good; bad[n - ObjectIndex.footerBytes - 3] ^= 0x40  // inside the index
        expect(bad) { if case .crcMismatch = $0 { return true }; return false }
        bad = good; bad[n - ObjectIndex.footerBytes + 2] ^= 1  // index position
        expect(bad) { if case .indexOutOfBounds = $0 { return true }; return false }
        expect(Array(good.dropFirst(40))) { if case .indexOutOfBounds = $0 { return true }; return false }

        // Entries that are valid by CRC but not sorted: swap two entries and re-encode.
        var index = try ObjectIndex.parse(object: good)
        var entries = index.entries
        entries.swapAt(0, entries.count - 1)
        var reordered = Array(good.prefix(Int(index.dataBytes)))
        reordered += ObjectIndex.encodeIndexAndFooter(entries, dataBytes: index.dataBytes)
        expect(reordered) { if case .malformedIndex = $0 { return true }; return false }
        index = try ObjectIndex.parse(object: good)
        entries = index.entries
        entries[1].startOffset += 1  // overlap/gap within stream 3
        reordered = Array(good.prefix(Int(index.dataBytes))) + ObjectIndex.encodeIndexAndFooter(entries, dataBytes: index.dataBytes)
        expect(reordered) { if case .malformedIndex = $0 { return true }; return false }
    }

    /// Random truncations and bit flips of a valid object: parsing, and walking the blocks
    /// of whatever parses, throw or succeed, never crash.
    func testFuzzTruncationsAndBitFlipsNeverCrash() throws {
        let (b, _) = filledBuilder(blockBytes: 700)
        let good = b.finish(splitBytes: .max).streamSet!.bytes
        var rng = SystemRandomNumberGenerator()
        var parsed = 0, rejected = 0
        for round in 0..<3000 {
            var bytes = good
            if round % 3 == 0 {
                bytes = Array(bytes.prefix(Int.random(in: 0..<bytes.count, using: &rng)))
            }
            for _ in 0..<Int.random(in: 1...3, using: &rng) where !bytes.isEmpty {
                // Bias flips towards the tail, where index and footer live.
                let i = round % 2 == 0 ? Int.random(in: 0..<bytes.count, using: &rng)
                    : max(0, bytes.count - 1 - Int.random(in: 0..<min(bytes.count, 600), using: &rng))
                bytes[i] ^= UInt8(1 << Int.random(in: 0..<8, using: &rng))
            }
            do {
                let index = try ObjectIndex.parse(object: bytes)
                parsed += 1
                for e in index.entries {
                    _ = try? bytes[Int(e.position)..<(Int(e.position) + e.size)].withUnsafeBytes { try RecordBatches.walk(block: $0, entry: e) }
                }
            } catch is ObjectFormatError {
                rejected += 1
            }
        }
        XCTAssertGreaterThan(rejected, 1000)
        XCTAssertGreaterThan(parsed, 10)  // flips in data blocks leave the index valid
    }

    func testFooterLayoutIsAsDocumented() throws {
        let b = StreamSetObjectBuilder(blockBytesTarget: 1 << 20)
        b.add(5, (10, 11, Batches.make(baseOffset: 10, records: 1, size: 100)))
        let obj = b.finish(splitBytes: .max).streamSet!.bytes
        XCTAssertEqual(obj.count, 100 + 40 + 26)
        XCTAssertEqual(Array(obj.suffix(8)), Array("SILTOBJ1".utf8))
        let footer = try ObjectIndex.parseFooter(obj)
        XCTAssertEqual(footer.indexPosition, 100)
        XCTAssertEqual(footer.indexSize, 40)
        XCTAssertEqual(footer.indexCrc, obj[100..<140].withUnsafeBytes { silt_crc32c(0, $0.baseAddress!, 40) })
        XCTAssertEqual(Array(obj[100..<108]), [5, 0, 0, 0, 0, 0, 0, 0])  // streamId, little-endian
    }
}
