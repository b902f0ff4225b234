import NIOCore
import SiltGroups
import SiltProtocol

/// Committed offsets and group administration: OffsetCommit, OffsetFetch, OffsetDelete,
/// ListGroups, DescribeGroups and DeleteGroups.
extension Broker {
    // MARK: OffsetCommit

    func offsetCommit(_ req: OffsetCommitRequest, _ r: Request) -> EventLoopFuture<OffsetCommitResponse?> {
        let image = metadata.image
        let nowMs = Broker.nowMs()
        let metadataMaxBytes = groupCoordinator?.config.offsetMetadataMaxBytes ?? 4096
        var resp = OffsetCommitResponse()
        var offsets: [TopicPartition: CommittedOffset] = [:]
        // Where each partition's answer sits, for those the coordinator decides.
        var decided: [(topic: Int, partition: Int)] = []
        for t in req.topics {
            var out = OffsetCommitResponse.OffsetCommitResponseTopic()
            out.name = t.name
            let topic = image.topic(named: t.name)
            for p in t.partitions {
                var pr = OffsetCommitResponse.OffsetCommitResponsePartition()
                pr.partitionIndex = p.partitionIndex
                let metadata = p.committedMetadata ?? ""
                if topic == nil || p.partitionIndex < 0 || p.partitionIndex >= topic!.partitionCount {
                    pr.errorCode = ErrorCode.unknownTopicOrPartition
                } else if metadata.utf8.count > metadataMaxBytes {
                    pr.errorCode = GroupErrorCode.offsetMetadataTooLarge
                } else {
                    // v1 carries a commit timestamp; -1 (and every other version) means now.
                    let stamp = r.version == 1 && p.commitTimestamp >= 0 ? p.commitTimestamp : nowMs
                    offsets[TopicPartition(t.name, p.partitionIndex)] = CommittedOffset(
                        offset: p.committedOffset, leaderEpoch: r.version >= 6 ? p.committedLeaderEpoch : -1,
                        metadata: metadata, commitTimestampMs: stamp)
                    decided.append((resp.topics.count, out.partitions.count))
                }
                out.partitions.append(pr)
            }
            resp.topics.append(out)
        }
        guard !decided.isEmpty else { return r.succeed(resp) }
        guard let coordinator = groupCoordinator else {
            for (ti, pi) in decided { resp.topics[ti].partitions[pi].errorCode = GroupErrorCode.coordinatorNotAvailable }
            return r.succeed(resp)
        }
        let promise = r.eventLoop.makePromise(of: OffsetCommitResponse?.self)
        let (answer, answered) = (resp, decided)
        coordinator.commitOffsets(groupId: req.groupId, generationId: req.generationIdOrMemberEpoch, memberId: req.memberId,
                                  groupInstanceId: r.version >= 7 ? req.groupInstanceId : nil, offsets: offsets,
                                  version: r.version) { code in
            var resp = answer
            for (ti, pi) in answered { resp.topics[ti].partitions[pi].errorCode = code }
            promise.succeed(resp)
        }
        return promise.futureResult
    }

    // MARK: OffsetFetch

