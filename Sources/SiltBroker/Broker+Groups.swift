import NIOCore
import SiltGroups
import SiltProtocol

/// The classic group protocol's requests, translated to and from the `GroupCoordinator`.
/// This node coordinates every group (a single broker); JoinGroup and SyncGroup answers
/// are promises the coordinator completes when the rebalance gets there.
extension Broker {
    /// Kafka's FindCoordinator key types.
    static let coordinatorKeyGroup: Int8 = 0
    static let coordinatorKeyTransaction: Int8 = 1

    private func coordinatorUnavailable<T>(_ r: Request, _ make: (Int16) -> T) -> EventLoopFuture<T?> {
        r.succeed(make(GroupErrorCode.coordinatorNotAvailable))
    }

    // MARK: FindCoordinator

    func findCoordinator(_ req: FindCoordinatorRequest, _ r: Request) -> EventLoopFuture<FindCoordinatorResponse?> {
        let keyType = r.version >= 1 ? req.keyType : Broker.coordinatorKeyGroup
        let image = metadata.image
        let offsets = image.topic(named: Broker.offsetsTopic)
        if keyType == Broker.coordinatorKeyGroup && offsets == nil { createOffsetsTopic() }
        let brokers = liveBrokerEndpoints(image, listenerName: r.context.listenerName)
        // A group's coordinator is the leader of its __consumer_offsets partition.
        func answer(_ key: String) -> FindCoordinatorResponse.Coordinator {
            var c = FindCoordinatorResponse.Coordinator()
            c.key = key
            c.nodeId = -1
            c.host = ""
            c.port = -1
            switch keyType {
            case Broker.coordinatorKeyGroup:
                guard let offsets else {
                    c.errorCode = GroupErrorCode.coordinatorNotAvailable
                    c.errorMessage = "\(Broker.offsetsTopic) is being created."
                    break
                }
                let partition = GroupRecords.partition(for: key, partitions: offsets.partitionCount)
                let leader = image.leadership(topic: offsets, partition: partition)?.leader ?? -1
                guard let b = brokers.first(where: { $0.id == leader }) else {
                    c.errorCode = GroupErrorCode.coordinatorNotAvailable
                    c.errorMessage = "\(Broker.offsetsTopic)-\(partition) has no live leader."
                    break
                }
                (c.nodeId, c.host, c.port) = (b.id, b.host, b.port)
                c.errorMessage = nil
            case Broker.coordinatorKeyTransaction:
                c.errorCode = GroupErrorCode.invalidRequest
                c.errorMessage = "Transactions are not supported by this broker."
            default:
                c.errorCode = GroupErrorCode.invalidRequest
                c.errorMessage = "Coordinator key type \(keyType) is not supported."
            }
            return c
        }
        var resp = FindCoordinatorResponse()
        if r.version >= 4 {
            resp.coordinators = req.coordinatorKeys.map(answer)
        } else {
            let c = answer(req.key)
            resp.errorCode = c.errorCode
            resp.errorMessage = c.errorMessage
            resp.nodeId = c.nodeId
            resp.host = c.host
            resp.port = c.port
        }
        return r.succeed(resp)
    }

    // MARK: JoinGroup, SyncGroup, Heartbeat, LeaveGroup

