/// KIP-848's server-side assignors, named as Kafka names them (`group.consumer.assignors`:
/// uniform first, the default; range). Pure functions of the members' subscriptions, the
/// topics' partition counts and the previous target, so they are deterministic and tested
/// on their own.
public enum ConsumerAssignors {
    public enum Name: String, CaseIterable, Sendable {
        case uniform, range
    }
    public static let defaultName = Name.uniform.rawValue

    typealias Subscription = (memberId: String, topics: Set<String>)

    static func assign(_ name: Name, members: [Subscription], partitions: [String: Int32],
                       previous: [String: Set<TopicPartition>]) -> [String: Set<TopicPartition>] {
        let sorted = members.sorted { $0.memberId < $1.memberId }
        switch name {
        case .uniform: return uniform(sorted, partitions: partitions, previous: previous)
        case .range: return range(sorted, partitions: partitions)
        }
    }

    /// Range: for each topic, its subscribers in member id order get contiguous ranges, the
    /// first `count % subscribers` one partition more (Kafka's RangeAssignor split).
    static func range(_ members: [Subscription], partitions: [String: Int32]) -> [String: Set<TopicPartition>] {
        var out: [String: Set<TopicPartition>] = Dictionary(uniqueKeysWithValues: members.map { ($0.memberId, []) })
        for (topic, count) in partitions.sorted(by: { $0.key < $1.key }) {
            let subscribers = members.filter { $0.topics.contains(topic) }.map(\.memberId)
            guard !subscribers.isEmpty, count > 0 else { continue }
            let (each, extra) = (Int(count) / subscribers.count, Int(count) % subscribers.count)
            var next: Int32 = 0
            for (i, id) in subscribers.enumerated() {
                let n = each + (i < extra ? 1 : 0)
                for p in next..<(next + Int32(n)) { out[id]!.insert(TopicPartition(topic, p)) }
                next += Int32(n)
            }
        }
        return out
    }

    /// Uniform: balanced and sticky. Each member keeps what it had (up to its fair share),
    /// the rest goes to the least loaded subscriber, then partitions move from the most to
    /// the least loaded subscriber of their topic until no such move narrows the gap.
    static func uniform(_ members: [Subscription], partitions: [String: Int32],
                        previous: [String: Set<TopicPartition>]) -> [String: Set<TopicPartition>] {
        var out: [String: Set<TopicPartition>] = Dictionary(uniqueKeysWithValues: members.map { ($0.memberId, []) })
        let all = partitions.sorted { $0.key < $1.key }.flatMap { t, n in (0..<max(n, 0)).map { TopicPartition(t, $0) } }
        let subscribersOf = Dictionary(uniqueKeysWithValues: partitions.keys.map { t in
            (t, members.filter { $0.topics.contains(t) }.map(\.memberId))
        })
        // A member's fair share: its subscribed partitions spread over the members sharing them.
        let share: [String: Int] = Dictionary(uniqueKeysWithValues: members.map { m in
            let mine = all.filter { m.topics.contains($0.topic) }
            let sharers = Set(mine.flatMap { subscribersOf[$0.topic] ?? [] }).count
            return (m.memberId, sharers == 0 ? 0 : (mine.count + sharers - 1) / sharers)
        })
        var free: [TopicPartition] = []
        for tp in all {
            let eligible = subscribersOf[tp.topic] ?? []
            guard !eligible.isEmpty else { continue }
            if let keeper = eligible.first(where: { previous[$0]?.contains(tp) == true }), out[keeper]!.count < share[keeper]! {
                out[keeper]!.insert(tp)
            } else {
                free.append(tp)
            }
        }
        func leastLoaded(_ ids: [String]) -> String? {
            ids.min { (out[$0]!.count, $0) < (out[$1]!.count, $1) }
        }
        for tp in free { out[leastLoaded(subscribersOf[tp.topic]!)!]!.insert(tp) }
        // Balance: bounded by the partition count (each move narrows a gap of 2 or more).
        for _ in 0..<all.count {
            var moved = false
            for donor in out.keys.sorted(by: { (out[$0]!.count, $0) > (out[$1]!.count, $1) }) {
                for tp in out[donor]!.sorted() {
                    guard let taker = leastLoaded(subscribersOf[tp.topic]!), out[donor]!.count - out[taker]!.count > 1 else { continue }
                    out[donor]!.remove(tp)
                    out[taker]!.insert(tp)
                    moved = true
                    break
                }
                if moved { break }
            }
            if !moved { break }
        }
        return out
    }
}
