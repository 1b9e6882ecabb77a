"""Run and drive the test OAuth2/OIDC provider in tests/idp (oidc-provider on Node.js)."""

from __future__ import annotations

import collections
import contextlib
import http.cookiejar
import json
import os
import queue
import re
import shutil
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Self, cast

from service.accounts import AccountWrite

IDP_DIR = Path(__file__).resolve().parent.parent / "idp"
SERVER_SCRIPT = IDP_DIR / "server.mjs"

CLIENT_ID = "tokenbroker-test"
CLIENT_SECRET = "tokenbroker-test-secret"
OTHER_CLIENT_ID = "tokenbroker-other"
OTHER_CLIENT_SECRET = "tokenbroker-other-secret"
MAILSERVER_CLIENT_ID = "tokenbroker-mailserver"  # a resource server: introspection only, Basic
MAILSERVER_CLIENT_SECRET = "tokenbroker-mailserver-secret"
DEFAULT_REDIRECT_URI = "http://127.0.0.1:8080/oauth/callback"

START_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 5.0
HTTP_TIMEOUT_S = 10.0
MIN_NODE_MAJOR = 20

JsonDict = dict[str, object]


def _require_node() -> tuple[str, str]:
    node = shutil.which("node")
    npm = shutil.which("npm")
    if node is None or npm is None:
        raise RuntimeError(
            f"the test IdP needs Node.js >= {MIN_NODE_MAJOR} with npm on PATH "
            f"(node={node!r}, npm={npm!r})"
        )
    version = subprocess.run(
        [node, "--version"], capture_output=True, text=True, check=False, timeout=30
    ).stdout.strip()
    match = re.match(r"v(\d+)\.", version)
    if match is None or int(match.group(1)) < MIN_NODE_MAJOR:
        raise RuntimeError(
            f"the test IdP needs Node.js >= {MIN_NODE_MAJOR}, found {version or 'unknown'}"
        )
    return node, npm