    func offsetFetch(_ req: OffsetFetchRequest, _ r: Request) -> EventLoopFuture<OffsetFetchResponse?> {
        var resp = OffsetFetchResponse()
        func fetch(_ groupId: String, _ topics: [(name: String, partitions: [Int32])]?,
                   member: (id: String, epoch: Int32)? = nil) -> (Int16, [FetchedTopic]) {
            let wanted = topics.map { $0.flatMap { t in t.partitions.map { TopicPartition(t.name, $0) } } }
            guard let coordinator = groupCoordinator else {
                return (GroupErrorCode.coordinatorNotAvailable, [])
            }
            let (error, fetched) = coordinator.fetchOffsets(groupId: groupId, partitions: wanted,
                                                            requireStable: r.version >= 7 && req.requireStable, member: member)
            var byTopic: [String: [GroupCoordinator.FetchedOffset]] = [:]
            var order: [String] = []
            for f in fetched {
                if byTopic[f.partition.topic] == nil { order.append(f.partition.topic) }
                byTopic[f.partition.topic, default: []].append(f)
            }
            return (error, order.map { FetchedTopic(name: $0, partitions: byTopic[$0]!) })
        }
        if r.version >= 8 {
            resp.groups = req.groups.map { g in
                var out = OffsetFetchResponse.OffsetFetchResponseGroup()
                out.groupId = g.groupId
                // v9+ names the member (KIP-848): checked against a consumer-protocol group.
                let member = r.version >= 9 && g.memberId != nil ? (id: g.memberId!, epoch: g.memberEpoch) : nil
                let (error, topics) = fetch(g.groupId, g.topics.map { $0.map { (name: $0.name, partitions: $0.partitionIndexes) } },
                                            member: member)
                out.errorCode = error
                out.topics = topics.map { t in
                    var ot = OffsetFetchResponse.OffsetFetchResponseTopics()
                    ot.name = t.name
                    ot.partitions = t.partitions.map { f in
                        var op = OffsetFetchResponse.OffsetFetchResponsePartitions()
                        op.partitionIndex = f.partition.partition
                        op.committedOffset = f.offset?.offset ?? -1
                        op.committedLeaderEpoch = f.offset?.leaderEpoch ?? -1
                        op.metadata = f.offset?.metadata ?? ""
                        op.errorCode = f.error
                        return op
                    }
                    return ot
                }
                return out
            }
            return r.succeed(resp)
        }
        let requested = req.topics.map { $0.map { (name: $0.name, partitions: $0.partitionIndexes) } }
        let (error, topics) = fetch(req.groupId, requested)
        if error != GroupErrorCode.none && r.version < 2 {
            // v0-1 have no group-level error: every requested partition carries it.
            resp.topics = Broker.offsetFetchV0Topics(requested ?? [], error: error)
            return r.succeed(resp)
        }
        resp.errorCode = error
        resp.topics = topics.map { t in
            var ot = OffsetFetchResponse.OffsetFetchResponseTopic()
            ot.name = t.name
            ot.partitions = t.partitions.map { f in
                var op = OffsetFetchResponse.OffsetFetchResponsePartition()
                op.partitionIndex = f.partition.partition
                op.committedOffset = f.offset?.offset ?? -1
                op.committedLeaderEpoch = f.offset?.leaderEpoch ?? -1
                op.metadata = f.offset?.metadata ?? ""
                op.errorCode = f.error
                return op
            }
            return ot
        }
        return r.succeed(resp)
    }

    struct FetchedTopic {
        var name: String
        var partitions: [GroupCoordinator.FetchedOffset]
    }

    // MARK: OffsetDelete

    func offsetDelete(_ req: OffsetDeleteRequest, _ r: Request) -> EventLoopFuture<OffsetDeleteResponse?> {
        guard let coordinator = groupCoordinator else {
            var resp = OffsetDeleteResponse()
            resp.errorCode = GroupErrorCode.coordinatorNotAvailable
            return r.succeed(resp)
        }
        let partitions = req.topics.flatMap { t in t.partitions.map { TopicPartition(t.name, $0.partitionIndex) } }
        let promise = r.eventLoop.makePromise(of: OffsetDeleteResponse?.self)
        coordinator.deleteOffsets(groupId: req.groupId, partitions: partitions) { error, errors in
            var resp = OffsetDeleteResponse()
            resp.errorCode = error
            if error == GroupErrorCode.none {
                resp.topics = req.topics.map { t in
                    var ot = OffsetDeleteResponse.OffsetDeleteResponseTopic()
                    ot.name = t.name
                    ot.partitions = t.partitions.map { p in
                        var op = OffsetDeleteResponse.OffsetDeleteResponsePartition()
                        op.partitionIndex = p.partitionIndex
                        op.errorCode = errors[TopicPartition(t.name, p.partitionIndex)] ?? GroupErrorCode.none
                        return op
                    }
                    return ot
                }
            }
            promise.succeed(resp)
        }
        return promise.futureResult
    }

    // MARK: ListGroups, DescribeGroups, DeleteGroups

