import Foundation
import NIOCore
import SiltAuthorizer
import SiltMetadata
import SiltProtocol

/// Authorization: the one place where a request's resources meet the ACLs.
///
/// Every request passes `gate` (called by `serve`) before its handler. The gate looks up
/// the API's rule (the `switch` below: one case per API the broker serves, and a request
/// without a rule stops the broker, so a new API cannot skip authorization) and either
///
/// - answers the request itself (`.answer`): the whole request is about one resource that
///   the caller may not use (JoinGroup of a denied group, CreateAcls without ALTER on the
///   cluster), or every resource it names is denied; or
/// - hands the handler the request without its denied resources, and adds their errors to
///   the handler's answer (`.proceed(request, finish)`); `finish` also removes what the
///   caller may not see from listings (all-topics Metadata, ListGroups, OffsetFetch of all
///   topics) and fills in the authorized-operations bitfields.
///
/// Handlers therefore never check ACLs, and a denied resource never reaches a handler that
/// changes something. The operations each API needs are Kafka's (KafkaApis, Kafka 4.0):
///
/// | API | resource: operation (error when denied) |
/// |---|---|
/// | Metadata | topic: DESCRIBE; auto-create: CREATE on the cluster or the topic (TOPIC_AUTHORIZATION_FAILED); all-topics listings leave denied topics out |
/// | Produce | topic: WRITE; transactional id: WRITE |
/// | Fetch, OffsetCommit (topics), OffsetDelete (topics), DescribeProducers | topic: READ |
/// | ListOffsets, OffsetForLeaderEpoch, OffsetFetch (topics) | topic: DESCRIBE |
/// | CreateTopics | cluster or topic: CREATE |
/// | DeleteTopics, DeleteRecords | topic: DELETE |
/// | CreatePartitions | topic: ALTER |
/// | DescribeConfigs / (Incremental)AlterConfigs | topic, cluster (broker) or group: DESCRIBE_CONFIGS / ALTER_CONFIGS |
/// | JoinGroup, SyncGroup, Heartbeat, LeaveGroup, OffsetCommit, ConsumerGroupHeartbeat | group: READ (GROUP_AUTHORIZATION_FAILED) |
/// | OffsetFetch, DescribeGroups, ConsumerGroupDescribe, FindCoordinator | group: DESCRIBE |
/// | DeleteGroups, OffsetDelete | group: DELETE |
/// | ListGroups | cluster: DESCRIBE, else only the groups with DESCRIBE |
/// | InitProducerId | transactional id: WRITE; idempotent: cluster IDEMPOTENT_WRITE or WRITE on some topic (CLUSTER_AUTHORIZATION_FAILED) |
/// | DescribeAcls, DescribeLogDirs, DescribeQuorum, ListPartitionReassignments, DescribeUserScramCredentials | cluster: DESCRIBE (CLUSTER_AUTHORIZATION_FAILED) |
/// | CreateAcls, DeleteAcls, ElectLeaders, AlterPartitionReassignments, UnregisterBroker, AlterUserScramCredentials | cluster: ALTER |
/// | ApiVersions, DescribeCluster | none (DescribeCluster's authorized operations only) |
///
/// Without an authorizer (`authorizer.class.name` unset) the gate lets everything through
/// untouched, except that it fills the authorized-operations fields (every operation).
extension Broker {
    /// What the gate decided for one request.
    enum Gate<R: KafkaRequest> {
        /// Run the handler on this request (the denied parts removed), then `finish` its answer.
        case proceed(R, finish: (R.Response) -> R.Response)
        /// Answer without running the handler (nil: no answer is due, acks=0).
        case answer(R.Response?)
    }

    /// The APIs whose answers carry authorized-operations fields: the gate runs for them
    /// even without an authorizer.
    static let authorizedOperationsApis: Set<Int16> = [
        MetadataRequest.apiKey, DescribeClusterRequest.apiKey, DescribeGroupsRequest.apiKey,
        ConsumerGroupDescribeRequest.apiKey,
    ]

    /// The caller and the ACLs of the moment, for one request.
    struct AclCheck {
        let authorizer: Authorizer
        let who: AclRequester
        func allows(_ op: KafkaAclOperation, _ type: AclResourceType, _ name: String) -> Bool {
            authorizer.authorize(who, op, type, name)
        }
        func topic(_ op: KafkaAclOperation, _ name: String) -> Bool { allows(op, .topic, name) }
        func group(_ op: KafkaAclOperation, _ name: String) -> Bool { allows(op, .group, name) }
        func cluster(_ op: KafkaAclOperation) -> Bool { allows(op, .cluster, AclBinding.clusterName) }
        func operations(_ resource: KafkaAclOperation.Resource, _ name: String) -> Int32 {
            authorizer.authorizedOperations(who, resource, name: name)
        }
    }

    /// The principal and host of a request: PLAINTEXT connections are `User:ANONYMOUS`; the
    /// host is the client's IP address without Kafka's leading "/".
    static func requester(_ r: Request) -> AclRequester {
        var host = r.context.clientHost
        if host.hasPrefix("/") { host.removeFirst() }
        return AclRequester(principal: r.context.principal, host: host)
    }

