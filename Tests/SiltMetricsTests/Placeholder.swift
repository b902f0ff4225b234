// Replaced by the metrics tests.
