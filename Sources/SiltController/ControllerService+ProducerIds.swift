import Foundation
import SiltProtocol

/// Producer ids, handed to brokers in blocks (Kafka's AllocateProducerIds, KIP-730): a
/// broker answers InitProducerId from its block and asks for the next when it runs out.
/// Each block is a metadata record, so an id is never handed out twice, across restarts too.
extension MetadataController {
    /// Ids per block, as in Kafka (`ProducerIdsBlock.PRODUCER_ID_BLOCK_SIZE`).
    public static let producerIdBlockSize: Int32 = 1000

    /// Spends the next block of producer ids for `brokerId`; returns its first id.
    public func allocateProducerIds(brokerId: Int32) throws -> Int64 {
        try mutate {
            let first = _image.nextProducerId
            guard first <= Int64.max - Int64(MetadataController.producerIdBlockSize) else {
                throw ControllerError.invalidRequest("The producer id space is exhausted.")
            }
            let next = first + Int64(MetadataController.producerIdBlockSize)
            try commit([.producerIds(brokerId: brokerId, nextProducerId: next)])
            logger.info("producer ids allocated", metadata: ["broker": "\(brokerId)", "first": "\(first)", "next": "\(next)"])
            return first
        }
    }
}

extension ControllerService {
    func allocateProducerIds(_ req: AllocateProducerIdsRequest) -> AllocateProducerIdsResponse {
        var resp = AllocateProducerIdsResponse()
        do {
            resp.producerIdStart = try controller.allocateProducerIds(brokerId: req.brokerId)
            resp.producerIdLen = MetadataController.producerIdBlockSize
        } catch {
            // The response has no message field: the reason goes to the controller's log.
            logger.error("producer id allocation failed", metadata: ["broker": "\(req.brokerId)", "error": "\(error)"])
            resp.errorCode = ControllerService.errorFields(error).0
            resp.producerIdStart = -1
            resp.producerIdLen = 0
        }
        return resp
    }
}