    /// The authorization rule of every API (see the table above).
    func gate<R: KafkaRequest>(_ req: R, _ r: Request) -> Gate<R> {
        // The settings never change: without an authorizer most requests pass untouched, lock-free.
        guard authorizerSettings.enabled || Broker.authorizedOperationsApis.contains(R.apiKey) else {
            return .proceed(req, finish: { $0 })
        }
        let c = AclCheck(authorizer: currentAuthorizer, who: Broker.requester(r))
        switch req {
        case is ApiVersionsRequest: return .proceed(req, finish: { $0 })
        case let q as MetadataRequest: return Broker.cast(gateMetadata(q, r, c))
        case let q as DescribeClusterRequest:
            return Broker.cast(Gate<DescribeClusterRequest>.proceed(q, finish: { resp in
                var resp = resp
                if q.includeClusterAuthorizedOperations { resp.clusterAuthorizedOperations = c.operations(.cluster, AclBinding.clusterName) }
                return resp
            }))
        case let q as ProduceRequest: return Broker.cast(gateProduce(q, r, c))
        case let q as FetchRequest: return Broker.cast(gateFetch(q, r, c))
        case let q as ListOffsetsRequest: return Broker.cast(gateListOffsets(q, c))
        case let q as OffsetForLeaderEpochRequest: return Broker.cast(gateOffsetForLeaderEpoch(q, c))
        case let q as CreateTopicsRequest: return Broker.cast(gateCreateTopics(q, c))
        case let q as DeleteTopicsRequest: return Broker.cast(gateDeleteTopics(q, r, c))
        case let q as CreatePartitionsRequest: return Broker.cast(gateCreatePartitions(q, c))
        case let q as DeleteRecordsRequest: return Broker.cast(gateDeleteRecords(q, c))
        case let q as DescribeProducersRequest: return Broker.cast(gateDescribeProducers(q, c))
        case let q as DescribeConfigsRequest: return Broker.cast(gateDescribeConfigs(q, c))
        case let q as AlterConfigsRequest: return Broker.cast(gateAlterConfigs(q, c))
        case let q as IncrementalAlterConfigsRequest: return Broker.cast(gateIncrementalAlterConfigs(q, c))
        case let q as InitProducerIdRequest: return Broker.cast(gateInitProducerId(q, c))
        case let q as FindCoordinatorRequest: return Broker.cast(gateFindCoordinator(q, r, c))
        case let q as JoinGroupRequest:
            return Broker.cast(groupGate(q, group: q.groupId, .read, c) {
                var resp = JoinGroupResponse(); resp.errorCode = $0; resp.generationId = -1; resp.memberId = ""; resp.leader = ""
                resp.protocolName = nil; return resp
            })
        case let q as SyncGroupRequest:
            return Broker.cast(groupGate(q, group: q.groupId, .read, c) {
                var resp = SyncGroupResponse(); resp.errorCode = $0; resp.protocolType = nil; resp.protocolName = nil; return resp
            })
        case let q as HeartbeatRequest:
            return Broker.cast(groupGate(q, group: q.groupId, .read, c) { var resp = HeartbeatResponse(); resp.errorCode = $0; return resp })
        case let q as LeaveGroupRequest:
            return Broker.cast(groupGate(q, group: q.groupId, .read, c) { var resp = LeaveGroupResponse(); resp.errorCode = $0; return resp })
        case let q as OffsetCommitRequest: return Broker.cast(gateOffsetCommit(q, c))
        case let q as OffsetFetchRequest: return Broker.cast(gateOffsetFetch(q, r, c))
        case let q as OffsetDeleteRequest: return Broker.cast(gateOffsetDelete(q, c))
        case let q as ListGroupsRequest:
            return Broker.cast(Gate<ListGroupsRequest>.proceed(q, finish: { resp in
                guard !c.cluster(.describe) else { return resp }
                var resp = resp
                resp.groups = resp.groups.filter { c.group(.describe, $0.groupId) }
                return resp
            }))
        case let q as DescribeGroupsRequest: return Broker.cast(gateDescribeGroups(q, r, c))
        case let q as DeleteGroupsRequest: return Broker.cast(gateDeleteGroups(q, c))
        case let q as ConsumerGroupHeartbeatRequest: return Broker.cast(gateConsumerGroupHeartbeat(q, c))
        case let q as ConsumerGroupDescribeRequest: return Broker.cast(gateConsumerGroupDescribe(q, c))
        case let q as CreateAclsRequest:
            return Broker.cast(clusterGate(q, .alter, c) { code in
                var resp = CreateAclsResponse()
                resp.results = q.creations.map { _ in
                    var out = CreateAclsResponse.AclCreationResult(); out.errorCode = code; out.errorMessage = nil; return out
                }
                return resp
            })
        case let q as DeleteAclsRequest:
            return Broker.cast(clusterGate(q, .alter, c) { code in
                var resp = DeleteAclsResponse()
                resp.filterResults = q.filters.map { _ in
                    var out = DeleteAclsResponse.DeleteAclsFilterResult(); out.errorCode = code; out.errorMessage = nil; return out
                }
                return resp
            })
        case let q as DescribeAclsRequest:
            return Broker.cast(clusterGate(q, .describe, c) { var resp = DescribeAclsResponse(); resp.errorCode = $0; resp.errorMessage = nil; return resp })
        case let q as DescribeLogDirsRequest:
            return Broker.cast(clusterGate(q, .describe, c) { var resp = DescribeLogDirsResponse(); resp.errorCode = $0; return resp })
        case let q as DescribeQuorumRequest:
            return Broker.cast(clusterGate(q, .describe, c) { var resp = DescribeQuorumResponse(); resp.errorCode = $0; resp.errorMessage = nil; return resp })
        case let q as ListPartitionReassignmentsRequest:
            return Broker.cast(clusterGate(q, .describe, c) {
                var resp = ListPartitionReassignmentsResponse(); resp.errorCode = $0; resp.errorMessage = nil; return resp
            })
        case let q as ElectLeadersRequest:
            return Broker.cast(clusterGate(q, .alter, c) { var resp = ElectLeadersResponse(); resp.errorCode = $0; return resp })
        case let q as AlterPartitionReassignmentsRequest:
            return Broker.cast(clusterGate(q, .alter, c) {
                var resp = AlterPartitionReassignmentsResponse(); resp.errorCode = $0; resp.errorMessage = nil; return resp
            })
        case let q as DescribeUserScramCredentialsRequest:
            return Broker.cast(clusterGate(q, .describe, c) {
                var resp = DescribeUserScramCredentialsResponse(); resp.errorCode = $0; resp.errorMessage = nil; return resp
            })
        case let q as AlterUserScramCredentialsRequest:
            return Broker.cast(clusterGate(q, .alter, c) { code in
                // One result per user named (Kafka's AlterUserScramCredentials without ALTER on the cluster).
                var users: [String] = []
                for u in q.upsertions.map(\.name) + q.deletions.map(\.name) where !users.contains(u) { users.append(u) }
                var resp = AlterUserScramCredentialsResponse()
                resp.results = users.map { u in
                    var r = AlterUserScramCredentialsResponse.AlterUserScramCredentialsResult()
                    r.user = u; r.errorCode = code; r.errorMessage = nil; return r
                }
                return resp
            })
        case let q as UnregisterBrokerRequest:
            return Broker.cast(clusterGate(q, .alter, c) { var resp = UnregisterBrokerResponse(); resp.errorCode = $0; resp.errorMessage = nil; return resp })
        default:
            preconditionFailure("api key \(R.apiKey) (\(R.self)) has no authorization rule in Broker.gate")
        }
    }