def ensure_installed() -> None:
    """Install the IdP's npm dependencies with ``npm ci`` unless node_modules exists.

    Raises RuntimeError naming Node.js >= 20 when node or npm is missing or too old,
    and with npm's output when the install fails.
    """
    _, npm = _require_node()
    if (IDP_DIR / "node_modules" / "oidc-provider" / "package.json").is_file():
        return
    result = subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund"],
        cwd=IDP_DIR,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"`npm ci` in {IDP_DIR} failed with exit code {result.returncode}:\n"
            f"{result.stdout}\n{result.stderr}"
        )


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Make urllib hand redirects back to the caller instead of following them."""

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: IO[bytes],
        code: int,
        msg: str,
        headers: object,
        newurl: str,
    ) -> None:
        return None


def _json_or_raw(body: bytes) -> JsonDict:
    try:
        parsed: object = json.loads(body)
    except ValueError:
        return {"raw_body": body.decode("utf-8", "replace")}
    if isinstance(parsed, dict):
        return cast(JsonDict, parsed)
    return {"raw_body": parsed}


class Idp:
    """A running test IdP process (one per ``start()``, with empty in-memory state).

    Clients: ``tokenbroker-test``/``tokenbroker-test-secret`` (``client_id``/``client_secret``)
    and ``tokenbroker-other``/``tokenbroker-other-secret``, both ``client_secret_post``,
    code + refresh_token grants, PKCE S256 required; ``tokenbroker-mailserver``, a resource
    server that only introspects tokens (RFC 7662, HTTP Basic), for the tests' Dovecot.

    Refresh tokens are issued on every code exchange and rotate on every use. Presenting a
    rotated (already used) refresh token gets ``invalid_grant`` AND revokes the whole grant,
    so the newest refresh token of that chain stops working too (oidc-provider's replay
    detection).

    Faults (``fault()``/``faults()``) form a FIFO queue; each token-endpoint request takes
    the oldest fault whose ``grant`` (default ``"refresh_token"``) matches its grant_type:

    - ``error``: answer ``status`` (400) with JSON built from the other fields (``error``
      defaults to invalid_grant, plus ``error_description``, ``error_codes``, ...);
      the refresh token is not consumed. ``retry_after`` sets Retry-After.
    - ``status``: answer ``status`` (503) with optional ``retry_after`` and ``body`` text;
      the refresh token is not consumed.
    - ``string_expires_in`` / ``no_expires_in`` / ``expires_in`` (with ``value``): real
      exchange, then expires_in is turned into a string / removed / replaced.
    - ``refresh_token_expires_in`` (with ``value``): real exchange, then the answer says
      its refresh token dies in ``value`` seconds (see also ``refresh_lifetime``).
    - ``no_refresh_token``: real exchange WITHOUT rotation: the presented refresh token
      stays valid and unconsumed, and ``refresh_token`` is left out of the response.
    - ``delay_ms``: wait ``ms`` (1000), then the real exchange.
    - ``hang``: no answer; the socket is closed after ``ms`` (60000).
    - ``drop``: the socket is closed without an answer.

    Rewrites only touch 200 responses; a fault is used up even if the real provider
    answered with an error.

    A delay window (``delay()``) slows every refresh_token answer for a while; the exchange
    still runs when the client has hung up meanwhile, so the token rotates unseen
    (``stats()["refresh_unheard"]`` counts those). ``active()`` says whether a refresh
    token would be accepted now and how many of its grant would be.
    """

    def __init__(
        self,
        process: subprocess.Popen[str],
        issuer: str,
        discovery: JsonDict,
        stderr_tail: collections.deque[str],
    ) -> None:
        self._process = process
        self._stderr_tail = stderr_tail
        self.issuer = issuer
        self.discovery = discovery
        self.token_url = str(discovery["token_endpoint"])
        self.authorization_url = str(discovery["authorization_endpoint"])
        self.revocation_url = str(discovery["revocation_endpoint"])
        self.jwks_url = str(discovery["jwks_uri"])
        self.userinfo_url = str(discovery["userinfo_endpoint"])
        self.introspection_url = str(discovery.get("introspection_endpoint", ""))
        self.client_id = CLIENT_ID
        self.client_secret = CLIENT_SECRET
        self.other_client_id = OTHER_CLIENT_ID
        self.other_client_secret = OTHER_CLIENT_SECRET

    # -- lifecycle ---------------------------------------------------------------------

    @classmethod
    def start(
        cls,
        redirect_uris: list[str] | None = None,
        access_token_ttl_s: int | None = None,
    ) -> Idp:
        """Start ``node server.mjs`` on a free port and wait (max 20 s) for its issuer."""
        ensure_installed()
        node, _ = _require_node()
        env = dict(os.environ)
        env["IDP_PORT"] = "0"
        env["IDP_REDIRECT_URIS"] = ",".join(redirect_uris or [DEFAULT_REDIRECT_URI])
        if access_token_ttl_s is not None:
            env["IDP_ACCESS_TOKEN_TTL_S"] = str(access_token_ttl_s)
        else:
            env.pop("IDP_ACCESS_TOKEN_TTL_S", None)

        process = subprocess.Popen(
            [node, str(SERVER_SCRIPT)],
            cwd=IDP_DIR,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            errors="replace",
        )
        assert process.stdout is not None
        assert process.stderr is not None
        stdout_lines: queue.Queue[str | None] = queue.Queue()
        stderr_tail: collections.deque[str] = collections.deque(maxlen=200)
        stdout_reader = threading.Thread(
            target=_pump, args=(process.stdout, stdout_lines.put), daemon=True
        )
        stderr_reader = threading.Thread(
            target=_pump, args=(process.stderr, _tail_appender(stderr_tail)), daemon=True
        )
        stdout_reader.start()
        stderr_reader.start()

        def fail(reason: str) -> RuntimeError:
            _terminate(process)
            stderr_reader.join(timeout=2)
            return RuntimeError(f"test IdP {reason}; stderr:\n{''.join(stderr_tail)}")

        deadline = time.monotonic() + START_TIMEOUT_S
        issuer: str | None = None
        while issuer is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise fail(f"printed no ISSUER line within {START_TIMEOUT_S:.0f} s")
            try:
                line = stdout_lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                process.wait(timeout=STOP_TIMEOUT_S)
                raise fail(f"exited with code {process.returncode} before it was ready")
            if line.startswith("ISSUER="):
                issuer = line.removeprefix("ISSUER=").strip()

        try:
            status, discovery = _http_json(
                "GET", f"{issuer}/.well-known/openid-configuration", None
            )
            if status != 200 or discovery.get("issuer") != issuer:
                raise RuntimeError(f"bad discovery document ({status}): {discovery}")
        except (OSError, RuntimeError) as exc:
            raise fail(f"discovery failed: {exc}") from exc
        return cls(process, issuer, discovery, stderr_tail)

    def stop(self) -> None:
        """Stop the process: SIGTERM, then SIGKILL after 5 s. Safe to call twice."""
        _terminate(self._process)

    @property
    def running(self) -> bool:
        """Whether the node process is still alive."""
        return self._process.poll() is None

    @property
    def stderr(self) -> str:
        """The last (up to 200) lines the IdP wrote to stderr, for debugging."""
        return "".join(self._stderr_tail)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- test hooks --------------------------------------------------------------------

    def _hook(self, method: str, name: str, body: object | None = None) -> JsonDict:
        status, payload = _http_json(method, f"{self.issuer}/__test/{name}", body)
        if status != 200:
            raise RuntimeError(f"test IdP hook {name} answered {status}: {payload}")
        return payload

    def mint(
        self,
        sub: str,
        scope: str = "openid email profile offline_access mail.read",
        client_id: str | None = None,
        resource_scopes: str | None = None,
    ) -> dict[str, object]:
        """Mint a real grant with refresh and access tokens for ``sub``.

        Returns ``{refresh_token, access_token, token_type, expires_in, scope, grant_id}``;
        the refresh token works (and rotates) at the real token endpoint. `resource_scopes`
        (Microsoft resource scopes, space separated) are what the user consented to: a refresh
        asking `scope` of one resource then gets a token for it (tests/idp/resources.mjs).
        """
        body: JsonDict = {"sub": sub, "scope": scope}
        if client_id is not None:
            body["client_id"] = client_id
        if resource_scopes is not None:
            body["resource_scopes"] = resource_scopes
        return self._hook("POST", "mint", body)

    def service_account(self, scopes: str | None = None) -> JsonDict:
        """Create a service account: Google's JSON key file for it (with its private key).

        `scopes` (space separated) is what its domain-wide delegation covers (default: any).
        """
        return self._hook("POST", "service/accounts", {"scopes": scopes} if scopes else {})

    def delegate(self, client_email: str, sub: str, allowed: bool) -> None:
        """Grant or withdraw the service account's delegation for one subject (mailbox)."""
        body = {"client_email": client_email, "sub": sub, "allowed": allowed}
        self._hook("POST", "service/delegation", body)

    def revoke_service_key(self, client_email: str) -> None:
        """Revoke the service account's key: assertions it signs are refused from now on."""
        self._hook("POST", "service/revoke-key", {"client_email": client_email})

    def service_stats(self) -> JsonDict:
        """Counters of the application grants (client_credentials_*, jwt_bearer_*, subjects)."""
        return self._hook("GET", "service/stats")

    def fault(self, kind: str, **fields: object) -> None:
        """Queue one fault, e.g. ``fault("status", status=503, retry_after=2)``."""
        self.faults([{"kind": kind, **fields}])

    def faults(self, faults: list[dict[str, object]]) -> None:
        """Queue several faults, in order (see the class docstring for the kinds)."""
        self._hook("POST", "faults", {"faults": faults})

    def stats(self) -> dict[str, int]:
        """Return the request counters and the number of faults still queued.

        Keys: token_requests, refresh_requests, code_requests, revocations, refresh_ok
        (refresh_token grants answered 200), refresh_unheard (of those, answered after the
        client hung up), refresh_in_flight (being handled now), refresh_replayed (requests
        presenting an already used refresh token), faults_pending.
        Faulted requests are counted too.
        """
        payload = self._hook("GET", "stats")
        return {key: int(cast(int, value)) for key, value in payload.items()}

    def traceparents(self) -> list[str]:
        """The `traceparent` header of each refresh_token request ('' when absent), oldest first."""
        payload = self._hook("GET", "traceparents")
        return [str(value) for value in cast(list[object], payload["traceparents"])]

    def reset(self) -> None:
        """Clear the fault queue, counters, delay window and rotation mode (tokens stay)."""
        self._hook("POST", "reset", {})

    def delay(self, min_ms: int, max_ms: int, for_ms: int) -> int:
        """Delay each refresh_token answer by a random [min_ms, max_ms] for `for_ms`.

        The exchange happens after the delay even if the client gave up: the refresh token
        rotates and the old one is consumed. Returns the window's end (epoch ms).
        """
        body = {"min_ms": min_ms, "max_ms": max_ms, "for_ms": for_ms}
        return int(cast(int, self._hook("POST", "delay", body)["until_ms"]))

    def clear_delay(self) -> None:
        """End the delay window now (requests already waiting keep their delay)."""
        self._hook("POST", "delay", {})

    def active(self, refresh_token: str) -> TokenState:
        """Whether `refresh_token` would be accepted now, and its grant's active count."""
        return _token_state(self._hook("POST", "active", {"refresh_token": refresh_token}))

    def active_many(self, refresh_tokens: list[str]) -> list[TokenState]:
        """`active()` of many refresh tokens in one request, in order."""
        payload = self._hook("POST", "active", {"refresh_tokens": refresh_tokens})
        return [_token_state(cast(JsonDict, t)) for t in cast(list[object], payload["tokens"])]

    def retire_rotated(self, retire: bool) -> None:
        """False: a rotated refresh token stays usable (like Microsoft); True: the default."""
        self._hook("POST", "rotation", {"retire_rotated": retire})

    def refresh_lifetime(self, seconds: int | None, client_id: str | None = None) -> None:
        """Successful code and refresh answers carry refresh_token_expires_in = seconds too.

        For one client (default: every client); None stops it. Cleared by reset().
        """
        body: JsonDict = {"seconds": seconds}
        if client_id is not None:
            body["client_id"] = client_id
        self._hook("POST", "refresh-lifetime", body)

    def revoke(self, refresh_token: str) -> None:
        """Revoke the grant behind ``refresh_token`` (as if the user removed access).

        All refresh/access tokens of that grant stop working; the next refresh gets
        invalid_grant. Raises RuntimeError if the token is unknown to the IdP.
        """
        self._hook("POST", "revoke", {"refresh_token": refresh_token})

    def audience(self, access_token: str) -> tuple[str | None, str | None]:
        """(audience, scope) a per-resource access token was issued for; (None, None) else."""
        payload = self._hook("POST", "audience", {"access_token": access_token})
        audience, scope = payload.get("audience"), payload.get("scope")
        return (
            audience if isinstance(audience, str) else None,
            scope if isinstance(scope, str) else None,
        )

    def revoke_access_token(self, access_token: str) -> None:
        """Retire one access token at the provider (RFC 7009 revocation, as the app's client).

        The grant and its refresh token stay good; introspection calls the token inactive.
        """
        form = {
            "token": access_token,
            "token_type_hint": "access_token",
            "client_id": self.client_id,
            "client_secret": self.client_secret,
        }
        request = urllib.request.Request(
            self.revocation_url,
            data=urllib.parse.urlencode(form).encode(),
            method="POST",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        status, _, body = _send(request, HTTP_TIMEOUT_S)
        if status != 200:
            raise RuntimeError(f"revocation answered {status}: {body[:200]!r}")

    def introspection_url_with_credentials(self) -> str:
        """The RFC 7662 endpoint with the mail server client's Basic credentials in it."""
        parts = urllib.parse.urlsplit(self.introspection_url)
        netloc = f"{MAILSERVER_CLIENT_ID}:{MAILSERVER_CLIENT_SECRET}@{parts.netloc}"
        return urllib.parse.urlunsplit(parts._replace(netloc=netloc))

    def set_claims(self, sub: str, **claims: object) -> None:
        """Change what account ``sub`` claims from now on (None removes a claim).

        E.g. ``email_verified=False``, or Microsoft's ``tid``, ``oid`` and
        ``preferred_username``, which the id_token carries (email only userinfo).
        """
        self._hook("POST", "claims", {"sub": sub, "claims": claims})

    # -- real OAuth requests -----------------------------------------------------------

    def token_request(
        self, form: dict[str, str], timeout: float = HTTP_TIMEOUT_S
    ) -> tuple[int, dict[str, str], bytes]:
        """POST a form to the token endpoint; return (status, headers, raw body).

        Raises OSError (e.g. ConnectionResetError, TimeoutError, URLError) when the IdP
        drops or hangs the connection.
        """
        data = urllib.parse.urlencode(form).encode()
        request = urllib.request.Request(
            self.token_url,
            data=data,
            method="POST",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        return _send(request, timeout)

    def refresh(
        self,
        refresh_token: str,
        *,
        client_id: str | None = None,
        client_secret: str | None = None,
        scope: str | None = None,
        timeout: float = HTTP_TIMEOUT_S,
    ) -> tuple[int, dict[str, object]]:
        """Do a real refresh_token grant (client_secret_post); return (status, JSON body).

        A non-JSON body comes back as ``{"raw_body": text}``.
        """
        form = {
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
            "client_id": client_id or self.client_id,
            "client_secret": client_secret or self.client_secret,
        }
        if scope is not None:
            form["scope"] = scope
        status, _, body = self.token_request(form, timeout)
        return status, _json_or_raw(body)

    def complete_authorization(
        self, authorize_url: str, sub: str, timeout: float = HTTP_TIMEOUT_S
    ) -> str:
        """Drive the devInteractions login and consent pages for ``authorize_url``.

        ``authorize_url`` is a full /auth URL (client_id, response_type=code,
        redirect_uri, scope, state, code_challenge, code_challenge_method=S256). Logs in
        as ``sub``, consents, and returns the final redirect URL (``redirect_uri?code=...``)
        without requesting it.
        """
        jar = http.cookiejar.CookieJar()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar), _NoRedirect())
        url = authorize_url
        for _ in range(10):
            if not url.startswith(self.issuer + "/"):
                return url
            path = urllib.parse.urlsplit(url).path
            if re.fullmatch(r"/interaction/[^/]+", path):
                # GET renders the form; posting straight away is what a browser would do.
                html = _open(opener, urllib.request.Request(url), timeout)[2].decode()
                if 'value="login"' in html:
                    fields = {"prompt": "login", "login": sub, "password": "x"}
                else:
                    fields = {"prompt": "consent"}
                request = urllib.request.Request(
                    url, data=urllib.parse.urlencode(fields).encode(), method="POST"
                )
            else:
                request = urllib.request.Request(url)
            status, headers, body = _open(opener, request, timeout)
            location = headers.get("Location") or headers.get("location")
            if status not in (302, 303) or not location:
                raise RuntimeError(
                    f"unexpected {status} from {url}: {body.decode('utf-8', 'replace')[:500]}"
                )
            url = urllib.parse.urljoin(url, location)
        raise RuntimeError("too many redirects while completing authorization")

    def deny_authorization(self, authorize_url: str, timeout: float = HTTP_TIMEOUT_S) -> str:
        """Start ``authorize_url`` and abort at the first interaction page (the user says no).

        Returns the final redirect URL (``redirect_uri?error=access_denied&state=...``)
        without requesting it.
        """
        jar = http.cookiejar.CookieJar()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar), _NoRedirect())
        url = authorize_url
        for _ in range(10):
            if not url.startswith(self.issuer + "/"):
                return url
            if re.fullmatch(r"/interaction/[^/]+", urllib.parse.urlsplit(url).path):
                url = f"{url}/abort"
            status, headers, body = _open(opener, urllib.request.Request(url), timeout)
            location = headers.get("Location") or headers.get("location")
            if status not in (302, 303) or not location:
                raise RuntimeError(
                    f"unexpected {status} from {url}: {body.decode('utf-8', 'replace')[:500]}"
                )
            url = urllib.parse.urljoin(url, location)
        raise RuntimeError("too many redirects while denying authorization")


