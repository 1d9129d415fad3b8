"""Real receivers on 127.0.0.1 for the notification tests: an HTTP server playing the
WeCom and DingTalk robots (their documented formats and answers, DingTalk's signature
checked as the platform computes it), an SMS gateway and a signed webhook; and an SMTP
server (aiosmtpd) with STARTTLS and AUTH. No mocks: the channels speak to these."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import ipaddress
import json
import socket
import ssl
import threading
import urllib.parse
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

HOST = "127.0.0.1"
WECOM_KEY = "693a91f6-7xxx-4bc4-97a0-0ec2sifa5aaa"
DINGTALK_TOKEN = "tok123"
WEBHOOK_SECRET = "whsec-测试-key"
SMS_TOKEN = "sms-token-1"
SMTP_USER, SMTP_PASSWORD = "workorders", "s3cret-pass"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Received:
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Robots:
    """What the platforms would answer, and what they received (accepted or not)."""

    dingtalk_secret: str
    received: list[Received] = field(default_factory=list)
    #: Path -> (HTTP status, JSON answer) to give instead of the platform's checks.
    forced: dict[str, tuple[int, dict[str, Any]]] = field(default_factory=dict)
    #: Phones the SMS gateway fails for (503), the others taken as usual.
    sms_failing: set[str] = field(default_factory=set)
    #: The phones of the messages the SMS gateway took, in order.
    sms_taken: list[str] = field(default_factory=list)
    #: Set: only the SMS to this phone is held (the others answered at once).
    hold_phone: str | None = None
    #: Phones the SMS gateway hangs on: never answered, never taken (the connection is
    #: closed unanswered once ``release`` is set).
    sms_hanging: set[str] = field(default_factory=set)
    #: Set when a request is being held.
    holding: threading.Event = field(default_factory=threading.Event)
    #: Set: requests wait (the answer is held) until ``release`` is set.
    hold: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    arrived: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def of(self, path: str) -> list[Received]:
        with self.lock:
            return [r for r in self.received if r.path == path]

    def holds(self, request: Received) -> bool:
        if not self.hold.is_set():
            return False
        return self.hold_phone is None or (
            request.path == "/sms" and request.json().get("mobile") == self.hold_phone
        )

    def hangs(self, request: Received) -> bool:
        return request.path == "/sms" and request.json().get("mobile") in self.sms_hanging

    def answer(self, request: Received) -> tuple[int, dict[str, Any]]:
        if request.path in self.forced:
            return self.forced[request.path]
        check = {
            "/cgi-bin/webhook/send": self._wecom,
            "/robot/send": self._dingtalk,
            "/sms": self._sms,
            "/hook": self._webhook,
        }.get(request.path)
        return check(request) if check else (404, {"error": "no such path"})

    def _wecom(self, r: Received) -> tuple[int, dict[str, Any]]:
        if r.query.get("key") != [WECOM_KEY]:
            return 200, {"errcode": 93000, "errmsg": "invalid webhook url"}
        body = r.json()
        kind = body.get("msgtype")
        content = body.get(kind, {}).get("content") if kind in ("text", "markdown") else None
        limit = 2048 if kind == "text" else 4096
        if not isinstance(content, str) or len(content.encode()) > limit or set(body) != {"msgtype", kind}:
            return 200, {"errcode": 40008, "errmsg": "invalid message type"}
        return 200, {"errcode": 0, "errmsg": "ok"}

    def _dingtalk(self, r: Received) -> tuple[int, dict[str, Any]]:
        """As the platform does: parse the query (URL-decoding ``sign``), recompute the
        HMAC-SHA256 of ``timestamp + "\\n" + secret`` and compare its base64."""
        if r.query.get("access_token") != [DINGTALK_TOKEN]:
            return 200, {"errcode": 300001, "errmsg": "token is not exist"}
        (timestamp,), (sign,) = r.query.get("timestamp", [""]), r.query.get("sign", [""])
        digest = hmac.new(
            self.dingtalk_secret.encode(), f"{timestamp}\n{self.dingtalk_secret}".encode(), hashlib.sha256
        ).digest()
        if not timestamp.isdigit() or sign != base64.b64encode(digest).decode():
            return 200, {"errcode": 310000, "errmsg": "sign not match"}
        body = r.json()
        kind = body.get("msgtype")
        if kind == "text" and isinstance(body.get("text", {}).get("content"), str):
            return 200, {"errcode": 0, "errmsg": "ok"}
        markdown = body.get("markdown", {})
        if (
            kind == "markdown"
            and isinstance(markdown.get("title"), str)
            and isinstance(markdown.get("text"), str)
        ):
            return 200, {"errcode": 0, "errmsg": "ok"}
        return 200, {"errcode": 40035, "errmsg": "缺少参数 json"}

    def _sms(self, r: Received) -> tuple[int, dict[str, Any]]:
        if r.headers.get("authorization") != f"Bearer {SMS_TOKEN}":
            return 401, {"code": "401", "message": "unauthorized"}
        body = r.json()
        if not (isinstance(body.get("mobile"), str) and isinstance(body.get("content"), str)):
            return 200, {"code": "1001", "message": "bad template"}
        if body["mobile"] in self.sms_failing:
            return 503, {"code": "503", "message": "carrier unavailable"}
        self.sms_taken.append(body["mobile"])
        return 200, {"code": "0", "message": "accepted"}

    def _webhook(self, r: Received) -> tuple[int, dict[str, Any]]:
        timestamp = r.headers.get("x-wo-timestamp", "")
        mac = hmac.new(WEBHOOK_SECRET.encode(), timestamp.encode() + b"." + r.body, hashlib.sha256)
        if not hmac.compare_digest(r.headers.get("x-wo-signature", ""), "sha256=" + mac.hexdigest()):
            return 401, {"error": "bad signature"}
        return 202, {"accepted": True}


class RobotServer:
    """``Robots`` behind a threaded HTTP server on 127.0.0.1; ``stop`` then ``start`` on
    the same port is an outage."""

    def __init__(self, robots: Robots, port: int | None = None) -> None:
        self.robots = robots
        self.port = port or free_port()
        self._server: ThreadingHTTPServer | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> RobotServer:
        robots = self.robots

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                parsed = urllib.parse.urlsplit(self.path)
                length = int(self.headers.get("Content-Length", "0"))
                request = Received(
                    parsed.path,
                    urllib.parse.parse_qs(parsed.query),
                    {k.lower(): v for k, v in self.headers.items()},
                    self.rfile.read(length),
                )
                with robots.lock:
                    robots.received.append(request)
                robots.arrived.set()
                if robots.hangs(request):
                    robots.release.wait(60)
                    return
                if robots.holds(request):
                    robots.holding.set()
                    robots.release.wait(60)
                status, answer = robots.answer(request)
                payload = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *_: Any) -> None:
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


@dataclass
class Mailbox:
    messages: list[EmailMessage] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)
    tls: list[bool] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Session, envelope: Envelope) -> str:
        self.tls.append(session.ssl is not None)
        raw = envelope.original_content or b""
        self.messages.append(message_from_bytes(raw, policy=policy.default))
        return "250 OK"


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key (PEM files)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "smtp-cert.pem", directory / "smtp-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


def smtp_server(directory: Path, mailbox: Mailbox) -> tuple[Controller, Path]:
    """An SMTP server on 127.0.0.1 requiring STARTTLS and AUTH; returns it and its cert."""
    cert, key = self_signed(directory)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)

    def authenticate(
        server: Any, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
            SMTP_USER.encode(),
            SMTP_PASSWORD.encode(),
        )
        if ok:
            mailbox.logins.append(SMTP_USER)
        return AuthResult(success=ok, handled=False)

    controller = Controller(
        mailbox,
        hostname="127.0.0.1",
        port=free_port(),
        tls_context=context,
        require_starttls=True,
        authenticator=authenticate,
        auth_required=True,
        auth_require_tls=True,
    )
    controller.start()
    return controller, cert


def dingtalk_secret_whose_sign_needs_escaping(timestamp_ms: int) -> str:
    """A secret whose signature for ``timestamp_ms`` holds "+" or "/": not URL-encoding it
    would break it (a "+" read back as a space)."""
    for index in range(1000):
        secret = f"SEC{index:04d}c0ffee"
        digest = hmac.new(secret.encode(), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256).digest()
        if "+" in base64.b64encode(digest).decode():
            return secret
    raise AssertionError("no such secret found")
