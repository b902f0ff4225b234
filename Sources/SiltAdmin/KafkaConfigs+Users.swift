import Foundation
import SiltNet
import SiltProtocol

/// kafka-configs.sh for users (SCRAM credentials, KIP-554) and groups (KIP-848's GROUP
/// config resource), with Kafka 4.x's output:
///
///     --entity-type users --describe      SCRAM credential configs for user-principal 'alice' are SCRAM-SHA-256=iterations=8192
///     --entity-type users --alter --add-config 'SCRAM-SHA-256=[iterations=8192,password=alice-secret]' --entity-name alice
///     --entity-type users --alter --delete-config SCRAM-SHA-256 --entity-name alice
///     --entity-type groups --describe     Dynamic configs for group g are:  (then one line per config)
///
/// A SCRAM password never leaves this process: as Kafka's admin client does, the tool draws
/// a random salt and sends Hi(password, salt, iterations) (RFC 5802's salted password, PBKDF2),
/// from which the controller keeps StoredKey and ServerKey. Silt has no user or client quotas:
/// their keys are refused, by name.
extension KafkaConfigs {
    /// Kafka's user and client quota keys (`QuotaConfig`): Silt has no quotas.
    static let quotaKeys: Set<String> = ["producer_byte_rate", "consumer_byte_rate", "request_percentage",
                                         "controller_mutation_rate"]

    /// Kafka's checks of an alter of a user's configs: SCRAM mechanisms only (quotas are
    /// refused by Silt), and the credentials parse.
    static func checkUserAlter(add: [(String, String)], delete: [String]) throws {
        for key in add.map(\.0) + delete where ScramMechanism(mechanismName: key) == nil {
            if quotaKeys.contains(key) {
                throw AdminSession.Failure("\(key) is not supported: Silt has no user quotas yet (SCRAM credentials are: "
                    + "SCRAM-SHA-256, SCRAM-SHA-512)")
            }
        }
        let unknownAdd = add.map(\.0).filter { ScramMechanism(mechanismName: $0) == nil }
        if !unknownAdd.isEmpty {
            throw AdminSession.Failure("Only quota and SCRAM credential configs can be added for 'users' using "
                + "--bootstrap-server. Unexpected config names: \(unknownAdd.joined(separator: ","))")
        }
        let unknownDelete = delete.filter { ScramMechanism(mechanismName: $0) == nil }
        if !unknownDelete.isEmpty {
            throw AdminSession.Failure("Only quota and SCRAM credential configs can be deleted for 'users' using "
                + "--bootstrap-server. Unexpected config names: \(unknownDelete.joined(separator: ","))")
        }
        for (key, value) in add { _ = try parseScramCredential(ScramMechanism(mechanismName: key)!, value) }
    }

    /// Kafka's form of a credential, `[iterations=N,]password=P` (the brackets already
    /// dropped): N defaults to 4096 (also for -1) and must be within 4096...16384.
    public static func parseScramCredential(_ m: ScramMechanism, _ text: String) throws -> (iterations: Int32, password: String) {
        var rest = Substring(text)
        var iterations = ScramMechanism.iterationsDefault
        let invalid = AdminSession.Failure("Invalid credential property \(m.mechanismName)=\(text)")
        if rest.hasPrefix("iterations="), let comma = rest.firstIndex(of: ",") {
            let n = rest[rest.index(rest.startIndex, offsetBy: "iterations=".count)..<comma]
            // Kafka's pattern: -?[0-9]*, then Integer.parseInt (which fails on "" and "-").
            let digits = n.hasPrefix("-") ? n.dropFirst() : n
            guard digits.allSatisfy({ ("0"..."9").contains($0) }), let value = Int32(n) else { throw invalid }
            if value != -1 { iterations = value }
            rest = rest[rest.index(after: comma)...]
        }
        guard rest.hasPrefix("password=") else { throw invalid }
        if iterations < ScramMechanism.iterationsMin {
            throw AdminSession.Failure("Iterations \(iterations) is less than the minimum \(ScramMechanism.iterationsMin) "
                + "required for \(m.mechanismName)")
        }
        // The broker refuses more (Kafka's bound); checked here before the tool spends minutes
        // salting a password with up to 2^31 PBKDF2 rounds only to be refused.
        if iterations > ScramMechanism.iterationsMax {
            throw AdminSession.Failure("Iterations \(iterations) is more than the maximum \(ScramMechanism.iterationsMax) "
                + "allowed for \(m.mechanismName)")
        }
        return (iterations, String(rest.dropFirst("password=".count)))
    }