    /// A gate of one concrete request type, as the gate of the generic `R` it is.
    static func cast<Q: KafkaRequest, R: KafkaRequest>(_ g: Gate<Q>) -> Gate<R> {
        switch g {
        case .proceed(let q, let finish):
            return .proceed(q as! R, finish: { finish($0 as! Q.Response) as! R.Response })
        case .answer(let resp):
            return .answer(resp.map { $0 as! R.Response })
        }
    }

    /// A request about one group: `op` on it, or the answer `denied(GROUP_AUTHORIZATION_FAILED)`.
    func groupGate<Q: KafkaRequest>(_ q: Q, group: String, _ op: KafkaAclOperation, _ c: AclCheck,
                                    denied: (Int16) -> Q.Response) -> Gate<Q> {
        c.group(op, group) ? .proceed(q, finish: { $0 }) : .answer(denied(KafkaErrorCode.groupAuthorizationFailed))
    }

    /// A request about the cluster: `op` on it, or the answer `denied(CLUSTER_AUTHORIZATION_FAILED)`.
    func clusterGate<Q: KafkaRequest>(_ q: Q, _ op: KafkaAclOperation, _ c: AclCheck,
                                      denied: (Int16) -> Q.Response) -> Gate<Q> {
        c.cluster(op) ? .proceed(q, finish: { $0 }) : .answer(denied(KafkaErrorCode.clusterAuthorizationFailed))
    }

    /// Splits `items` into those `allowed` keeps and the others, each in request order.
    static func split<T>(_ items: [T], _ allowed: (T) -> Bool) -> (kept: [T], denied: [T]) {
        var kept: [T] = [], denied: [T] = []
        for i in items { if allowed(i) { kept.append(i) } else { denied.append(i) } }
        return (kept, denied)
    }

    static var topicDenied: Int16 { KafkaErrorCode.topicAuthorizationFailed }

    // MARK: Topics

    func gateMetadata(_ req: MetadataRequest, _ r: Request, _ c: AclCheck) -> Gate<MetadataRequest> {
        let image = metadata.image
        let wantsAll = req.topics == nil || (r.version == 0 && req.topics!.isEmpty)
        var kept = req
        var denied: [MetadataResponse.MetadataResponseTopic] = []
        if !wantsAll && c.authorizer.enabled {
            let autoCreate = config.autoCreateTopics && (r.version < 4 || req.allowAutoTopicCreation)
            let mayCreateAll = autoCreate && c.cluster(.create)
            var topics: [MetadataRequest.MetadataRequestTopic] = []
            for t in req.topics! {
                let byId = r.version >= 10 && t.topicId != .zero && t.name == nil
                guard let name = byId ? image.topic(id: t.topicId.foundation)?.name : t.name else {
                    topics.append(t)   // an unknown id or no name: the handler answers
                    continue
                }
                var ok = c.topic(.describe, name)
                if ok && autoCreate && !byId && image.topic(named: name) == nil && !mayCreateAll && !c.topic(.create, name) {
                    ok = false   // Kafka: a topic the caller may not create is TOPIC_AUTHORIZATION_FAILED
                }
                if ok {
                    topics.append(t)
                } else {
                    var out = MetadataResponse.MetadataResponseTopic()
                    // Asked by id: the answer names no topic the caller may not see (as Kafka).
                    out.name = byId ? nil : name
                    out.topicId = byId ? t.topicId : .zero
                    out.errorCode = Broker.topicDenied
                    out.isInternal = name == Broker.offsetsTopic
                    denied.append(out)
                }
            }
            kept.topics = topics
            if topics.isEmpty && r.version == 0 {
                // v0 reads an empty list as "all topics": answer without the handler.
                var resp = metadataSkeleton(r, image)
                resp.topics = denied
                return .answer(resp)
            }
        }
        return .proceed(kept, finish: { resp in
            var resp = resp
            if wantsAll && c.authorizer.enabled { resp.topics = resp.topics.filter { c.topic(.describe, $0.name ?? "") } }
            resp.topics += denied
            if req.includeTopicAuthorizedOperations {
                let now = self.metadata.image   // auto-created topics included
                for i in resp.topics.indices where resp.topics[i].errorCode != Broker.topicDenied {
                    if let name = resp.topics[i].name, now.topic(named: name) != nil {
                        resp.topics[i].topicAuthorizedOperations = c.operations(.topic, name)
                    }
                }
            }
            if req.includeClusterAuthorizedOperations && (8...10).contains(r.version) {
                resp.clusterAuthorizedOperations = c.operations(.cluster, AclBinding.clusterName)
            }
            return resp
        })
    }

