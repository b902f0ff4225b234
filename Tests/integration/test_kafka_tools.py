"""Kafka's command-line tools in bin/ (kafka-topics.sh, kafka-configs.sh) against one node,
in the forms librdkafka's test suite runs them through KAFKA_PATH
(`kafka-topics.sh --bootstrap-server H:P --create --topic T --partitions N --replication-factor 1 --config k=v`,
`--alter --partitions`, `--delete`) and the forms users type. Output is checked line by line."""
from __future__ import annotations

import subprocess

from silt_helpers import REPO_ROOT, SILT_BIN, admin, wait_until

TOPICS = REPO_ROOT / "bin" / "kafka-topics.sh"
CONFIGS = REPO_ROOT / "bin" / "kafka-configs.sh"


def tool(script, *args: str, ok: bool = True) -> subprocess.CompletedProcess:
    import os
    env = dict(os.environ, SILT_BIN=str(SILT_BIN))
    r = subprocess.run([str(script), *args], capture_output=True, text=True, timeout=60, env=env)
    if ok:
        assert r.returncode == 0, f"{script.name} {' '.join(args)} exited {r.returncode}\n{r.stdout}\n{r.stderr}"
    else:
        assert r.returncode == 1, f"{script.name} {' '.join(args)} should have failed\n{r.stdout}\n{r.stderr}"
    return r


def test_kafka_topics(node):
    bs = ["--bootstrap-server", node.bootstrap]
    # librdkafka's 0052 and 0077 forms: quoted topic, configs Kafka 3.x accepts (some ignored by Silt).
    r = tool(TOPICS, *bs, "--create", "--topic", "tools_a", "--replication-factor", "1", "--partitions", "2",
             "--config", "message.timestamp.type=LogAppendTime", "--config", "cleanup.policy=compact",
             "--config", "segment.ms=500", "--config", "file.delete.delay.ms=10000",
             "--config", "max.compaction.lag.ms=100", "--config", "compression.type=lz4")
    assert r.stdout == "Created topic tools_a.\n"
    tool(TOPICS, *bs, "--create", "--topic", "tools_b")
    # Creating it again fails with Kafka's reason, unless --if-not-exists.
    r = tool(TOPICS, *bs, "--create", "--topic", "tools_b", ok=False)
    assert "Error while executing topic command : " in r.stderr and "tools_b" in r.stderr and "already exists" in r.stderr
    tool(TOPICS, *bs, "--create", "--topic", "tools_b", "--if-not-exists")
    # A bad config value is refused with the key named.
    r = tool(TOPICS, *bs, "--create", "--topic", "tools_c", "--config", "compression.type=brotli", ok=False)
    assert "compression.type" in r.stderr

    listed = tool(TOPICS, *bs, "--list").stdout.splitlines()
    assert [t for t in listed if t.startswith("tools_")] == ["tools_a", "tools_b"]
    assert tool(TOPICS, *bs, "--list", "--topic", "tools_.*", "--exclude-internal").stdout == "tools_a\ntools_b\n"

    lines = tool(TOPICS, *bs, "--describe", "--topic", "tools_a").stdout.splitlines()
    head = lines[0].split("\t")
    assert head[0] == "Topic: tools_a" and head[1].startswith("TopicId: ") and len(head[1]) > len("TopicId: ")
    assert head[2:4] == ["PartitionCount: 2", "ReplicationFactor: 1"]
    configs = dict(kv.split("=", 1) for kv in head[4].removeprefix("Configs: ").split(",") if kv)
    assert configs["cleanup.policy"] == "compact" and configs["compression.type"] == "lz4"
    assert configs["message.timestamp.type"] == "LogAppendTime" and configs["max.compaction.lag.ms"] == "100"
    assert lines[1:] == [f"\tTopic: tools_a\tPartition: {p}\tLeader: 0\tReplicas: 0\tIsr: 0" for p in (0, 1)]

    # librdkafka's 0045: grow a topic's partitions.
    assert tool(TOPICS, *bs, "--alter", "--topic", "tools_a", "--partitions", "4").stdout == ""
    wait_until(lambda: len(admin(node).list_topics("tools_a", timeout=5).topics["tools_a"].partitions) == 4,
               20, "tools_a to have 4 partitions")
    r = tool(TOPICS, *bs, "--alter", "--topic", "tools_a", "--partitions", "3", ok=False)
    assert "Error while executing topic command : " in r.stderr

    # librdkafka's test_delete_topic_sh form, then Kafka's answer for a topic that is gone.
    assert tool(TOPICS, *bs, "--delete", "--topic", "tools_b").stdout == ""
    wait_until(lambda: "tools_b" not in tool(TOPICS, *bs, "--list").stdout.split(), 20, "tools_b to be deleted")
    r = tool(TOPICS, *bs, "--describe", "--topic", "tools_b", ok=False)
    assert "Topic 'tools_b' does not exist as expected" in r.stderr
    assert tool(TOPICS, *bs, "--delete", "--topic", "tools_b", "--if-exists").stdout == ""

    # Flags Silt does not take are refused clearly.
    r = tool(TOPICS, "--zookeeper", "x:2181", "--list", ok=False)
    assert "--zookeeper is not supported" in r.stderr
    r = tool(TOPICS, *bs, "--list", "--describe", ok=False)
    assert "exactly one action" in r.stderr


