#!/usr/bin/env python3
"""SigV4 oracle: signs requests with botocore's S3SigV4Auth for fixed inputs.

stdin: JSON list of cases {method, scheme, host, path (raw, unencoded), query [[k, v]...],
headers {name: value}, body_hex, unsigned (bool), access_key, secret_key, region,
timestamp ("YYYYMMDDTHHMMSSZ")}. stdout: JSON list of {authorization, canonical_request,
string_to_sign, content_sha256}.
"""
import datetime
import json
import sys
from urllib.parse import quote

import botocore.auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials


def sign(case):
    ts = datetime.datetime.strptime(case["timestamp"], "%Y%m%dT%H%M%SZ")
    botocore.auth.get_current_datetime = lambda *a, **k: ts  # fixed clock
    url = f"{case['scheme']}://{case['host']}{quote(case['path'], safe='/~')}"
    req = AWSRequest(method=case["method"], url=url, headers=dict(case["headers"]),
                     data=bytes.fromhex(case["body_hex"]), params=[tuple(p) for p in case["query"]])
    if case["unsigned"]:
        req.context["client_config"] = Config(s3={"payload_signing_enabled": False})
    auth = botocore.auth.S3SigV4Auth(Credentials(case["access_key"], case["secret_key"]), "s3", case["region"])
    captured = {}
    original = auth.canonical_request

    def capture(r):
        cr = original(r)
        captured["cr"] = cr
        captured["sts"] = auth.string_to_sign(r, cr)
        return cr

    auth.canonical_request = capture
    auth.add_auth(req)
    return {"authorization": req.headers["Authorization"], "canonical_request": captured["cr"],
            "string_to_sign": captured["sts"], "content_sha256": req.headers["X-Amz-Content-SHA256"]}


print(json.dumps([sign(c) for c in json.load(sys.stdin)]))