    func gateProduce(_ req: ProduceRequest, _ r: Request, _ c: AclCheck) -> Gate<ProduceRequest> {
        func answers(_ topics: [ProduceRequest.TopicProduceData], _ code: Int16) -> [ProduceResponse.TopicProduceResponse] {
            topics.map { t in
                var out = ProduceResponse.TopicProduceResponse()
                out.name = t.name
                out.partitionResponses = t.partitionData.map { p in
                    var pr = ProduceResponse.PartitionProduceResponse()
                    pr.index = p.index
                    pr.errorCode = code
                    pr.baseOffset = -1
                    pr.errorMessage = nil
                    return pr
                }
                return out
            }
        }
        if let tid = req.transactionalId, !c.allows(.write, .transactionalId, tid) {
            var resp = ProduceResponse()
            resp.responses = answers(req.topicData, KafkaErrorCode.transactionalIdAuthorizationFailed)
            return .answer(req.acks == 0 ? nil : resp)
        }
        let (kept, denied) = Broker.split(req.topicData) { c.topic(.write, $0.name) }
        guard !denied.isEmpty else { return .proceed(req, finish: { $0 }) }
        let deniedAnswers = answers(denied, Broker.topicDenied)
        if kept.isEmpty {
            var resp = ProduceResponse()
            resp.responses = deniedAnswers
            return .answer(req.acks == 0 ? nil : resp)
        }
        var q = req
        q.topicData = kept
        return .proceed(q, finish: { var resp = $0; resp.responses += deniedAnswers; return resp })
    }

    func gateFetch(_ req: FetchRequest, _ r: Request, _ c: AclCheck) -> Gate<FetchRequest> {
        let image = metadata.image
        let (kept, denied) = Broker.split(req.topics) { t in
            let name = r.version >= 13 ? image.topic(id: t.topicId.foundation)?.name : t.topic
            guard let name else { return true }   // an unknown id: the handler answers UNKNOWN_TOPIC_ID
            return c.topic(.read, name)
        }
        guard !denied.isEmpty else { return .proceed(req, finish: { $0 }) }
        let answers = denied.map { t in
            var out = FetchResponse.FetchableTopicResponse()
            out.topic = t.topic
            out.topicId = t.topicId
            out.partitions = t.partitions.map { p in
                var pd = FetchResponse.PartitionData()
                pd.partitionIndex = p.partition
                pd.errorCode = Broker.topicDenied
                pd.highWatermark = -1
                pd.lastStableOffset = -1
                pd.logStartOffset = -1
                pd.abortedTransactions = nil
                pd.records = ByteBuffer()   // empty, not null: clients read a size here
                return pd
            }
            return out
        }
        var q = req
        q.topics = kept
        return .proceed(q, finish: { var resp = $0; resp.responses += answers; return resp })
    }

    func gateListOffsets(_ req: ListOffsetsRequest, _ c: AclCheck) -> Gate<ListOffsetsRequest> {
        let (kept, denied) = Broker.split(req.topics) { c.topic(.describe, $0.name) }
        guard !denied.isEmpty else { return .proceed(req, finish: { $0 }) }
        let answers = denied.map { t in
            var out = ListOffsetsResponse.ListOffsetsTopicResponse()
            out.name = t.name
            out.partitions = t.partitions.map { p in
                var pr = ListOffsetsResponse.ListOffsetsPartitionResponse()
                pr.partitionIndex = p.partitionIndex
                pr.errorCode = Broker.topicDenied
                pr.timestamp = -1
                pr.offset = -1
                return pr
            }
            return out
        }
        var q = req
        q.topics = kept
        return .proceed(q, finish: { var resp = $0; resp.topics += answers; return resp })
    }

    func gateOffsetForLeaderEpoch(_ req: OffsetForLeaderEpochRequest, _ c: AclCheck) -> Gate<OffsetForLeaderEpochRequest> {
        let (kept, denied) = Broker.split(req.topics) { c.topic(.describe, $0.topic) }
        guard !denied.isEmpty else { return .proceed(req, finish: { $0 }) }
        let answers = denied.map { t in
            var out = OffsetForLeaderEpochResponse.OffsetForLeaderTopicResult()
            out.topic = t.topic
            out.partitions = t.partitions.map { p in
                var e = OffsetForLeaderEpochResponse.EpochEndOffset()
                e.partition = p.partition
                e.errorCode = Broker.topicDenied
                e.leaderEpoch = -1
                e.endOffset = -1
                return e
            }
            return out
        }
        var q = req
        q.topics = kept
        return .proceed(q, finish: { var resp = $0; resp.topics += answers; return resp })
    }

