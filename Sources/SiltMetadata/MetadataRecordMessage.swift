import SiltProtocol

/// A generated metadata record schema (`specs/metadata/*.json`, `"type": "metadata"`): the
/// body of one framed record. `apiKey` is the record type the frame carries; a schema is
/// flexible in every version, so later fields can be added as tagged fields.
public protocol MetadataRecordMessage: KafkaMessage {
    /// The record type in the frame.
    static var apiKey: Int16 { get }
}
