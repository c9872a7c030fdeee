"""Drives the twin with Twilio's official Python SDK, only its host rewritten.

Environment: TWIN_BASE (e.g. http://127.0.0.1:8090/sim), TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN,
FROM_NUMBER, TO_NUMBER, OTHER_NUMBER. Exits 0 when every check holds; prints what it saw.
"""

import json
import os
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import parse_qsl, urlsplit

from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.request_validator import RequestValidator
from twilio.rest import Client

TWIN = os.environ["TWIN_BASE"].rstrip("/")
SID = os.environ["TWILIO_ACCOUNT_SID"]
TOKEN = os.environ["TWILIO_AUTH_TOKEN"]
FROM = os.environ["FROM_NUMBER"]
TO = os.environ["TO_NUMBER"]
OTHER = os.environ["OTHER_NUMBER"]


class TwinHttpClient(TwilioHttpClient):
    """https://{product}.twilio.com/PATH -> {TWIN}/{product}/PATH; nothing else changes."""

    def request(self, method, url, params=None, data=None, headers=None, auth=None,
                timeout=None, allow_redirects=False):
        parts = urlsplit(url)
        product = parts.hostname.split(".")[0]
        rewritten = f"{TWIN}/{product}{parts.path}" + (f"?{parts.query}" if parts.query else "")
        return super().request(method, rewritten, params=params, data=data, headers=headers,
                               auth=auth, timeout=timeout, allow_redirects=allow_redirects)


received = []
validator = RequestValidator(TOKEN)


class Hook(BaseHTTPRequestHandler):
    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length).decode("utf-8")
        params = dict(parse_qsl(body, keep_blank_values=True))
        url = f"http://127.0.0.1:{self.server.server_port}{self.path}"
        ok = validator.validate(url, params, self.headers.get("X-Twilio-Signature", ""))
        received.append({"params": params, "valid": ok})
        self.send_response(204 if ok else 403)
        self.end_headers()

    def log_message(self, *args):
        pass


def check(cond, what):
    if not cond:
        print(f"FAILED: {what}", file=sys.stderr)
        print(json.dumps(received, indent=1), file=sys.stderr)
        sys.exit(1)
    print(f"ok: {what}")


def main():
    server = HTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    hook = f"http://127.0.0.1:{server.server_port}/status"

    client = Client(SID, TOKEN, http_client=TwinHttpClient())

    msg = client.messages.create(to=TO, from_=FROM, body="Hello from the SDK & co", status_callback=hook)
    check(msg.sid.startswith("SM") and len(msg.sid) == 34, "create returns an SM sid")
    check(msg.status == "queued", "a new message is queued")
    check(msg.date_created is not None, "date_created parses as RFC 2822")

    fetched = client.messages(msg.sid).fetch()
    check(fetched.sid == msg.sid and fetched.body == "Hello from the SDK & co", "fetch returns the message")

    for i in range(4):
        client.messages.create(to=OTHER, from_=FROM, body=f"bulk {i}")

    deadline = time.time() + 20
    while time.time() < deadline:
        statuses = [r["params"].get("MessageStatus") for r in received]
        if "delivered" in statuses:
            break
        time.sleep(0.05)
    statuses = [r["params"].get("MessageStatus") for r in received]
    check(statuses == ["sending", "sent", "delivered"], f"callbacks arrive in order: {statuses}")
    check(all(r["valid"] for r in received), "RequestValidator accepts every callback signature")
    check(all(r["params"].get("MessageSid") == msg.sid for r in received), "callbacks name the message")

    every = client.messages.list(page_size=2)
    check(len(every) == 5, f"list follows next_page_uri across pages ({len(every)} items)")
    page = client.messages.page(page_size=2)
    second = page.next_page()
    check(second is not None and len(list(second)) == 2, "page().next_page() works")
    only_to = client.messages.list(to=TO)
    check([m.sid for m in only_to] == [msg.sid], "To filter")
    only_other = client.messages.list(to=OTHER, from_=FROM, limit=3)
    check(len(only_other) == 3 and all(m.to == OTHER for m in only_other), "To/From filter with limit")
    yesterday = datetime.now(timezone.utc) - timedelta(days=1)
    recent = client.messages.list(date_sent_after=yesterday)
    check(len(recent) >= 1, f"DateSent> filter ({len(recent)} sent since yesterday)")
    future = client.messages.list(date_sent_after=datetime.now(timezone.utc) + timedelta(days=1))
    check(future == [], "DateSent> in the future finds nothing")

    try:
        client.messages.create(to="+1415", from_=FROM, body="x")
        check(False, "an invalid To is refused")
    except TwilioRestException as e:
        check(e.status == 400 and e.code == 21211, f"invalid To gives 21211 ({e.code})")

    bad = Client(SID, "wrong-token", http_client=TwinHttpClient())
    try:
        bad.messages(msg.sid).fetch()
        check(False, "wrong credentials are refused")
    except TwilioRestException as e:
        check(e.status == 401 and e.code == 20003, f"wrong credentials give 20003 ({e.code})")

    numbers = client.incoming_phone_numbers.list(phone_number=FROM)
    check(len(numbers) == 1 and numbers[0].phone_number == FROM, "IncomingPhoneNumbers list")
    updated = client.incoming_phone_numbers(numbers[0].sid).update(sms_url="https://example.com/sms")
    check(updated.sms_url == "https://example.com/sms", "IncomingPhoneNumbers update")

    verify_checks(client)

    server.shutdown()
    print("all SDK checks passed")


def sent_codes(to):
    """The codes Verify texted to `to`, from the twin's control API."""
    from urllib.parse import quote
    from urllib.request import urlopen
    with urlopen(f"{TWIN}/control/messages?to={quote(to)}") as r:
        items = json.load(r)["messages"]
    return [m["body"].rsplit(" ", 1)[-1] for m in items if "verification code" in m["body"]]


def verify_checks(client):
    service = client.verify.v2.services.create(friendly_name="Acme")
    check(service.sid.startswith("VA") and service.code_length == 6, "Verify service create")
    verifications = client.verify.v2.services(service.sid).verifications
    v = verifications.create(to=OTHER, channel="sms")
    check(v.sid.startswith("VE") and v.status == "pending", f"verification create ({v.status})")
    again = verifications.create(to=OTHER, channel="sms")
    check(again.sid == v.sid and len(again.send_code_attempts) == 2,
          "a second create for a pending number re-sends it")
    for _ in range(200):
        codes = sent_codes(OTHER)
        if len(codes) >= 2:
            break
        time.sleep(0.02)
    check(len(codes) == 2 and codes[0] == codes[1], f"the same code twice ({codes})")
    code = codes[0]
    checks = client.verify.v2.services(service.sid).verification_checks
    wrong = checks.create(to=OTHER, code="000000" if code != "000000" else "111111")
    check(wrong.status == "pending" and wrong.valid is False, "a wrong code leaves it pending")
    right = checks.create(verification_sid=v.sid, code=code)
    check(right.status == "approved" and right.valid is True, "the right code approves it")
    try:
        verifications(v.sid).fetch()
        check(False, "an approved verification is gone")
    except TwilioRestException as e:
        check(e.status == 404 and e.code == 20404, f"an approved verification is gone ({e.code})")
    try:
        verifications.create(to="4155550188", channel="sms")
        check(False, "a number without + is refused")
    except TwilioRestException as e:
        check(e.status == 400 and e.code == 60200, f"Invalid parameter: To gives 60200 ({e.code})")


if __name__ == "__main__":
    main()
