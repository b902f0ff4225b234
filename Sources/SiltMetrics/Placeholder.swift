// Replaced by the metrics region and exporter.
