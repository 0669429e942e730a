"""The README's walk-through, through a client generated from docs/openapi.json.

Run by infra/client-walkthrough.sh, which generates the client (openapi-python-client, pinned)
into a scratch directory on PYTHONPATH as `herald_client` and starts `herald serve`:

    python client_walkthrough.py <openapi.json> <server url> <admin key>

First, every example of the document (request bodies and JSON answers) must validate against its
schema (jsonschema, Draft 2020-12, OpenAPI 3.1's dialect).

As an admin, it creates an org and an API key (README, "Deploy to AWS", step 3); with that key,
a webhook channel to a receiver on loopback, the channel test, the README's rule and one with a
matcher tree, the README's event (and a batch), then reads the delivery log until the event is
delivered, and the stats. It also creates the product description's push channel and tests it
with `to`, lists every channel (one per config shape), and runs docs/feeds.md's worked example
(an in-app rule, a feed token, the feed, marking an item read). Any unexpected status, any answer the
client cannot parse into its model, any wrong value: a non-zero exit with the step named.
"""

import http.server
import json
import sys
import threading
import time

from herald_client import AuthenticatedClient
from herald_client.api.api_keys import create_api_key
from herald_client.api.channels import create_channel, list_channels, test_channel
from herald_client.api.events import post_events
from herald_client.api.feeds import create_token, list_feed, mark_item
from herald_client.api.logs import get_stats, list_logs
from herald_client.api.orgs import create_org
from herald_client.api.rules import create_rule, get_rule
from herald_client.models import (
    ChannelList,
    ChannelView,
    CreateApiKey,
    CreatedApiKey,
    CreateEmailChannel,
    CreateEmailChannelKind,
    CreateFeedToken,
    CreateInAppChannel,
    CreateInAppChannelKind,
    CreateOrg,
    CreatePushChannel,
    CreatePushChannelKind,
    CreateRule,
    CreateSlackChannel,
    CreateSlackChannelKind,
    CreateWebhookChannel,
    CreateWebhookChannelKind,
    DeliveryStatus,
    EmailSmtpConfig,
    EmailSmtpConfigProvider,
    Event,
    EventProperties,
    EventsAccepted,
    FeedList,
    FeedTokenView,
    FrequencyCap,
    GroupBy,
    LogPage,
    MarkItemAction,
    MarkResult,
    MatchAll,
    MatchAny,
    MatchCompare,
    MatchCompareOp,
    MatchEquals,
    MatchEqualsOp,
    MatchIn,
    MatchInOp,
    MatchNot,
    MatchText,
    MatchTextOp,
    Org,
    RuleView,
    SlackConfig,
    StatsAnswer,
    TestRequest,
    TestResult,
    WebhookConfig,
    WebhookFormat,
)
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012


class StepFailed(Exception):
    pass


def step(name, response, model, status):
    """The parsed answer of one call, or StepFailed naming the step."""
    parsed = response.parsed
    if response.status_code != status or not isinstance(parsed, model):
        raise StepFailed(
            f"{name}: expected {status} {model.__name__}, got {int(response.status_code)} "
            f"{type(parsed).__name__}: {response.content.decode(errors='replace')[:500]}"
        )
    print(f"ok  {name}")
    return parsed


def check(name, condition, detail=""):
    if not condition:
        raise StepFailed(f"{name}: {detail}")


class Receiver:
    """A webhook receiver on loopback that records what it is sent."""

    def __init__(self):
        self.received = []
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                receiver.received.append((dict(self.headers), json.loads(body or b"null")))
                self.send_response(200)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/incidents"


def check_examples(doc_path):
    """Every request and answer example of the document validates against its schema."""
    with open(doc_path, encoding="utf-8") as f:
        doc = json.load(f)
    base = "urn:herald:openapi"
    registry = Registry().with_resource(base, Resource.from_contents(doc, default_specification=DRAFT202012))
    examples = []
    for path, operations in doc["paths"].items():
        for method, op in operations.items():
            media = op.get("requestBody", {}).get("content", {}).get("application/json")
            if media:
                for name, example in media.get("examples", {}).items():
                    examples.append((f"{method.upper()} {path} request `{name}`", media["schema"], example["value"]))
            for status, answer in op["responses"].items():
                media = answer.get("content", {}).get("application/json")
                if media and "example" in media:
                    examples.append((f"{method.upper()} {path} {status}", media["schema"], media["example"]))
    wrong = []
    for label, schema, value in examples:
        if "$ref" in schema:
            schema = {"$ref": base + schema["$ref"]}
        errors = list(Draft202012Validator(schema, registry=registry).iter_errors(value))
        if errors:
            wrong.append(f"{label}: {errors[0].message[:300]}")
    check("examples match their schemas", not wrong, "\n  ".join(wrong))
    check("the document has examples", len(examples) > 100, len(examples))
    print(f"ok  {len(examples)} examples match their schemas")


