import CSupport
import Foundation
import XCTest

/// The C shim on its own: nop, linked writev + fdatasync, read back, peek, device description.
final class URingShimTests: XCTestCase {
    func testNopWritevFdatasyncReadRoundTrip() throws {
        let path = "/var/tmp/silt-uring-shim-\(getpid()).bin"
        defer { unlink(path) }
        let fd = silt_open_direct(path, 1)
        XCTAssertGreaterThanOrEqual(fd, 0)
        defer { close(fd) }
        XCTAssertEqual(silt_fallocate(fd, 1 << 16), 0)
        var isBlock: Int32 = -1, isRegular: Int32 = -1, size: UInt64 = 0
        XCTAssertEqual(silt_fd_describe(fd, &isBlock, &isRegular, &size), 0)
        XCTAssertEqual(isBlock, 0); XCTAssertEqual(isRegular, 1); XCTAssertEqual(size, 1 << 16)

        var err: Int32 = 0
        let ring = try XCTUnwrap(silt_uring_create(8, &err))
        defer { silt_uring_destroy(ring) }
        var ud: UInt64 = 0, res: Int32 = 0
        XCTAssertEqual(silt_uring_peek_cqe(ring, &ud, &res), -EAGAIN)

        let a = try XCTUnwrap(silt_aligned_alloc(4096, 4096)), b = try XCTUnwrap(silt_aligned_alloc(4096, 4096))
        let r = try XCTUnwrap(silt_aligned_alloc(4096, 8192))
        defer { silt_aligned_free(a); silt_aligned_free(b); silt_aligned_free(r) }
        memset(a, 0xAB, 4096); memset(b, 0xCD, 4096)
        var iov = [iovec(iov_base: a, iov_len: 4096), iovec(iov_base: b, iov_len: 4096)]
        try iov.withUnsafeMutableBufferPointer { iovs in
            silt_uring_prep_nop(try XCTUnwrap(silt_uring_get_sqe(ring)), 1)
            let w = try XCTUnwrap(silt_uring_get_sqe(ring))
            silt_uring_prep_writev(w, fd, iovs.baseAddress!, 2, 4096, 2)
            silt_uring_sqe_set_link(w)
            silt_uring_prep_fdatasync(try XCTUnwrap(silt_uring_get_sqe(ring)), fd, 3)
            XCTAssertEqual(silt_uring_submit_and_wait(ring, 3), 3)
            var seen: [UInt64: Int32] = [:]
            for _ in 0..<3 {
                XCTAssertEqual(silt_uring_wait_cqe(ring, &ud, &res), 0)
                seen[ud] = res
                silt_uring_cqe_seen(ring)
            }
            XCTAssertEqual(seen, [1: 0, 2: 8192, 3: 0])
        }
        silt_uring_prep_read(try XCTUnwrap(silt_uring_get_sqe(ring)), fd, r, 8192, 4096, 4)
        XCTAssertEqual(silt_uring_submit(ring), 1)
        XCTAssertEqual(silt_uring_wait_cqe_timeout(ring, 5_000_000_000, &ud, &res), 0)
        silt_uring_cqe_seen(ring)
        XCTAssertEqual(ud, 4); XCTAssertEqual(res, 8192)
        let bytes = UnsafeRawBufferPointer(start: r, count: 8192)
        XCTAssertTrue(bytes[..<4096].allSatisfy { $0 == 0xAB } && bytes[4096...].allSatisfy { $0 == 0xCD })
        XCTAssertEqual(silt_uring_wait_cqe_timeout(ring, 1_000_000, &ud, &res), -ETIME)
    }
}
