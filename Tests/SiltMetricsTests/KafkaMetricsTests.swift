import XCTest
@testable import SiltMetrics

/// Kafka's broker metrics in the region and their exposition.
final class KafkaMetricsTests: XCTestCase {
    func testRequestsErrorsAndLatencyByApi() {
        let m = MetricsRegion.local()
        m.recordRequest(apiKey: 0, seconds: 0.002, errors: 0)
        m.recordRequest(apiKey: 0, seconds: 0.2, errors: 3)
        m.recordRequest(apiKey: 1, seconds: 0.0005, errors: 0)
        m.recordRequest(apiKey: 500, seconds: 1, errors: 1)  // outside the table: ignored
        let stats = m.requestStats()
        XCTAssertEqual(stats.map(\.apiKey), [0, 1])
        XCTAssertEqual(stats[0].errors, 3)
        XCTAssertEqual(stats[0].latency.count, 2)
        XCTAssertEqual(stats[0].latency.buckets.first(where: { $0.le == 0.0025 })?.count, 1)
        XCTAssertEqual(stats[0].latency.buckets.first(where: { $0.le == 0.25 })?.count, 2)
        XCTAssertEqual(stats[0].latency.sumSeconds, 0.202, accuracy: 1e-6)

        let text = PrometheusText.render(m)
        XCTAssertTrue(text.contains("kafka_network_requestmetrics_requests_total{request=\"Produce\"} 2\n"))
        XCTAssertTrue(text.contains("kafka_network_requestmetrics_errors_total{request=\"Produce\"} 3\n"))
        XCTAssertTrue(text.contains("kafka_network_requestmetrics_requests_total{request=\"Fetch\"} 1\n"))
        XCTAssertTrue(text.contains("kafka_network_requestmetrics_totaltimems_bucket{request=\"Produce\",le=\"2.5\"} 1\n"))
        XCTAssertTrue(text.contains("kafka_network_requestmetrics_totaltimems_bucket{request=\"Produce\",le=\"+Inf\"} 2\n"))
        XCTAssertTrue(text.contains("kafka_network_requestmetrics_totaltimems_count{request=\"Produce\"} 2\n"))
        XCTAssertEqual(text.components(separatedBy: "# TYPE kafka_network_requestmetrics_totaltimems histogram").count, 2)
    }

    func testTopicTrafficKeepsOneSlotPerTopic() {
        let m = MetricsRegion.local()
        m.recordProduced(topic: "orders", bytes: 100, messages: 2)
        m.recordProduced(topic: "orders", bytes: 50, messages: 1)
        m.recordFetched(topic: "orders", bytes: 70)
        m.recordProduced(topic: "a\"b", bytes: 1, messages: 1)
        let traffic = Dictionary(uniqueKeysWithValues: m.topicTraffic().map { ($0.topic, $0) })
        XCTAssertEqual(traffic.count, 2)
        XCTAssertEqual(traffic["orders"], TopicTraffic(topic: "orders", bytesIn: 150, bytesOut: 70, messagesIn: 3))
        let text = PrometheusText.render(m)
        XCTAssertTrue(text.contains("kafka_server_brokertopicmetrics_bytesin_total{topic=\"orders\"} 150\n"))
        XCTAssertTrue(text.contains("kafka_server_brokertopicmetrics_bytesout_total{topic=\"orders\"} 70\n"))
        XCTAssertTrue(text.contains("kafka_server_brokertopicmetrics_messagesin_total{topic=\"orders\"} 3\n"))
        XCTAssertTrue(text.contains("kafka_server_brokertopicmetrics_messagesin_total{topic=\"a\\\"b\"} 1\n"))
    }

    func testTopicTableIsBounded() {
        let m = MetricsRegion.local()
        for i in 0..<(KafkaMetricsLayout.topicSeriesMax + 10) { m.recordProduced(topic: "t\(i)", bytes: 1, messages: 1) }
        let traffic = m.topicTraffic()
        XCTAssertEqual(traffic.count, KafkaMetricsLayout.topicSeriesMax)
        XCTAssertEqual(Set(traffic.map(\.topic)).count, traffic.count, "one series per topic")
        XCTAssertNil(m.topicSlot(String(repeating: "x", count: KafkaMetricsLayout.nameBytesMax + 1)))
        // Known topics still count when the table is full.
        m.recordProduced(topic: "t0", bytes: 5, messages: 1)
        XCTAssertEqual(m.topicTraffic().first(where: { $0.topic == "t0" })?.bytesIn, 6)
    }

    func testConsumerLagIsReplacedAsAWhole() {
        let m = MetricsRegion.local()
        m.publishConsumerLag([ConsumerLagSample(group: "g", topic: "t", partition: 0, committedOffset: 5, lag: 7),
                              ConsumerLagSample(group: "g", topic: "t", partition: 1, committedOffset: 9, lag: 0)])
        XCTAssertEqual(m.consumerLag().count, 2)
        XCTAssertTrue(PrometheusText.render(m).contains("kafka_consumergroup_lag{consumergroup=\"g\",topic=\"t\",partition=\"0\"} 7\n"))
        XCTAssertTrue(PrometheusText.render(m).contains("kafka_consumergroup_current_offset{consumergroup=\"g\",topic=\"t\",partition=\"1\"} 9\n"))
        m.publishConsumerLag([ConsumerLagSample(group: "h", topic: "u", partition: 3, committedOffset: 1, lag: 2)])
        XCTAssertEqual(m.consumerLag(), [ConsumerLagSample(group: "h", topic: "u", partition: 3, committedOffset: 1, lag: 2)])
        let many = (0..<(KafkaMetricsLayout.consumerLagSeriesMax + 5)).map {
            ConsumerLagSample(group: "g", topic: "t", partition: Int32($0), committedOffset: 0, lag: 1)
        }
        m.publishConsumerLag(many)
        XCTAssertEqual(m.consumerLag().count, KafkaMetricsLayout.consumerLagSeriesMax)
    }

    func testNoKafkaFamiliesBeforeTraffic() {
        XCTAssertFalse(PrometheusText.render(MetricsRegion.local()).contains("kafka_"))
    }
}
