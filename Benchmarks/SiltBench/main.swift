// silt-bench: a load tool for Silt (and any Kafka broker) built on Silt's own protocol
// codec (SiltProtocol, SiltRecords) and SwiftNIO; no librdkafka.
//
//   silt-bench produce --bootstrap 127.0.0.1:9092 --topic bench --partitions 6 \
//       --connections 4 --pipeline 8 --record-bytes 1024 --records-per-batch 16 \
//       --acks -1 --rate 0 --duration-s 30 --warmup-s 5 [--json]
//
// See Benchmarks/README.md.
SiltBench.main()