def walk(url, admin_key):
    admin = AuthenticatedClient(
        base_url=url, token=admin_key, prefix="", auth_header_name="x-admin-key",
        raise_on_unexpected_status=False,
    )
    org = step("create org", create_org.sync_detailed(client=admin, body=CreateOrg(name="Acme")), Org, 201)
    created = step(
        "create API key",
        create_api_key.sync_detailed(org.id, client=admin, body=CreateApiKey(name="ci")),
        CreatedApiKey,
        201,
    )
    api = AuthenticatedClient(
        base_url=url, token=created.key, prefix="", auth_header_name="x-api-key",
    )
    org_id = org.id

    receiver = Receiver()
    webhook = step(
        "create webhook channel",
        create_channel.sync_detailed(
            org_id,
            client=api,
            body=CreateWebhookChannel(
                kind=CreateWebhookChannelKind.WEBHOOK,
                name="incidents",
                config=WebhookConfig(url=receiver.url, format_=WebhookFormat.GENERIC),
            ),
        ),
        ChannelView,
        201,
    )
    check("webhook signing secret", str(webhook.signing_secret).startswith("whsec_"), webhook.signing_secret)
    check("webhook config", isinstance(webhook.config, WebhookConfig), type(webhook.config).__name__)

    tested = step(
        "test channel",
        test_channel.sync_detailed(org_id, webhook.id, client=api, body=TestRequest()),
        TestResult,
        200,
    )
    check("test channel ok", tested.ok, tested.message)
    check("test message received", len(receiver.received) == 1, receiver.received)

    # README: the rule fires on `email.bounced`.
    rule = step(
        "create rule",
        create_rule.sync_detailed(
            org_id, client=api, body=CreateRule(key="email.bounced", channel_ids=[str(webhook.id)])
        ),
        RuleView,
        201,
    )
    check("rule has no matcher", rule.match is None, rule.match)
    # The matcher tree, typed end to end: ops events, critical or high, not from a dev host, big.
    tree = MatchAll(
        all_=[
            MatchEquals(field="module", op=MatchEqualsOp.EQ, value="ops"),
            MatchAny(
                any_=[
                    MatchIn(field="properties.severity", op=MatchInOp.IN, value=["critical", "high"]),
                    MatchNot(not_=MatchText(field="properties.host", op=MatchTextOp.PREFIX, value="dev-")),
                ]
            ),
            MatchCompare(field="properties.used", op=MatchCompareOp.GTE, value=0.9),
        ]
    )
    step(
        "create rule with a matcher",
        create_rule.sync_detailed(
            org_id, client=api, body=CreateRule(key="disk.full", match=tree, channel_ids=[str(webhook.id)])
        ),
        RuleView,
        201,
    )
    read_back = step("read the rule back", get_rule.sync_detailed(org_id, "disk.full", client=api), RuleView, 200)
    check("matcher round trip", read_back.match == tree, f"{read_back.match!r} != {tree!r}")

    # README: the event.
    accepted = step(
        "post event",
        post_events.sync_detailed(
            org_id,
            client=api,
            body=Event(
                type_="email.bounced",
                module="email",
                properties=EventProperties.from_dict({"to": "a@example.com", "reason": "mailbox full"}),
            ),
        ),
        EventsAccepted,
        202,
    )
    check("event accepted", accepted.accepted == 1 and accepted.rejected == 0, accepted.to_dict())
    event_id = accepted.items[0].id
    batch = step(
        "post a batch",
        post_events.sync_detailed(
            org_id,
            client=api,
            body=[
                Event(type_="disk.full", module="ops",
                      properties=EventProperties.from_dict({"host": "db-1", "severity": "critical", "used": 0.97})),
                Event(type_="user.signedUp", module="auth", user_id="alice"),
            ],
        ),
        EventsAccepted,
        202,
    )
    check("batch accepted", batch.accepted == 2, batch.to_dict())

    # README: what happened to it.
    deadline = time.monotonic() + 30
    while True:
        page = step(
            "read the delivery log",
            list_logs.sync_detailed(org_id, client=api, rule_key="email.bounced"),
            LogPage,
            200,
        )
        mine = [d for d in page.items if d.event_id == event_id]
        if mine and mine[0].status == DeliveryStatus.DELIVERED:
            break
        check("delivered in time", time.monotonic() < deadline, [d.to_dict() for d in mine])
        time.sleep(0.2)
    delivery = mine[0]
    check("one attempt, 200", [a.status_code for a in delivery.attempts] == [200], delivery.to_dict())
    bodies = [body for _, body in receiver.received]
    check("the receiver got the event", any(json.dumps(b).find(event_id) >= 0 for b in bodies), bodies)
    headers = receiver.received[-1][0]
    check("signed", any(k.lower() == "webhook-signature" for k in headers), headers)

    # Both deliveries so far: the README's event's, and the batch's disk.full one, which may
    # still be on its way (and a dispatcher run writes its counters once its records are).
    deadline = time.monotonic() + 30
    while True:
        stats = step(
            "read stats",
            get_stats.sync_detailed(org_id, client=api, group_by=GroupBy.CHANNEL),
            StatsAnswer,
            200,
        )
        if stats.totals.counts["delivered"] >= 2:
            break
        check("stats count the deliveries in time", time.monotonic() < deadline, stats.to_dict())
        time.sleep(0.2)

    # The product description's channel and test call, and one channel of each other shape.
    push = step(
        "create push channel",
        create_channel.sync_detailed(
            org_id,
            client=api,
            body=CreatePushChannel(
                kind=CreatePushChannelKind.PUSH,
                name="transactional-push",
                frequency_cap=FrequencyCap(per_user=5, window_hours=24),
            ),
        ),
        ChannelView,
        201,
    )
    tested = step(
        "test push channel with to",
        test_channel.sync_detailed(org_id, push.id, client=api, body=TestRequest(to="alice@example.com")),
        TestResult,
        200,
    )
    check("push test answered", tested.message, tested.to_dict())
    for name, body in [
        ("slack", CreateSlackChannel(kind=CreateSlackChannelKind.SLACK, name="sendora-email",
                                     config=SlackConfig(webhook_url="https://hooks.slack.com/services/T0/B0/x"))),
        ("email smtp", CreateEmailChannel(kind=CreateEmailChannelKind.EMAIL, name="mail",
                                          config=EmailSmtpConfig(provider=EmailSmtpConfigProvider.SMTP,
                                                                 from_="Herald <alerts@example.com>",
                                                                 host="smtp.example.com", port=587,
                                                                 username="herald", password="s3cret",
                                                                 starttls=True))),
        ("in_app", CreateInAppChannel(kind=CreateInAppChannelKind.IN_APP, name="Feed")),
    ]:
        created_channel = step(
            f"create {name} channel",
            create_channel.sync_detailed(org_id, client=api, body=body),
            ChannelView,
            201,
        )
        shown = created_channel.to_dict()["config"]
        check(f"{name} secrets redacted", "s3cret" not in json.dumps(shown) and "/B0/x" not in json.dumps(shown), shown)
    listed = step("list channels", list_channels.sync_detailed(org_id, client=api), ChannelList, 200)
    check("every channel listed", len(listed.items) == 5, [c.name for c in listed.items])

    # docs/feeds.md's worked example: an in-app rule, an event for alice, her feed with her token.
    feed_channel = next(c for c in listed.items if c.name == "Feed")
    step(
        "create in-app rule",
        create_rule.sync_detailed(
            org_id, client=api, body=CreateRule(key="invoice.paid", channel_ids=[str(feed_channel.id)])
        ),
        RuleView,
        201,
    )
    step(
        "post an event for alice",
        post_events.sync_detailed(
            org_id,
            client=api,
            body=Event(type_="invoice.paid", module="billing",
                       properties=EventProperties.from_dict({"amount": 120}), user_id="alice"),
        ),
        EventsAccepted,
        202,
    )
    token = step(
        "mint a feed token",
        create_token.sync_detailed(org_id, client=api, body=CreateFeedToken(user_id="alice", ttl_seconds=600)),
        FeedTokenView,
        200,
    )
    alice = AuthenticatedClient(base_url=url, token=token.token)  # Authorization: Bearer
    deadline = time.monotonic() + 30
    while True:
        feed = step("read alice's feed", list_feed.sync_detailed(org_id, client=alice), FeedList, 200)
        if feed.items:
            break
        check("the item arrived in time", time.monotonic() < deadline, feed.to_dict())
        time.sleep(0.2)
    item = feed.items[0]
    check("item", item.event_type == "invoice.paid" and feed.badge.unread == 1, feed.to_dict())
    marked = step(
        "mark it read",
        mark_item.sync_detailed(org_id, str(item.id), MarkItemAction.READ, client=alice),
        MarkResult,
        200,
    )
    check("read", marked.changed and marked.badge.unread == 0 and marked.seq == feed.seq + 1, marked.to_dict())


def main():
    doc_path, url, admin_key = sys.argv[1], sys.argv[2], sys.argv[3]
    try:
        check_examples(doc_path)
        walk(url, admin_key)
    except StepFailed as e:
        print(f"FAILED {e}", file=sys.stderr)
        return 1
    print("the README's walk-through ran through the generated client")
    return 0


if __name__ == "__main__":
    sys.exit(main())
