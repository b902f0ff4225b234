import Foundation
import NIOCore
import SiltMetadata
import SiltProtocol

/// KRaft's broker lifecycle RPCs: BrokerRegistration and BrokerHeartbeat.
extension ControllerService {
    func brokerRegistration(_ req: BrokerRegistrationRequest) -> BrokerRegistrationResponse {
        var resp = BrokerRegistrationResponse()
        let clusterId = controller.quorum.clusterId
        guard req.clusterId == clusterId else {
            logger.error("a broker of another cluster tried to register", metadata: [
                "broker": "\(req.brokerId)", "theirClusterId": "\(req.clusterId)", "ourClusterId": "\(clusterId)"])
            resp.errorCode = KafkaErrorCode.inconsistentClusterId
            return resp
        }
        let info = MetadataController.BrokerInfo(
            nodeId: req.brokerId, incarnationId: req.incarnationId.foundation,
            listeners: req.listeners.map { BrokerEndpoint(name: $0.name, host: $0.host, port: Int32($0.port),
                                                          securityProtocol: $0.securityProtocol) },
            rack: req.rack)
        do {
            resp.brokerEpoch = try controller.registerBroker(info)
        } catch let error as ControllerError {
            logger.warning("broker registration refused", metadata: ["broker": "\(req.brokerId)", "error": "\(error)"])
            resp.errorCode = error.kafkaErrorCode
        } catch {
            resp.errorCode = KafkaErrorCode.unknownServerError
        }
        return resp
    }

    func brokerHeartbeat(_ req: BrokerHeartbeatRequest) -> BrokerHeartbeatResponse {
        var resp = BrokerHeartbeatResponse()
        do {
            let result = try controller.brokerHeartbeat(nodeId: req.brokerId, brokerEpoch: req.brokerEpoch,
                                                        metadataOffset: req.currentMetadataOffset, wantFence: req.wantFence,
                                                        wantShutDown: req.wantShutDown, loads: loadReport(req),
                                                        reportIntervalMs: req.reportIntervalMs)
            resp.isFenced = result.isFenced
            resp.isCaughtUp = result.isCaughtUp
            resp.shouldShutDown = result.shouldShutDown
        } catch let error as ControllerError {
            resp.errorCode = error.kafkaErrorCode
        } catch {
            resp.errorCode = KafkaErrorCode.unknownServerError
        }
        return resp
    }

    func openStreams(_ req: OpenStreamsRequest) -> OpenStreamsResponse {
        var resp = OpenStreamsResponse()
        let ids = req.streamIds.map { UInt64(bitPattern: $0) }
        do {
            let results = try controller.openStreams(nodeId: req.nodeId, brokerEpoch: req.brokerEpoch, streamIds: ids)
            resp.streams = ids.map { id in
                var r = OpenStreamsResponse.OpenStreamResult()
                r.streamId = Int64(bitPattern: id)
                switch results[id]! {
                case .success(let s):
                    r.streamEpoch = s.streamEpoch
                    r.startOffset = s.startOffset
                    r.endOffset = s.endOffset
                case .failure(let e):
                    r.errorCode = e.kafkaErrorCode
                    r.errorMessage = e.description
                }
                return r
            }
        } catch {
            (resp.errorCode, resp.errorMessage) = Self.refusal(error)
        }
        return resp
    }
}
