import Foundation
import SiltProtocol

/// AlterUserScramCredentials, forwarded by brokers (as KRaft forwards it): the controller
/// validates and commits (MetadataController+Scram.swift). Describe is the brokers' own
/// (their metadata image holds the credentials).
extension ControllerService {
    func alterUserScramCredentials(_ req: AlterUserScramCredentialsRequest) -> AlterUserScramCredentialsResponse {
        let alterations = req.deletions.map { ScramAlteration.deletion(user: $0.name, mechanism: $0.mechanism) }
            + req.upsertions.map { u in
                ScramAlteration.upsertion(user: u.name, mechanism: u.mechanism, iterations: u.iterations, salt: u.salt,
                                          saltedPassword: u.saltedPassword)
            }
        var resp = AlterUserScramCredentialsResponse()
        let results: [ScramAlterationResult]
        do {
            results = try controller.alterUserScramCredentials(alterations)
        } catch {
            // Not the active controller (the broker's client retries elsewhere): every user gets the error.
            let (code, message) = ControllerService.errorFields(error)
            var seen = Set<String>()
            results = alterations.map(\.user).filter { seen.insert($0).inserted }
                .map { ScramAlterationResult(user: $0, errorCode: code, errorMessage: message) }
        }
        resp.results = results.map { r in
            var out = AlterUserScramCredentialsResponse.AlterUserScramCredentialsResult()
            out.user = r.user
            out.errorCode = r.errorCode
            out.errorMessage = r.errorMessage
            return out
        }
        return resp
    }
}
