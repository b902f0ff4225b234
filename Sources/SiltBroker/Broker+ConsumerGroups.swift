import NIOCore
import SiltGroups
import SiltMetadata
import SiltProtocol

/// KIP-848's ConsumerGroupHeartbeat and ConsumerGroupDescribe, translated to and from the
/// `GroupCoordinator`. The wire names partitions by topic id; the coordinator by topic name
/// (the metadata image maps both ways). A heartbeat is answered once the group state it
/// changed is durable in `__consumer_offsets`.
extension Broker {
    func consumerGroupHeartbeat(_ req: ConsumerGroupHeartbeatRequest, _ r: Request) -> EventLoopFuture<ConsumerGroupHeartbeatResponse?> {
        var resp = ConsumerGroupHeartbeatResponse()
        guard let coordinator = groupCoordinator else {
            resp.errorCode = GroupErrorCode.coordinatorNotAvailable
            return r.succeed(resp)
        }
        let image = metadata.image
        var hb = ConsumerHeartbeatRequest(groupId: req.groupId, memberId: req.memberId, memberEpoch: req.memberEpoch)
        hb.instanceId = req.instanceId
        hb.rackId = req.rackId
        hb.rebalanceTimeoutMs = req.rebalanceTimeoutMs
        hb.subscribedTopicNames = req.subscribedTopicNames
        hb.subscribedTopicRegex = r.version >= 1 ? req.subscribedTopicRegex : nil   // "": no regex
        hb.serverAssignor = req.serverAssignor
        // Partitions of topics deleted meanwhile are not owned any more: dropped.
        hb.ownedPartitions = req.topicPartitions.map { topics in
            topics.flatMap { t in
                image.topic(id: t.topicId.foundation).map { info in t.partitions.map { TopicPartition(info.name, $0) } } ?? []
            }
        }
        hb.clientId = r.header.clientId ?? ""
        hb.clientHost = r.context.clientHost
        hb.version = r.version
        let promise = r.eventLoop.makePromise(of: ConsumerGroupHeartbeatResponse?.self)
        coordinator.consumerHeartbeat(hb, topicNames: { self.regexResolvableTopics(image, r) },
                                      partitionCount: { image.topic(named: $0)?.partitionCount }) { result in
            promise.succeed(Broker.heartbeatResponse(result, image))
        }
        return promise.futureResult
    }

    private static func heartbeatResponse(_ result: ConsumerHeartbeatResult, _ image: MetadataImage) -> ConsumerGroupHeartbeatResponse {
        var resp = ConsumerGroupHeartbeatResponse()
        resp.errorCode = result.error
        resp.errorMessage = result.errorMessage
        resp.memberId = result.memberId
        resp.memberEpoch = result.memberEpoch
        resp.heartbeatIntervalMs = result.heartbeatIntervalMs
        resp.assignment = result.assignment.map { partitions in
            var a = ConsumerGroupHeartbeatResponse.Assignment()
            a.topicPartitions = Broker.byTopicId(partitions, image).map { id, ps in
                var tp = ConsumerGroupHeartbeatResponse.TopicPartitions()
                tp.topicId = id
                tp.partitions = ps
                return tp
            }
            return a
        }
        return resp
    }

    /// Longest a ConsumerGroupDescribe waits for its groups' `__consumer_offsets` partitions
    /// to load, and how often it looks again. librdkafka's admin client does not retry the
    /// per-group COORDINATOR_LOAD_IN_PROGRESS of this API (it does DescribeGroups'), so the
    /// request is parked (a timer on its event loop) instead of answered with it.
    static let consumerDescribeLoadWaitMsMax: Int64 = 10_000
    static let consumerDescribeLoadPollMs: Int64 = 50

    func consumerGroupDescribe(_ req: ConsumerGroupDescribeRequest, _ r: Request) -> EventLoopFuture<ConsumerGroupDescribeResponse?> {
        let promise = r.eventLoop.makePromise(of: ConsumerGroupDescribeResponse?.self)
        describeWhenLoaded(req, r, deadline: .now() + .milliseconds(Broker.consumerDescribeLoadWaitMsMax), promise)
        return promise.futureResult
    }

    private func describeWhenLoaded(_ req: ConsumerGroupDescribeRequest, _ r: Request, deadline: NIODeadline,
                                    _ promise: EventLoopPromise<ConsumerGroupDescribeResponse?>) {
        let loading = groupCoordinator.map { c in req.groupIds.contains { c.isLoading(partition: c.partition(for: $0)) } } ?? false
        guard !loading || NIODeadline.now() >= deadline else {
            r.eventLoop.scheduleTask(in: .milliseconds(Broker.consumerDescribeLoadPollMs)) {
                self.describeWhenLoaded(req, r, deadline: deadline, promise)
            }
            return
        }
        promise.succeed(describeConsumerGroups(req))
    }

    private func describeConsumerGroups(_ req: ConsumerGroupDescribeRequest) -> ConsumerGroupDescribeResponse {
        var resp = ConsumerGroupDescribeResponse()
        let image = metadata.image
        func assignment(_ partitions: [TopicPartition]) -> ConsumerGroupDescribeResponse.Assignment {
            var a = ConsumerGroupDescribeResponse.Assignment()
            a.topicPartitions = Broker.byTopicId(partitions, image).map { id, ps in
                var tp = ConsumerGroupDescribeResponse.TopicPartitions()
                tp.topicId = id
                tp.topicName = image.topic(id: id.foundation)?.name ?? ""
                tp.partitions = ps
                return tp
            }
            return a
        }
        resp.groups = req.groupIds.map { id in
            var out = ConsumerGroupDescribeResponse.DescribedGroup()
            out.groupId = id
            guard let coordinator = groupCoordinator else {
                out.errorCode = GroupErrorCode.coordinatorNotAvailable
                return out
            }
            let d = coordinator.describeConsumerGroup(id)
            out.errorCode = d.error
            out.errorMessage = d.errorMessage
            guard d.error == GroupErrorCode.none else { return out }
            // authorizedOperations: the gate's (Broker+Authorization.swift).
            out.groupState = d.state
            out.groupEpoch = d.groupEpoch
            out.assignmentEpoch = d.assignmentEpoch
            out.assignorName = d.assignorName
            out.members = d.members.map { m in
                var om = ConsumerGroupDescribeResponse.Member()
                om.memberId = m.memberId
                om.instanceId = m.instanceId
                om.rackId = m.rackId
                om.memberEpoch = m.memberEpoch
                om.clientId = m.clientId
                om.clientHost = m.clientHost
                om.subscribedTopicNames = m.subscribedTopicNames
                om.subscribedTopicRegex = m.subscribedTopicRegex
                om.assignment = assignment(m.assignment)
                om.targetAssignment = assignment(m.targetAssignment)
                return om
            }
            return out
        }
        return resp
    }

    /// Partitions grouped by topic id, in topic name order; topics no longer in the image
    /// are left out (a client cannot name them).
    static func byTopicId(_ partitions: [TopicPartition], _ image: MetadataImage) -> [(KafkaUUID, [Int32])] {
        let byTopic = Dictionary(grouping: partitions, by: \.topic)
        return byTopic.keys.sorted().compactMap { name in
            image.topic(named: name).map { ($0.id.kafka, byTopic[name]!.map(\.partition).sorted()) }
        }
    }
}
