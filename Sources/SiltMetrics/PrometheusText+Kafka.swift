import SiltProtocol

/// Kafka's broker metrics under the names the Prometheus JMX exporter gives them with its
/// usual Kafka configuration (jmx_exporter's `kafka-2_0_0.yml`: `lowercaseOutputName`, a
/// `..PerSec` meter's count as `kafka_<domain>_<type>_<name>_total`), so Kafka dashboards
/// find them; consumer lag under kafka_exporter's names, as Kafka brokers do not export it.
///
///     kafka_server_brokertopicmetrics_bytesin_total{topic="t"} 1234
///     kafka_network_requestmetrics_requests_total{request="Produce"} 10
///     kafka_network_requestmetrics_totaltimems_bucket{request="Produce",le="5"} 9
///     kafka_consumergroup_lag{consumergroup="g",topic="t",partition="0"} 3
///
/// Differences from the JMX exporter: request time is a histogram in milliseconds
/// (`_bucket`, `_sum`, `_count`) where Yammer's gives quantile gauges, and requests and
/// errors carry no `version` or `error` label.
extension PrometheusText {
    static func renderKafka(_ region: MetricsRegion, into out: inout String) {
        let topics = region.topicTraffic()
        family(&out, "kafka_server_brokertopicmetrics_bytesin_total", "counter", "Bytes produced to the topic (record batches as appended).",
               topics.map { ([("topic", $0.topic)], "\($0.bytesIn)") })
        family(&out, "kafka_server_brokertopicmetrics_bytesout_total", "counter", "Record bytes fetched from the topic by consumers.",
               topics.map { ([("topic", $0.topic)], "\($0.bytesOut)") })
        family(&out, "kafka_server_brokertopicmetrics_messagesin_total", "counter", "Records produced to the topic.",
               topics.map { ([("topic", $0.topic)], "\($0.messagesIn)") })

        let requests = region.requestStats()
        func request(_ r: RequestStats) -> (String, String) { ("request", ApiKey(rawValue: r.apiKey)?.name ?? "ApiKey\(r.apiKey)") }
        family(&out, "kafka_network_requestmetrics_requests_total", "counter", "Requests served, by API.",
               requests.map { ([request($0)], "\($0.latency.count)") })
        family(&out, "kafka_network_requestmetrics_errors_total", "counter",
               "Error codes in responses (one per failed partition, group or topic), and requests that failed, by API.",
               requests.map { ([request($0)], "\($0.errors)") })
        if !requests.isEmpty {
            let name = "kafka_network_requestmetrics_totaltimems"
            out += "# HELP \(name) Time from a request's arrival to its response, in milliseconds, by API.\n# TYPE \(name) histogram\n"
            for r in requests {
                let label = request(r)
                for b in r.latency.buckets {
                    out += "\(name)_bucket" + labelSet([label, ("le", formatBound(b.le * 1000))]) + " \(b.count)\n"
                }
                out += "\(name)_bucket" + labelSet([label, ("le", "+Inf")]) + " \(r.latency.count)\n"
                out += "\(name)_sum" + labelSet([label]) + " \(formatFloat(r.latency.sumSeconds * 1000))\n"
                out += "\(name)_count" + labelSet([label]) + " \(r.latency.count)\n"
            }
        }

        let lag = region.consumerLag()
        func labels(_ s: ConsumerLagSample) -> [(String, String)] {
            [("consumergroup", s.group), ("topic", s.topic), ("partition", String(s.partition))]
        }
        family(&out, "kafka_consumergroup_lag", "gauge", "Log end offset minus the group's committed offset, per partition.",
               lag.map { (labels($0), "\($0.lag)") })
        family(&out, "kafka_consumergroup_current_offset", "gauge", "The group's committed offset, per partition.",
               lag.map { (labels($0), "\($0.committedOffset)") })
    }

    /// One labelled family; nothing at all (not even its header) when it has no series.
    private static func family(_ out: inout String, _ name: String, _ type: String, _ help: String,
                               _ samples: [([(String, String)], String)]) {
        guard !samples.isEmpty else { return }
        out += "# HELP \(name) \(escapeHelp(help))\n# TYPE \(name) \(type)\n"
        for (labels, value) in samples { out += name + labelSet(labels) + " \(value)\n" }
    }
}
