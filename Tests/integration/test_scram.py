"""SCRAM credentials (KIP-554) and kafka-configs.sh for users and groups, against one node:
confluent-kafka's AdminClient creates, describes and deletes credentials (Kafka's errors for
too few iterations, a missing credential, a user altered twice), `bin/kafka-configs.sh`
does the same for users (the password salted and hashed in the tool) and describes and alters
KIP-848 group configs; the credentials survive a restart. No secret is ever described.
The credentials are stored only: Silt's listeners do not authenticate yet (docs/scram.md)."""
from __future__ import annotations

import pytest

from silt_helpers import admin
from test_kafka_tools import CONFIGS, tool


@pytest.fixture
def snode(node_factory):
    return node_factory({"s3.wal.capacity": str(64 << 20)})


def describe(a, users):
    """{user: [(mechanism name, iterations)]} for the users that have credentials, and
    {user: Kafka error name} for those that fail."""
    found, failed = {}, {}
    if users is None:   # every user: one future of {user: description}
        for user, d in a.describe_user_scram_credentials(None).result(timeout=10).items():
            found[user] = sorted((i.mechanism.name, i.iterations) for i in d.scram_credential_infos)
        return found, failed
    for user, fut in a.describe_user_scram_credentials(users).items():
        try:
            d = fut.result(timeout=10)
            found[user] = sorted((i.mechanism.name, i.iterations) for i in d.scram_credential_infos)
        except Exception as e:  # noqa: BLE001: the KafkaException carries Kafka's error
            failed[user] = e.args[0].name()
    return found, failed


def alter(a, alterations):
    """{user: None or Kafka error name}."""
    out = {}
    for user, fut in a.alter_user_scram_credentials(alterations).items():
        try:
            fut.result(timeout=10)
            out[user] = None
        except Exception as e:  # noqa: BLE001
            out[user] = e.args[0].name()
    return out


def test_scram_credentials_admin_api_tool_and_restart(snode):
    from confluent_kafka.admin import (ScramCredentialInfo, ScramMechanism, UserScramCredentialDeletion,
                                       UserScramCredentialUpsertion)

    a = admin(snode)
    assert describe(a, ["alice"]) == ({}, {"alice": "RESOURCE_NOT_FOUND"})

    up = lambda user, mech, it, pw: UserScramCredentialUpsertion(user, ScramCredentialInfo(mech, it), pw)  # noqa: E731
    assert alter(a, [up("alice", ScramMechanism.SCRAM_SHA_256, 8192, b"alice-secret")]) == {"alice": None}
    assert alter(a, [up("carol", ScramMechanism.SCRAM_SHA_512, 4096, b"c\x00rol")]) == {"carol": None}
    # Kafka's refusals, per user: nothing of a refused user is written.
    assert alter(a, [up("dave", ScramMechanism.SCRAM_SHA_256, 1000, b"x")]) == {"dave": "UNACCEPTABLE_CREDENTIAL"}
    assert alter(a, [up("dave", ScramMechanism.SCRAM_SHA_256, 20000, b"x")]) == {"dave": "UNACCEPTABLE_CREDENTIAL"}
    assert alter(a, [UserScramCredentialDeletion("dave", ScramMechanism.SCRAM_SHA_256)]) == {"dave": "RESOURCE_NOT_FOUND"}
    assert alter(a, [up("erin", ScramMechanism.SCRAM_SHA_256, 4096, b"x"),
                     up("erin", ScramMechanism.SCRAM_SHA_512, 4096, b"y")]) == {"erin": "DUPLICATE_RESOURCE"}
    found, failed = describe(a, ["alice", "carol", "dave", "erin"])
    assert found == {"alice": [("SCRAM_SHA_256", 8192)], "carol": [("SCRAM_SHA_512", 4096)]}
    assert failed == {"dave": "RESOURCE_NOT_FOUND", "erin": "RESOURCE_NOT_FOUND"}

    # kafka-configs.sh: the tool salts and hashes the password (PBKDF2) and sends AlterUserScramCredentials.
    bs = ["--bootstrap-server", snode.bootstrap]
    r = tool(CONFIGS, *bs, "--alter", "--add-config", "SCRAM-SHA-512=[iterations=8192,password=alice-secret]",
             "--entity-type", "users", "--entity-name", "alice")
    assert r.stdout == "Completed updating config for user alice.\n"
    r = tool(CONFIGS, *bs, "--describe", "--entity-type", "users")
    assert r.stdout == ("SCRAM credential configs for user-principal 'alice' are SCRAM-SHA-256=iterations=8192, "
                        "SCRAM-SHA-512=iterations=8192\n"
                        "SCRAM credential configs for user-principal 'carol' are SCRAM-SHA-512=iterations=4096\n")
    r = tool(CONFIGS, *bs, "--alter", "--delete-config", "SCRAM-SHA-512", "--entity-type", "users", "--entity-name", "carol")
    assert r.stdout == "Completed updating config for user carol.\n"
    r = tool(CONFIGS, *bs, "--describe", "--user", "carol")
    assert r.stdout == "", "a user without credentials prints nothing, as Kafka's tool"
    r = tool(CONFIGS, *bs, "--alter", "--add-config", "SCRAM-SHA-256=[password=bob-secret]", "--user", "bob")
    r = tool(CONFIGS, *bs, "--describe", "--entity-type", "users", "--entity-name", "bob")
    assert r.stdout == "SCRAM credential configs for user-principal 'bob' are SCRAM-SHA-256=iterations=4096\n"
    # What the tool does not take, with Kafka's words or Silt's reason.
    r = tool(CONFIGS, *bs, "--alter", "--add-config", "SCRAM-SHA-256=[iterations=100,password=x]", "--user", "bob", ok=False)
    assert "Iterations 100 is less than the minimum 4096 required for SCRAM-SHA-256" in r.stderr
    r = tool(CONFIGS, *bs, "--alter", "--add-config", "producer_byte_rate=1024", "--user", "bob", ok=False)
    assert "Silt has no user quotas" in r.stderr
    r = tool(CONFIGS, *bs, "--alter", "--delete-config", "SCRAM-SHA-512", "--user", "bob", ok=False)
    assert "RESOURCE_NOT_FOUND" in r.stderr

    # The credentials live in the metadata log: a restart keeps them.
    snode.restart()
    a = admin(snode)
    found, _ = describe(a, None)
    assert found == {"alice": [("SCRAM_SHA_256", 8192), ("SCRAM_SHA_512", 8192)], "bob": [("SCRAM_SHA_256", 4096)]}
    assert alter(a, [UserScramCredentialDeletion("alice", ScramMechanism.SCRAM_SHA_256)]) == {"alice": None}
    assert describe(a, ["alice"])[0] == {"alice": [("SCRAM_SHA_512", 8192)]}