def test_kafka_configs(node):
    bs = ["--bootstrap-server", node.bootstrap]
    tool(TOPICS, *bs, "--create", "--topic", "cfg_t", "--partitions", "1", "--replication-factor", "1")
    t = ["--entity-type", "topics", "--entity-name", "cfg_t"]
    assert tool(CONFIGS, *bs, *t, "--describe").stdout == "Dynamic configs for topic cfg_t are:\n"

    r = tool(CONFIGS, *bs, *t, "--alter", "--add-config", "retention.ms=1000,flush.ms=5000,cleanup.policy=[compact,delete]")
    assert r.stdout == "Completed updating config for topic cfg_t.\n"
    lines = tool(CONFIGS, *bs, *t, "--describe").stdout.splitlines()
    assert lines[0] == "Dynamic configs for topic cfg_t are:"
    assert lines[1] == ("  cleanup.policy=compact,delete sensitive=false synonyms={DYNAMIC_TOPIC_CONFIG:cleanup.policy=compact,delete, "
                        "DEFAULT_CONFIG:log.cleanup.policy=delete}")
    assert lines[2].startswith("  flush.ms=5000 sensitive=false synonyms={DYNAMIC_TOPIC_CONFIG:flush.ms=5000")
    assert lines[3] == ("  retention.ms=1000 sensitive=false synonyms={DYNAMIC_TOPIC_CONFIG:retention.ms=1000, "
                        "DEFAULT_CONFIG:log.retention.ms=604800000}")
    assert len(lines) == 4

    r = tool(CONFIGS, *bs, *t, "--alter", "--delete-config", "flush.ms,cleanup.policy")
    assert r.stdout == "Completed updating config for topic cfg_t.\n"
    assert [l.split("=")[0] for l in tool(CONFIGS, *bs, *t, "--describe").stdout.splitlines()[1:]] == ["  retention.ms"]
    every = tool(CONFIGS, *bs, *t, "--describe", "--all").stdout.splitlines()
    assert every[0] == "All configs for topic cfg_t are:"
    assert any(l.startswith("  message.format.version=") for l in every)

    # Kafka's refusals: deleting a key that is not set, a bad value, an unknown topic.
    r = tool(CONFIGS, *bs, *t, "--alter", "--delete-config", "segment.ms", ok=False)
    assert "Invalid config(s): segment.ms" in r.stderr
    r = tool(CONFIGS, *bs, *t, "--alter", "--add-config", "compression.type=brotli", ok=False)
    assert "INVALID_CONFIG" in r.stderr and "compression.type" in r.stderr
    r = tool(CONFIGS, *bs, "--entity-type", "topics", "--entity-name", "nope", "--describe")
    assert r.stdout == "The topic 'nope' doesn't exist and doesn't have dynamic config.\n"

    # Brokers: this node, and the cluster-wide default.
    b = ["--entity-type", "brokers", "--entity-name", "0"]
    assert tool(CONFIGS, *bs, *b, "--alter", "--add-config", "log.retention.ms=123456").stdout == \
        "Completed updating config for broker 0.\n"
    lines = tool(CONFIGS, *bs, *b, "--describe").stdout.splitlines()
    assert lines[0] == "Dynamic configs for broker 0 are:"
    assert lines[1].startswith("  log.retention.ms=123456 sensitive=false synonyms={DYNAMIC_BROKER_CONFIG:log.retention.ms=123456")
    d = ["--entity-type", "brokers", "--entity-default"]
    assert tool(CONFIGS, *bs, *d, "--alter", "--add-config", "log.flush.interval.ms=1000").stdout == \
        "Completed updating default config for brokers in the cluster.\n"
    assert tool(CONFIGS, *bs, *d, "--describe").stdout == (
        "Default configs for brokers in the cluster are:\n"
        "  log.flush.interval.ms=1000 sensitive=false synonyms={DYNAMIC_DEFAULT_BROKER_CONFIG:log.flush.interval.ms=1000}\n")
    # Without a name: every broker, then the default.
    heads = [l for l in tool(CONFIGS, *bs, "--entity-type", "brokers", "--describe").stdout.splitlines()
             if not l.startswith("  ")]
    assert heads == ["Dynamic configs for broker 0 are:", "Default configs for brokers in the cluster are:"]
    assert tool(CONFIGS, *bs, *d, "--alter", "--delete-config", "log.flush.interval.ms").returncode == 0
    r = tool(CONFIGS, *bs, "--entity-type", "clients", "--entity-name", "x", "--describe", ok=False)
    assert "not supported by Silt" in r.stderr