    func gateCreateTopics(_ req: CreateTopicsRequest, _ c: AclCheck) -> Gate<CreateTopicsRequest> {
        let clusterCreate = c.cluster(.create)
        let (kept, denied) = Broker.split(req.topics) { clusterCreate || c.topic(.create, $0.name) }
        guard !denied.isEmpty else { return .proceed(req, finish: { $0 }) }
        let answers = denied.map { t in
            var out = CreateTopicsResponse.CreatableTopicResult()
            out.name = t.name
            out.errorCode = Broker.topicDenied
            out.errorMessage = "Authorization failed."
            out.numPartitions = -1
            out.replicationFactor = -1
            out.configs = nil
            return out
        }
        if kept.isEmpty {
            var resp = CreateTopicsResponse()
            resp.topics = answers
            return .answer(resp)
        }
        var q = req
        q.topics = kept
        return .proceed(q, finish: { var resp = $0; resp.topics += answers; return resp })
    }

    func gateDeleteTopics(_ req: DeleteTopicsRequest, _ r: Request, _ c: AclCheck) -> Gate<DeleteTopicsRequest> {
        let image = metadata.image
        func allowed(_ name: String?, _ id: KafkaUUID) -> Bool {
            let resolved = name ?? (id != .zero ? image.topic(id: id.foundation)?.name : nil)
            guard let resolved else { return true }   // unknown: the handler answers
            return c.topic(.describe, resolved) && c.topic(.delete, resolved)
        }
        func answer(_ name: String?, _ id: KafkaUUID) -> DeleteTopicsResponse.DeletableTopicResult {
            var out = DeleteTopicsResponse.DeletableTopicResult()
            out.name = name
            out.topicId = id
            out.errorCode = Broker.topicDenied
            out.errorMessage = "Authorization failed."
            return out
        }
        var q = req
        let answers: [DeleteTopicsResponse.DeletableTopicResult]
        if r.version >= 6 {
            let (kept, denied) = Broker.split(req.topics) { allowed($0.name, $0.topicId) }
            q.topics = kept
            answers = denied.map { answer($0.name, $0.topicId) }
            if kept.isEmpty && !denied.isEmpty { var resp = DeleteTopicsResponse(); resp.responses = answers; return .answer(resp) }
        } else {
            let (kept, denied) = Broker.split(req.topicNames) { allowed($0, .zero) }
            q.topicNames = kept
            answers = denied.map { answer($0, .zero) }
            if kept.isEmpty && !denied.isEmpty { var resp = DeleteTopicsResponse(); resp.responses = answers; return .answer(resp) }
        }
        guard !answers.isEmpty else { return .proceed(req, finish: { $0 }) }
        return .proceed(q, finish: { var resp = $0; resp.responses += answers; return resp })
    }

    func gateCreatePartitions(_ req: CreatePartitionsRequest, _ c: AclCheck) -> Gate<CreatePartitionsRequest> {
        let (kept, denied) = Broker.split(req.topics) { c.topic(.alter, $0.name) }
        guard !denied.isEmpty else { return .proceed(req, finish: { $0 }) }
        let answers = denied.map { t in
            var out = CreatePartitionsResponse.CreatePartitionsTopicResult()
            out.name = t.name
            out.errorCode = Broker.topicDenied
            out.errorMessage = "Authorization failed."
            return out
        }
        if kept.isEmpty { var resp = CreatePartitionsResponse(); resp.results = answers; return .answer(resp) }
        var q = req
        q.topics = kept
        return .proceed(q, finish: { var resp = $0; resp.results += answers; return resp })
    }

    func gateDeleteRecords(_ req: DeleteRecordsRequest, _ c: AclCheck) -> Gate<DeleteRecordsRequest> {
        let (kept, denied) = Broker.split(req.topics) { c.topic(.delete, $0.name) }
        guard !denied.isEmpty else { return .proceed(req, finish: { $0 }) }
        let answers = denied.map { t in
            var out = DeleteRecordsResponse.DeleteRecordsTopicResult()
            out.name = t.name
            out.partitions = t.partitions.map { p in
                var pr = DeleteRecordsResponse.DeleteRecordsPartitionResult()
                pr.partitionIndex = p.partitionIndex
                pr.lowWatermark = -1
                pr.errorCode = Broker.topicDenied
                return pr
            }
            return out
        }
        if kept.isEmpty { var resp = DeleteRecordsResponse(); resp.topics = answers; return .answer(resp) }
        var q = req
        q.topics = kept
        return .proceed(q, finish: { var resp = $0; resp.topics += answers; return resp })
    }

    func gateDescribeProducers(_ req: DescribeProducersRequest, _ c: AclCheck) -> Gate<DescribeProducersRequest> {
        let (kept, denied) = Broker.split(req.topics) { c.topic(.read, $0.name) }
        guard !denied.isEmpty else { return .proceed(req, finish: { $0 }) }
        let answers = denied.map { t in
            var out = DescribeProducersResponse.TopicResponse()
            out.name = t.name
            out.partitions = t.partitionIndexes.map { p in
                var pr = DescribeProducersResponse.PartitionResponse()
                pr.partitionIndex = p
                pr.errorCode = Broker.topicDenied
                pr.errorMessage = nil
                return pr
            }
            return out
        }
        var q = req
        q.topics = kept
        return .proceed(q, finish: { var resp = $0; resp.topics += answers; return resp })
    }