    func joinGroup(_ req: JoinGroupRequest, _ r: Request) -> EventLoopFuture<JoinGroupResponse?> {
        guard let coordinator = groupCoordinator else {
            return coordinatorUnavailable(r) { var resp = JoinGroupResponse(); resp.errorCode = $0; return resp }
        }
        var join = JoinRequest(
            groupId: req.groupId, memberId: req.memberId, groupInstanceId: r.version >= 5 ? req.groupInstanceId : nil,
            protocolType: req.protocolType, protocols: req.protocols.map { (name: $0.name, metadata: $0.metadata) },
            sessionTimeoutMs: req.sessionTimeoutMs,
            rebalanceTimeoutMs: r.version >= 1 ? req.rebalanceTimeoutMs : req.sessionTimeoutMs,
            clientId: r.header.clientId ?? "", clientHost: r.context.clientHost, requireKnownMemberId: r.version >= 4)
        join.supportsSkipAssignment = r.version >= 9
        let promise = r.eventLoop.makePromise(of: JoinGroupResponse?.self)
        coordinator.join(join) { result in
            var resp = JoinGroupResponse()
            resp.errorCode = result.error
            resp.generationId = result.generationId
            resp.protocolType = result.protocolType
            resp.protocolName = result.protocolName
            resp.leader = result.leader
            resp.memberId = result.memberId
            resp.skipAssignment = result.skipAssignment
            resp.members = result.members.map { m in
                var out = JoinGroupResponse.JoinGroupResponseMember()
                out.memberId = m.memberId
                out.groupInstanceId = m.groupInstanceId
                out.metadata = m.metadata
                return out
            }
            promise.succeed(resp)
        }
        return promise.futureResult
    }

    func syncGroup(_ req: SyncGroupRequest, _ r: Request) -> EventLoopFuture<SyncGroupResponse?> {
        guard let coordinator = groupCoordinator else {
            return coordinatorUnavailable(r) { var resp = SyncGroupResponse(); resp.errorCode = $0; return resp }
        }
        var assignments: [String: [UInt8]] = [:]
        for a in req.assignments { assignments[a.memberId] = a.assignment }
        let sync = SyncRequest(groupId: req.groupId, generationId: req.generationId, memberId: req.memberId,
                               groupInstanceId: r.version >= 3 ? req.groupInstanceId : nil,
                               protocolType: r.version >= 5 ? req.protocolType : nil,
                               protocolName: r.version >= 5 ? req.protocolName : nil, assignments: assignments)
        let promise = r.eventLoop.makePromise(of: SyncGroupResponse?.self)
        coordinator.sync(sync) { result in
            var resp = SyncGroupResponse()
            resp.errorCode = result.error
            resp.protocolType = result.protocolType
            resp.protocolName = result.protocolName
            resp.assignment = result.assignment
            promise.succeed(resp)
        }
        return promise.futureResult
    }

    func heartbeat(_ req: HeartbeatRequest, _ r: Request) -> EventLoopFuture<HeartbeatResponse?> {
        var resp = HeartbeatResponse()
        resp.errorCode = groupCoordinator?.heartbeat(groupId: req.groupId, generationId: req.generationId, memberId: req.memberId,
                                                     groupInstanceId: r.version >= 3 ? req.groupInstanceId : nil)
            ?? GroupErrorCode.coordinatorNotAvailable
        return r.succeed(resp)
    }

    func leaveGroup(_ req: LeaveGroupRequest, _ r: Request) -> EventLoopFuture<LeaveGroupResponse?> {
        var resp = LeaveGroupResponse()
        guard let coordinator = groupCoordinator else {
            resp.errorCode = GroupErrorCode.coordinatorNotAvailable
            return r.succeed(resp)
        }
        let leaving: [(memberId: String, groupInstanceId: String?)] = r.version >= 3
            ? req.members.map { (memberId: $0.memberId, groupInstanceId: $0.groupInstanceId) }
            : [(memberId: req.memberId, groupInstanceId: nil)]
        let (error, errors) = coordinator.leave(groupId: req.groupId, members: leaving)
        resp.errorCode = error
        if r.version >= 3 {
            if error == GroupErrorCode.none {
                resp.members = zip(leaving, errors).map { m, code in
                    var out = LeaveGroupResponse.MemberResponse()
                    out.memberId = m.memberId
                    out.groupInstanceId = m.groupInstanceId
                    out.errorCode = code
                    return out
                }
            }
        } else if error == GroupErrorCode.none {
            resp.errorCode = errors.first ?? GroupErrorCode.none
        }
        return r.succeed(resp)
    }
}