@dataclass(frozen=True)
class TokenState:
    """A refresh token as the provider sees it now."""

    active: bool  # known, not used up, not expired, and its grant alive
    grant_id: str | None  # None: the provider does not know the token
    active_in_grant: int  # refresh tokens of the same grant that would be accepted now


def _token_state(payload: JsonDict) -> TokenState:
    grant = payload.get("grant_id")
    return TokenState(
        active=payload.get("active") is True,
        grant_id=grant if isinstance(grant, str) else None,
        active_in_grant=int(cast(int, payload.get("active_in_grant", 0))),
    )


def _pump(stream: IO[str], sink: Callable[[str | None], None]) -> None:
    """Copy lines from a child's pipe into ``sink``; ``None`` marks the end."""
    try:
        for line in stream:
            sink(line)
    except (OSError, ValueError):
        pass
    finally:
        sink(None)


def _tail_appender(tail: collections.deque[str]) -> Callable[[str | None], None]:
    def append(line: str | None) -> None:
        if line is not None:
            tail.append(line)

    return append


def _terminate(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    for stream in (process.stdout, process.stderr):
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.close()


def _open(
    opener: urllib.request.OpenerDirector, request: urllib.request.Request, timeout: float
) -> tuple[int, dict[str, str], bytes]:
    try:
        with opener.open(request, timeout=timeout) as response:
            return response.status, dict(response.headers.items()), response.read()
    except urllib.error.HTTPError as err:
        with err:
            return err.code, dict(err.headers.items()), err.read()


def _send(request: urllib.request.Request, timeout: float) -> tuple[int, dict[str, str], bytes]:
    return _open(urllib.request.build_opener(_NoRedirect()), request, timeout)


def _http_json(method: str, url: str, body: object | None) -> tuple[int, JsonDict]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    status, _, raw = _send(request, HTTP_TIMEOUT_S)
    return status, _json_or_raw(raw)


def minted_write(
    app_id: str,
    account: str,
    minted: dict[str, object],
    scope: str,
    expires_at_ms: int,
    lifetime_ms: int,
) -> AccountWrite:
    """An account imported with a grant minted at this provider (`Idp.mint`)."""
    return AccountWrite(
        app=app_id,
        provider="oidc",
        user=f"{account}@example.test",
        access_token=str(minted["access_token"]),
        refresh_token=str(minted["refresh_token"]),
        scopes=scope.split(),
        expires_at_ms=expires_at_ms,
        lifetime_ms=lifetime_ms,
    )