    // MARK: Configs

    /// The check of a config resource (TOPIC 2, BROKER 4, GROUP 32) for `op`, or nil when it
    /// passes; other resource types pass (the handler refuses them).
    static func configDenial(_ type: Int8, _ name: String, _ op: KafkaAclOperation, _ c: AclCheck) -> Int16? {
        switch type {
        case 2: return c.topic(op, name) ? nil : KafkaErrorCode.topicAuthorizationFailed
        case 4: return c.cluster(op) ? nil : KafkaErrorCode.clusterAuthorizationFailed
        case 32: return c.group(op, name) ? nil : KafkaErrorCode.groupAuthorizationFailed
        default: return nil
        }
    }

    func gateDescribeConfigs(_ req: DescribeConfigsRequest, _ c: AclCheck) -> Gate<DescribeConfigsRequest> {
        let (kept, denied) = Broker.split(req.resources) { Broker.configDenial($0.resourceType, $0.resourceName, .describeConfigs, c) == nil }
        guard !denied.isEmpty else { return .proceed(req, finish: { $0 }) }
        let answers = denied.map { res in
            var out = DescribeConfigsResponse.DescribeConfigsResult()
            out.resourceType = res.resourceType
            out.resourceName = res.resourceName
            out.errorCode = Broker.configDenial(res.resourceType, res.resourceName, .describeConfigs, c)!
            out.errorMessage = "Authorization failed."
            return out
        }
        var q = req
        q.resources = kept
        return .proceed(q, finish: { var resp = $0; resp.results += answers; return resp })
    }

    func gateAlterConfigs(_ req: AlterConfigsRequest, _ c: AclCheck) -> Gate<AlterConfigsRequest> {
        let (kept, denied) = Broker.split(req.resources) { Broker.configDenial($0.resourceType, $0.resourceName, .alterConfigs, c) == nil }
        guard !denied.isEmpty else { return .proceed(req, finish: { $0 }) }
        let answers = denied.map { res in
            var out = AlterConfigsResponse.AlterConfigsResourceResponse()
            out.resourceType = res.resourceType
            out.resourceName = res.resourceName
            out.errorCode = Broker.configDenial(res.resourceType, res.resourceName, .alterConfigs, c)!
            out.errorMessage = "Authorization failed."
            return out
        }
        if kept.isEmpty { var resp = AlterConfigsResponse(); resp.responses = answers; return .answer(resp) }
        var q = req
        q.resources = kept
        return .proceed(q, finish: { var resp = $0; resp.responses += answers; return resp })
    }

    func gateIncrementalAlterConfigs(_ req: IncrementalAlterConfigsRequest, _ c: AclCheck) -> Gate<IncrementalAlterConfigsRequest> {
        let (kept, denied) = Broker.split(req.resources) { Broker.configDenial($0.resourceType, $0.resourceName, .alterConfigs, c) == nil }
        guard !denied.isEmpty else { return .proceed(req, finish: { $0 }) }
        let answers = denied.map { res in
            var out = IncrementalAlterConfigsResponse.AlterConfigsResourceResponse()
            out.resourceType = res.resourceType
            out.resourceName = res.resourceName
            out.errorCode = Broker.configDenial(res.resourceType, res.resourceName, .alterConfigs, c)!
            out.errorMessage = "Authorization failed."
            return out
        }
        if kept.isEmpty { var resp = IncrementalAlterConfigsResponse(); resp.responses = answers; return .answer(resp) }
        var q = req
        q.resources = kept
        return .proceed(q, finish: { var resp = $0; resp.responses += answers; return resp })
    }

    // MARK: Producers and coordinators

    func gateInitProducerId(_ req: InitProducerIdRequest, _ c: AclCheck) -> Gate<InitProducerIdRequest> {
        func denied(_ code: Int16) -> Gate<InitProducerIdRequest> {
            var resp = InitProducerIdResponse()
            resp.errorCode = code
            resp.producerId = -1
            resp.producerEpoch = -1
            return .answer(resp)
        }
        if let tid = req.transactionalId {
            return c.allows(.write, .transactionalId, tid) ? .proceed(req, finish: { $0 })
                : denied(KafkaErrorCode.transactionalIdAuthorizationFailed)
        }
        // Kafka 4 (KIP-679): an idempotent producer needs IDEMPOTENT_WRITE on the cluster or
        // WRITE on some topic.
        if c.cluster(.idempotentWrite) || c.authorizer.authorizeByResourceType(c.who, .write, .topic) {
            return .proceed(req, finish: { $0 })
        }
        return denied(KafkaErrorCode.clusterAuthorizationFailed)
    }

    func gateFindCoordinator(_ req: FindCoordinatorRequest, _ r: Request, _ c: AclCheck) -> Gate<FindCoordinatorRequest> {
        let keyType = r.version >= 1 ? req.keyType : Broker.coordinatorKeyGroup
        func denial(_ key: String) -> Int16? {
            switch keyType {
            case Broker.coordinatorKeyGroup: return c.group(.describe, key) ? nil : KafkaErrorCode.groupAuthorizationFailed
            case Broker.coordinatorKeyTransaction:
                return c.allows(.describe, .transactionalId, key) ? nil : KafkaErrorCode.transactionalIdAuthorizationFailed
            default: return nil
            }
        }
        return .proceed(req, finish: { resp in
            var resp = resp
            if r.version >= 4 {
                for i in resp.coordinators.indices {
                    guard let code = denial(resp.coordinators[i].key) else { continue }
                    resp.coordinators[i].errorCode = code
                    resp.coordinators[i].errorMessage = "Authorization failed."
                    (resp.coordinators[i].nodeId, resp.coordinators[i].host, resp.coordinators[i].port) = (-1, "", -1)
                }
            } else if let code = denial(req.key) {
                resp.errorCode = code
                resp.errorMessage = "Authorization failed."
                (resp.nodeId, resp.host, resp.port) = (-1, "", -1)
            }
            return resp
        })
    }