    func listGroups(_ req: ListGroupsRequest, _ r: Request) -> EventLoopFuture<ListGroupsResponse?> {
        var resp = ListGroupsResponse()
        guard let coordinator = groupCoordinator else {
            // No __consumer_offsets yet: no group exists anywhere, and Kafka lists none. Otherwise
            // this broker's coordinator is starting (clients retry).
            if metadata.image.topic(named: Broker.offsetsTopic) != nil { resp.errorCode = GroupErrorCode.coordinatorNotAvailable }
            return r.succeed(resp)
        }
        let wantedStates = Set(req.statesFilter.map { $0.lowercased() })
        let wantedTypes = Set(req.typesFilter.map { $0.lowercased() })
        let (loading, groups) = coordinator.listGroups(states: r.version >= 4 && !wantedStates.isEmpty ? wantedStates : nil,
                                                       types: r.version >= 5 && !wantedTypes.isEmpty ? wantedTypes : nil)
        resp.errorCode = loading ? GroupErrorCode.coordinatorLoadInProgress : GroupErrorCode.none
        resp.groups = groups.map { g in
            var out = ListGroupsResponse.ListedGroup()
            out.groupId = g.groupId
            out.protocolType = g.protocolType
            out.groupState = g.state
            out.groupType = g.groupType
            return out
        }
        return r.succeed(resp)
    }

    func describeGroups(_ req: DescribeGroupsRequest, _ r: Request) -> EventLoopFuture<DescribeGroupsResponse?> {
        var resp = DescribeGroupsResponse()
        resp.groups = req.groups.map { id in
            var out = DescribeGroupsResponse.DescribedGroup()
            out.groupId = id
            guard let coordinator = groupCoordinator else {
                out.errorCode = GroupErrorCode.coordinatorNotAvailable
                return out
            }
            let d = coordinator.describe(id)
            out.errorCode = d.error
            // authorizedOperations: the gate's (Broker+Authorization.swift).
            out.groupState = d.state.rawValue
            out.protocolType = d.protocolType
            out.protocolData = d.protocolName
            out.members = d.members.map { m in
                var om = DescribeGroupsResponse.DescribedGroupMember()
                om.memberId = m.memberId
                om.groupInstanceId = m.groupInstanceId
                om.clientId = m.clientId
                om.clientHost = m.clientHost
                om.memberMetadata = m.metadata
                om.memberAssignment = m.assignment
                return om
            }
            return out
        }
        return r.succeed(resp)
    }

    func deleteGroups(_ req: DeleteGroupsRequest, _ r: Request) -> EventLoopFuture<DeleteGroupsResponse?> {
        let futures = req.groupsNames.map { id -> EventLoopFuture<DeleteGroupsResponse.DeletableGroupResult> in
            var out = DeleteGroupsResponse.DeletableGroupResult()
            out.groupId = id
            guard let coordinator = groupCoordinator else {
                out.errorCode = GroupErrorCode.coordinatorNotAvailable
                return r.eventLoop.makeSucceededFuture(out)
            }
            let promise = r.eventLoop.makePromise(of: DeleteGroupsResponse.DeletableGroupResult.self)
            let template = out
            coordinator.deleteGroup(id) { code in
                var result = template
                result.errorCode = code
                promise.succeed(result)
            }
            return promise.futureResult
        }
        return EventLoopFuture.whenAllSucceed(futures, on: r.eventLoop).map { results in
            var resp = DeleteGroupsResponse()
            resp.results = results
            return resp
        }
    }
}

extension Broker {
    /// OffsetFetch v0-1 have no group-level error: each requested partition carries `error`
    /// (no offset, empty metadata).
    static func offsetFetchV0Topics(_ requested: [(name: String, partitions: [Int32])],
                                    error: Int16) -> [OffsetFetchResponse.OffsetFetchResponseTopic] {
        requested.map { t in
            var ot = OffsetFetchResponse.OffsetFetchResponseTopic()
            ot.name = t.name
            ot.partitions = t.partitions.map { p in
                var op = OffsetFetchResponse.OffsetFetchResponsePartition()
                op.partitionIndex = p
                op.committedOffset = -1
                op.metadata = ""
                op.errorCode = error
                return op
            }
            return ot
        }
    }
}
