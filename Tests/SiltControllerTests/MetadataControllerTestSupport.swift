import SiltMetadata

/// Images compared for their state: a reopened controller's log has one more offset (the
/// control batch its new leader epoch starts with), nothing else.
enum MetadataControllerTestSupport {
    static func withoutOffset(_ image: MetadataImage) -> MetadataImage {
        var copy = image
        copy.skip(to: Int64.max / 2)
        return copy
    }
}