    // MARK: Groups

    func gateOffsetCommit(_ req: OffsetCommitRequest, _ c: AclCheck) -> Gate<OffsetCommitRequest> {
        func answers(_ topics: [OffsetCommitRequest.OffsetCommitRequestTopic], _ code: Int16) -> [OffsetCommitResponse.OffsetCommitResponseTopic] {
            topics.map { t in
                var out = OffsetCommitResponse.OffsetCommitResponseTopic()
                out.name = t.name
                out.partitions = t.partitions.map { p in
                    var pr = OffsetCommitResponse.OffsetCommitResponsePartition()
                    pr.partitionIndex = p.partitionIndex
                    pr.errorCode = code
                    return pr
                }
                return out
            }
        }
        guard c.group(.read, req.groupId) else {
            var resp = OffsetCommitResponse()
            resp.topics = answers(req.topics, KafkaErrorCode.groupAuthorizationFailed)
            return .answer(resp)
        }
        let (kept, denied) = Broker.split(req.topics) { c.topic(.read, $0.name) }
        guard !denied.isEmpty else { return .proceed(req, finish: { $0 }) }
        let deniedAnswers = answers(denied, Broker.topicDenied)
        if kept.isEmpty { var resp = OffsetCommitResponse(); resp.topics = deniedAnswers; return .answer(resp) }
        var q = req
        q.topics = kept
        return .proceed(q, finish: { var resp = $0; resp.topics += deniedAnswers; return resp })
    }

    func gateOffsetFetch(_ req: OffsetFetchRequest, _ r: Request, _ c: AclCheck) -> Gate<OffsetFetchRequest> {
        let groupDenied = KafkaErrorCode.groupAuthorizationFailed
        if r.version >= 8 {
            let (kept, denied) = Broker.split(req.groups) { c.group(.describe, $0.groupId) }
            let deniedAnswers = denied.map { g in
                var out = OffsetFetchResponse.OffsetFetchResponseGroup()
                out.groupId = g.groupId
                out.errorCode = groupDenied
                return out
            }
            let listed = Dictionary(req.groups.map { ($0.groupId, $0.topics != nil) }, uniquingKeysWith: { a, _ in a })
            var q = req
            q.groups = kept
            return .proceed(q, finish: { resp in
                var resp = resp
                for gi in resp.groups.indices {
                    if listed[resp.groups[gi].groupId] == true {
                        for ti in resp.groups[gi].topics.indices where !c.topic(.describe, resp.groups[gi].topics[ti].name) {
                            for pi in resp.groups[gi].topics[ti].partitions.indices {
                                resp.groups[gi].topics[ti].partitions[pi].errorCode = Broker.topicDenied
                                resp.groups[gi].topics[ti].partitions[pi].committedOffset = -1
                                resp.groups[gi].topics[ti].partitions[pi].metadata = ""
                            }
                        }
                    } else {
                        resp.groups[gi].topics = resp.groups[gi].topics.filter { c.topic(.describe, $0.name) }
                    }
                }
                resp.groups += deniedAnswers
                return resp
            })
        }
        guard c.group(.describe, req.groupId) else {
            var resp = OffsetFetchResponse()
            if r.version >= 2 {
                resp.errorCode = groupDenied
            } else {
                resp.topics = Broker.offsetFetchV0Topics((req.topics ?? []).map { ($0.name, $0.partitionIndexes) },
                                                         error: groupDenied)
            }
            return .answer(resp)
        }
        return .proceed(req, finish: { resp in
            var resp = resp
            if req.topics != nil {
                for ti in resp.topics.indices where !c.topic(.describe, resp.topics[ti].name) {
                    for pi in resp.topics[ti].partitions.indices {
                        resp.topics[ti].partitions[pi].errorCode = Broker.topicDenied
                        resp.topics[ti].partitions[pi].committedOffset = -1
                        resp.topics[ti].partitions[pi].metadata = ""
                    }
                }
            } else {
                resp.topics = resp.topics.filter { c.topic(.describe, $0.name) }
            }
            return resp
        })
    }

    func gateOffsetDelete(_ req: OffsetDeleteRequest, _ c: AclCheck) -> Gate<OffsetDeleteRequest> {
        guard c.group(.delete, req.groupId) else {
            var resp = OffsetDeleteResponse()
            resp.errorCode = KafkaErrorCode.groupAuthorizationFailed
            return .answer(resp)
        }
        let (kept, denied) = Broker.split(req.topics) { c.topic(.read, $0.name) }
        guard !denied.isEmpty else { return .proceed(req, finish: { $0 }) }
        let answers = denied.map { t in
            var out = OffsetDeleteResponse.OffsetDeleteResponseTopic()
            out.name = t.name
            out.partitions = t.partitions.map { p in
                var pr = OffsetDeleteResponse.OffsetDeleteResponsePartition()
                pr.partitionIndex = p.partitionIndex
                pr.errorCode = Broker.topicDenied
                return pr
            }
            return out
        }
        var q = req
        q.topics = kept
        return .proceed(q, finish: { var resp = $0; resp.topics += answers; return resp })
    }