def test_kafka_configs_groups(snode):
    bs = ["--bootstrap-server", snode.bootstrap]
    r = tool(CONFIGS, *bs, "--describe", "--entity-type", "groups", "--entity-name", "g1")
    assert r.stdout == "The group 'g1' doesn't exist and doesn't have dynamic config.\n"
    r = tool(CONFIGS, *bs, "--alter", "--entity-type", "groups", "--entity-name", "g1",
             "--add-config", "consumer.session.timeout.ms=50000,consumer.heartbeat.interval.ms=6000")
    assert r.stdout == "Completed updating config for group g1.\n"
    r = tool(CONFIGS, *bs, "--describe", "--group", "g1")
    assert r.stdout == ("Dynamic configs for group g1 are:\n"
                        "  consumer.heartbeat.interval.ms=6000 sensitive=false "
                        "synonyms={DYNAMIC_GROUP_CONFIG:consumer.heartbeat.interval.ms=6000}\n"
                        "  consumer.session.timeout.ms=50000 sensitive=false "
                        "synonyms={DYNAMIC_GROUP_CONFIG:consumer.session.timeout.ms=50000}\n")
    tool(CONFIGS, *bs, "--alter", "--group", "g1", "--delete-config", "consumer.heartbeat.interval.ms")
    r = tool(CONFIGS, *bs, "--describe", "--all", "--group", "g1")
    assert r.stdout == ("All configs for group g1 are:\n"
                        "  consumer.heartbeat.interval.ms=5000 sensitive=false "
                        "synonyms={DEFAULT_CONFIG:consumer.heartbeat.interval.ms=5000}\n"
                        "  consumer.session.timeout.ms=50000 sensitive=false "
                        "synonyms={DYNAMIC_GROUP_CONFIG:consumer.session.timeout.ms=50000}\n")
    r = tool(CONFIGS, *bs, "--alter", "--group", "g1", "--add-config", "consumer.session.timeout.ms=1000", ok=False)
    assert "INVALID_CONFIG" in r.stderr and "consumer.session.timeout.ms" in r.stderr
    r = tool(CONFIGS, *bs, "--alter", "--group", "g1", "--add-config", "session.timeout.ms=1000", ok=False)
    assert "INVALID_CONFIG" in r.stderr and "Unknown group config name: session.timeout.ms" in r.stderr