    /// The AlterUserScramCredentials of one user: deletions, then upsertions salted with
    /// `salt()` (one fresh salt each), as Kafka's tool sends them.
    public static func scramRequest(user: String, add: [(String, String)], delete: [String],
                                    salt: () -> [UInt8] = Scram.randomSalt) throws -> AlterUserScramCredentialsRequest {
        var req = AlterUserScramCredentialsRequest()
        req.deletions = delete.map { name in
            var d = AlterUserScramCredentialsRequest.ScramCredentialDeletion()
            d.name = user
            d.mechanism = ScramMechanism(mechanismName: name)!.rawValue
            return d
        }
        req.upsertions = try add.map { name, value in
            let m = ScramMechanism(mechanismName: name)!
            let (iterations, password) = try parseScramCredential(m, value)
            var u = AlterUserScramCredentialsRequest.ScramCredentialUpsertion()
            u.name = user
            u.mechanism = m.rawValue
            u.iterations = iterations
            u.salt = salt()
            u.saltedPassword = Scram.saltedPassword(m, password: Array(password.utf8), salt: u.salt, iterations: iterations)
            return u
        }
        return req
    }

    /// The lines of `--describe --entity-type users`: one per user with credentials (a user
    /// without any prints nothing, as Kafka's tool skips RESOURCE_NOT_FOUND).
    public static func scramLines(_ resp: DescribeUserScramCredentialsResponse) -> String {
        var out = ""
        for r in resp.results where r.errorCode != KafkaErrorCode.resourceNotFound {
            if r.errorCode != 0 {
                out += "Error retrieving SCRAM credential configs for user-principal '\(r.user)': "
                    + "\(KafkaErrorCode.name(r.errorCode)): \(r.errorMessage ?? "")\n"
                continue
            }
            let infos = r.credentialInfos.map { info in
                "\(ScramMechanism(rawValue: info.mechanism)?.mechanismName ?? "UNKNOWN")=iterations=\(info.iterations)"
            }
            out += "SCRAM credential configs for user-principal '\(r.user)' are \(infos.joined(separator: ", "))\n"
        }
        return out
    }

    static func describeUsers(_ entity: Entity, _ s: AdminSession, out: (String) -> Void) throws {
        var req = DescribeUserScramCredentialsRequest()
        switch entity {
        case .named(let n):
            var u = DescribeUserScramCredentialsRequest.UserName()
            u.name = n
            req.users = [u]
        case .all, .brokerDefault:
            req.users = nil
        }
        let resp = try s.send(req)
        if resp.errorCode != 0 {
            throw AdminSession.Failure("\(KafkaErrorCode.name(resp.errorCode)): \(KafkaTopics.reason(resp.errorCode, resp.errorMessage))")
        }
        out(scramLines(resp))
    }

    static func alterUser(_ user: String, add: [(String, String)], delete: [String], _ s: AdminSession) throws {
        let resp = try s.send(try scramRequest(user: user, add: add, delete: delete))
        for r in resp.results where r.errorCode != 0 {
            throw AdminSession.Failure("\(KafkaErrorCode.name(r.errorCode)): \(KafkaTopics.reason(r.errorCode, r.errorMessage))")
        }
    }

    /// Every group the cluster knows (ListGroups, any type and state), sorted.
    static func existingGroups(_ s: AdminSession) throws -> [String] {
        let resp = try s.send(ListGroupsRequest())
        guard resp.errorCode == 0 else {
            throw AdminSession.Failure("ListGroups failed with \(KafkaErrorCode.name(resp.errorCode))")
        }
        return resp.groups.map(\.groupId).sorted()
    }

    /// Whether group `name` has a dynamic config (Kafka 4.1 lists those with
    /// ListConfigResources, which Silt does not serve: DescribeConfigs tells the same for one group).
    static func groupHasDynamicConfig(_ name: String, _ s: AdminSession) throws -> Bool {
        let resp = try s.send(describeRequest(.groups, [name], synonyms: false))
        guard let result = resp.results.first, result.errorCode == 0 else { return false }
        return result.configs.contains { $0.configSource == dynamicSource(.groups, name) }
    }
}