    func gateDescribeGroups(_ req: DescribeGroupsRequest, _ r: Request, _ c: AclCheck) -> Gate<DescribeGroupsRequest> {
        let (kept, denied) = Broker.split(req.groups) { c.group(.describe, $0) }
        let answers = denied.map { g in
            var out = DescribeGroupsResponse.DescribedGroup()
            out.groupId = g
            out.errorCode = KafkaErrorCode.groupAuthorizationFailed
            return out
        }
        var q = req
        q.groups = kept
        return .proceed(q, finish: { resp in
            var resp = resp
            if r.version >= 3 && req.includeAuthorizedOperations {
                for i in resp.groups.indices where resp.groups[i].errorCode == 0 {
                    resp.groups[i].authorizedOperations = c.operations(.group, resp.groups[i].groupId)
                }
            }
            resp.groups += answers
            return resp
        })
    }

    func gateDeleteGroups(_ req: DeleteGroupsRequest, _ c: AclCheck) -> Gate<DeleteGroupsRequest> {
        let (kept, denied) = Broker.split(req.groupsNames) { c.group(.delete, $0) }
        guard !denied.isEmpty else { return .proceed(req, finish: { $0 }) }
        let answers = denied.map { g in
            var out = DeleteGroupsResponse.DeletableGroupResult()
            out.groupId = g
            out.errorCode = KafkaErrorCode.groupAuthorizationFailed
            return out
        }
        if kept.isEmpty { var resp = DeleteGroupsResponse(); resp.results = answers; return .answer(resp) }
        var q = req
        q.groupsNames = kept
        return .proceed(q, finish: { var resp = $0; resp.results += answers; return resp })
    }

    func gateConsumerGroupHeartbeat(_ req: ConsumerGroupHeartbeatRequest, _ c: AclCheck) -> Gate<ConsumerGroupHeartbeatRequest> {
        func denied(_ code: Int16, _ message: String?) -> Gate<ConsumerGroupHeartbeatRequest> {
            var resp = ConsumerGroupHeartbeatResponse()
            resp.errorCode = code
            resp.errorMessage = message
            resp.memberId = nil
            resp.assignment = nil
            return .answer(resp)
        }
        guard c.group(.read, req.groupId) else { return denied(KafkaErrorCode.groupAuthorizationFailed, nil) }
        let unauthorized = (req.subscribedTopicNames ?? []).filter { !c.topic(.describe, $0) }
        if !unauthorized.isEmpty {
            return denied(Broker.topicDenied, "The following topics are not authorized: \(unauthorized.sorted().joined(separator: ", ")).")
        }
        return .proceed(req, finish: { $0 })
    }

    /// The topics a KIP-848 subscription regex may match for the member whose heartbeat
    /// resolves it: those it may DESCRIBE (KAFKA-18813: Kafka resolves a regex with the ACLs of
    /// the member that triggered the refresh, and leaves the others out of the subscription).
    /// Every topic without an authorizer. Asked only for groups that have a regex.
    func regexResolvableTopics(_ image: MetadataImage, _ r: Request) -> [String] {
        let names = Array(image.topicsByName.keys)
        guard authorizerSettings.enabled else { return names }
        let c = AclCheck(authorizer: currentAuthorizer, who: Broker.requester(r))
        return names.filter { c.topic(.describe, $0) }
    }

    /// KAFKA-18813: a described group with a topic the caller may not DESCRIBE in a member's
    /// assignment or target assignment is answered TOPIC_AUTHORIZATION_FAILED, without its
    /// members (Kafka's message).
    static func hideGroupsWithUndescribableTopics(_ resp: inout ConsumerGroupDescribeResponse, _ c: AclCheck) {
        for i in resp.groups.indices where resp.groups[i].errorCode == 0 {
            var topics = Set<String>()
            for m in resp.groups[i].members {
                topics.formUnion(m.assignment.topicPartitions.map(\.topicName))
                topics.formUnion(m.targetAssignment.topicPartitions.map(\.topicName))
            }
            guard topics.contains(where: { !c.topic(.describe, $0) }) else { continue }
            var denied = ConsumerGroupDescribeResponse.DescribedGroup()
            denied.groupId = resp.groups[i].groupId
            denied.errorCode = KafkaErrorCode.topicAuthorizationFailed
            denied.errorMessage = "The group has described topic(s) that the client is not authorized to describe."
            resp.groups[i] = denied
        }
    }

    func gateConsumerGroupDescribe(_ req: ConsumerGroupDescribeRequest, _ c: AclCheck) -> Gate<ConsumerGroupDescribeRequest> {
        let (kept, denied) = Broker.split(req.groupIds) { c.group(.describe, $0) }
        let answers = denied.map { g in
            var out = ConsumerGroupDescribeResponse.DescribedGroup()
            out.groupId = g
            out.errorCode = KafkaErrorCode.groupAuthorizationFailed
            out.errorMessage = nil
            return out
        }
        var q = req
        q.groupIds = kept
        return .proceed(q, finish: { resp in
            var resp = resp
            if self.authorizerSettings.enabled { Broker.hideGroupsWithUndescribableTopics(&resp, c) }
            if req.includeAuthorizedOperations {
                for i in resp.groups.indices where resp.groups[i].errorCode == 0 {
                    resp.groups[i].authorizedOperations = c.operations(.group, resp.groups[i].groupId)
                }
            }
            resp.groups += answers
            return resp
        })
    }
}
