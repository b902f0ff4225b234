import Foundation
import NIOCore
import SiltMetadata
import SiltProtocol

/// SCRAM credentials (KIP-554). DescribeUserScramCredentials is answered from this broker's
/// metadata image (as Kafka's brokers answer it from theirs); AlterUserScramCredentials is
/// forwarded to the controller, which validates and commits, and answered once this broker's
/// copy shows the change (so a describe right after sees it). Only mechanisms and iteration
/// counts ever leave the node: never a salt or a key.
///
/// The credentials are stored for a SASL/SCRAM listener; Silt's listeners do not
/// authenticate yet (docs/scram.md).
extension Broker {
    static let controllerAlterUserScramCredentialsVersion: Int16 = 0

    /// Kafka's `ScramImage.describe`: no users (null or empty) lists every user with a
    /// credential; a user named twice is DUPLICATE_RESOURCE, a user without credentials
    /// RESOURCE_NOT_FOUND. Users in request order (every user sorted when none is named),
    /// credentials by mechanism code.
    func describeUserScramCredentials(_ req: DescribeUserScramCredentialsRequest, _ r: Request)
        -> EventLoopFuture<DescribeUserScramCredentialsResponse?>
    {
        r.succeed(Broker.describeScram(req, metadata.image.scramCredentials))
    }

    static func describeScram(_ req: DescribeUserScramCredentialsRequest,
                              _ credentials: [String: [ScramMechanism: ScramCredential]]) -> DescribeUserScramCredentialsResponse {
        var resp = DescribeUserScramCredentialsResponse()
        resp.errorMessage = nil
        let named = (req.users ?? []).map(\.name)
        var users: [String] = [], count: [String: Int] = [:]
        for u in named.isEmpty ? credentials.keys.sorted() : named {
            if count[u] == nil { users.append(u) }
            count[u, default: 0] += 1
        }
        resp.results = users.map { user in
            var out = DescribeUserScramCredentialsResponse.DescribeUserScramCredentialsResult()
            out.user = user
            out.errorMessage = nil
            if count[user]! > 1 {
                out.errorCode = KafkaErrorCode.duplicateResource
                out.errorMessage = "Cannot describe SCRAM credentials for the same user twice in a single request: \(user)"
            } else if let own = credentials[user], !own.isEmpty {
                out.credentialInfos = own.keys.sorted().map { m in
                    var info = DescribeUserScramCredentialsResponse.CredentialInfo()
                    info.mechanism = m.rawValue
                    info.iterations = own[m]!.iterations
                    return info
                }
            } else {
                out.errorCode = KafkaErrorCode.resourceNotFound
                out.errorMessage = "Attempt to describe a user credential that does not exist: \(user)"
            }
            return out
        }
        return resp
    }

    func alterUserScramCredentials(_ req: AlterUserScramCredentialsRequest, _ r: Request)
        -> EventLoopFuture<AlterUserScramCredentialsResponse?>
    {
        forward(req, version: Broker.controllerAlterUserScramCredentialsVersion, r).map { Optional($0) }.recover { error in
            r.logger.warning("AlterUserScramCredentials: controller unavailable: \(error)")
            var resp = AlterUserScramCredentialsResponse()
            var seen = Set<String>()
            let users = (req.deletions.map(\.name) + req.upsertions.map(\.name)).filter { seen.insert($0).inserted }
            resp.results = users.map { user in
                var out = AlterUserScramCredentialsResponse.AlterUserScramCredentialsResult()
                out.user = user
                out.errorCode = KafkaErrorCode.requestTimedOut
                out.errorMessage = "The controller did not answer: \(error)"
                return out
            }
            return resp
        }
    }
}
