import Foundation
import Logging
import NIOCore
import SiltController
import SiltMetadata
import SiltProtocol

/// The broker's block of producer ids, fetched from the controller (AllocateProducerIds)
/// whenever it runs out, so that InitProducerId costs a metadata record only once per block.
/// Concurrent callers that find the block empty share one controller request.
final class ProducerIdAllocator: @unchecked Sendable {
    private let lock = NSLock()
    private var next: Int64 = 0
    private var end: Int64 = 0
    /// Callers waiting for the block being fetched (nil: no fetch in flight).
    private var waiting: [EventLoopPromise<Int64>]?

    /// The end of the block this broker holds: ids below it were handed out by the
    /// controller, even if this broker's metadata copy has not seen the record yet.
    var blockEnd: Int64 { lock.withLock { end } }

    /// The next id; `fetch` asks the controller for a block (first id, length).
    func nextId(on loop: EventLoop, fetch: @escaping () -> EventLoopFuture<(Int64, Int32)>) -> EventLoopFuture<Int64> {
        let promise = loop.makePromise(of: Int64.self)
        let startFetch: Bool = lock.withLock {
            if next < end {
                promise.succeed(next)
                next += 1
                return false
            }
            if waiting != nil {
                waiting!.append(promise)
                return false
            }
            waiting = [promise]
            return true
        }
        if startFetch {
            fetch().whenComplete { result in
                let (woken, failure): ([(EventLoopPromise<Int64>, Int64?)], Error?) = self.lock.withLock {
                    let queue = self.waiting ?? []
                    self.waiting = nil
                    switch result {
                    case .failure(let error):
                        return (queue.map { ($0, nil) }, error)
                    case .success(let (first, count)):
                        precondition(count > 0 && first >= self.end, "controller handed out producer ids \(first)+\(count) twice")
                        self.next = first
                        self.end = first + Int64(count)
                        // Serve the waiters from the new block; any beyond it start over.
                        return (queue.map { p in
                            guard self.next < self.end else { return (p, nil) }
                            defer { self.next += 1 }
                            return (p, self.next)
                        }, nil)
                    }
                }
                for (p, id) in woken {
                    if let id { p.succeed(id) } else if let failure { p.fail(failure) } else {
                        p.completeWith(self.nextId(on: p.futureResult.eventLoop, fetch: fetch))
                    }
                }
            }
        }
        return promise.futureResult
    }
}

/// Why the controller did not hand out producer ids.
struct ProducerIdAllocationError: Error, CustomStringConvertible {
    let errorCode: Int16
    var description: String { "the controller refused to allocate producer ids (Kafka error \(errorCode))" }
}

/// InitProducerId for idempotent producers. Transactions are not supported: a transactional
/// id is refused rather than answered with an id that would not behave transactionally.
extension Broker {
    static let controllerAllocateProducerIdsVersion: Int16 = 0

    func initProducerId(_ req: InitProducerIdRequest, _ r: Request) -> EventLoopFuture<InitProducerIdResponse?> {
        var resp = InitProducerIdResponse()
        func fail(_ code: Int16) -> EventLoopFuture<InitProducerIdResponse?> {
            resp.errorCode = code
            resp.producerId = -1
            resp.producerEpoch = -1
            return r.succeed(resp)
        }
        // v3+ (KIP-360): a producer id and epoch come together or not at all.
        if (req.producerId == -1) != (req.producerEpoch == -1) { return fail(ErrorCode.invalidRequest) }
        if let transactionalId = req.transactionalId {
            // Kafka answers an empty transactional id with INVALID_REQUEST as well.
            r.logger.warning("InitProducerId with a transactional id refused: transactions are not supported",
                             metadata: ["transactionalId": "\(transactionalId)"])
            return fail(ErrorCode.invalidRequest)
        }
        // Without a transactional id Kafka hands out a fresh id at epoch 0 whatever id and
        // epoch the producer sent (KIP-360: an idempotent producer bumps its epoch itself).
        return nextProducerId(r.eventLoop).map { id -> InitProducerIdResponse? in
            resp.producerId = id
            resp.producerEpoch = 0
            return resp
        }.recover { error in
            // As Kafka's broker does while it has no block: a retriable error, the producer asks again.
            r.logger.warning("producer id allocation failed: \(error)")
            resp.errorCode = ErrorCode.coordinatorLoadInProgress
            resp.producerId = -1
            resp.producerEpoch = -1
            return resp
        }
    }

    func nextProducerId(_ loop: EventLoop) -> EventLoopFuture<Int64> {
        producerIds.nextId(on: loop) { [self] in
            var req = AllocateProducerIdsRequest()
            req.brokerId = nodeId
            return controllerChannel.send(req, version: Broker.controllerAllocateProducerIdsVersion,
                                          timeout: Broker.controllerTimeout).flatMapThrowing { resp in
                guard resp.errorCode == 0 else { throw ProducerIdAllocationError(errorCode: resp.errorCode) }
                return (resp.producerIdStart, resp.producerIdLen)
            }
        }
    }

    /// True when `producerId` was handed out by the controller at some point: below the end
    /// of every block in the metadata log, or of the block this broker holds.
    func isAllocatedProducerId(_ producerId: Int64, image: MetadataImage) -> Bool {
        producerId < max(image.nextProducerId, producerIds.blockEnd)
    }
}
