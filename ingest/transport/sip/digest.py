"""HTTP Digest authentication for SIP (RFC 2617 / RFC 3261 section 22), MD5 with and without qop=auth.

Nonces are signed, not stored: ``<expiry>.<salt>.<hmac>``; only the highest nonce-count seen per nonce is
kept (bounded), to refuse replays.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass

_PARAM = re.compile(r'\s*([A-Za-z0-9_\-]+)\s*=\s*("((?:[^"\\]|\\.)*)"|[^,\s]*)\s*,?')


def md5(text: str) -> str:
    return hashlib.md5(text.encode("utf-8"), usedforsecurity=False).hexdigest()


def parse_params(value: str) -> tuple[str, dict[str, str]]:
    """``Digest a="b", c=d`` -> ("digest", {"a": "b", "c": "d"}). Parameter names are lower-cased."""
    scheme, _, rest = value.strip().partition(" ")
    params: dict[str, str] = {}
    for match in _PARAM.finditer(rest):
        raw = match.group(3) if match.group(3) is not None else match.group(2)
        params[match.group(1).lower()] = raw.replace('\\"', '"')
    return scheme.lower(), params


def response_digest(
    *,
    username: str,
    realm: str,
    password: str,
    method: str,
    uri: str,
    nonce: str,
    qop: str = "",
    nc: str = "",
    cnonce: str = "",
) -> str:
    ha1 = md5(f"{username}:{realm}:{password}")
    ha2 = md5(f"{method}:{uri}")
    if qop:
        return md5(f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")
    return md5(f"{ha1}:{nonce}:{ha2}")


@dataclass(frozen=True, slots=True)
class Challenge:
    realm: str
    nonce: str
    qop: str  # "auth" or ""
    opaque: str = ""
    algorithm: str = "MD5"

    @classmethod
    def parse(cls, header: str) -> Challenge:
        scheme, params = parse_params(header)
        if scheme != "digest" or "nonce" not in params:
            raise ValueError(f"not a digest challenge: {header[:80]!r}")
        qops = [q.strip() for q in params.get("qop", "").split(",") if q.strip()]
        return cls(
            realm=params.get("realm", ""),
            nonce=params["nonce"],
            qop="auth" if "auth" in qops else "",
            opaque=params.get("opaque", ""),
            algorithm=params.get("algorithm", "MD5"),
        )

    def authorization(self, *, username: str, password: str, method: str, uri: str, nc: int = 1) -> str:
        """The Authorization header value answering this challenge."""
        cnonce = secrets.token_hex(8) if self.qop else ""
        ncs = f"{nc:08x}" if self.qop else ""
        digest = response_digest(
            username=username,
            realm=self.realm,
            password=password,
            method=method,
            uri=uri,
            nonce=self.nonce,
            qop=self.qop,
            nc=ncs,
            cnonce=cnonce,
        )
        parts = [
            f'username="{username}"',
            f'realm="{self.realm}"',
            f'nonce="{self.nonce}"',
            f'uri="{uri}"',
            f'response="{digest}"',
            "algorithm=MD5",
        ]
        if self.qop:
            parts += [f"qop={self.qop}", f"nc={ncs}", f'cnonce="{cnonce}"']
        if self.opaque:
            parts.append(f'opaque="{self.opaque}"')
        return "Digest " + ", ".join(parts)


class DigestServer:
    """Issues challenges and checks answers for one realm."""

    def __init__(self, realm: str, *, nonce_ttl_s: float = 300.0, qop: bool = True) -> None:
        self.realm = realm
        self.nonce_ttl_s = nonce_ttl_s
        self.qop = qop
        self._secret = secrets.token_bytes(16)
        self._nc: OrderedDict[str, int] = OrderedDict()  # nonce -> highest nonce-count accepted (qop=auth)
        self._nc_limit = 100_000

    def _nonce_mac(self, expiry: str) -> str:
        return hmac.new(self._secret, expiry.encode(), hashlib.sha256).hexdigest()[:24]

    def challenge(self) -> str:
        """A WWW-Authenticate header value with a fresh nonce."""
        stamp = f"{int(time.monotonic() + self.nonce_ttl_s)}.{secrets.token_hex(4)}"
        nonce = f"{stamp}.{self._nonce_mac(stamp)}"
        value = f'Digest realm="{self.realm}", nonce="{nonce}", algorithm=MD5'
        if self.qop:
            value += ', qop="auth"'
        return value

    def check(self, header: str, *, method: str, password: str, username: str) -> str:
        """Return "" when the Authorization header is valid, else the reason it is not.

        With qop=auth the nonce-count must grow for each use of a nonce ("replayed_nc" otherwise), so a
        captured REGISTER cannot be replayed; answer such a reason with a fresh challenge.

        The digest is computed over the ``uri`` the client put in the header (devices differ in what
        they put there), for the expected username, realm and a nonce this server issued.
        """
        scheme, params = parse_params(header)
        if scheme != "digest":
            return "not_digest"
        for key in ("username", "realm", "nonce", "uri", "response"):
            if key not in params:
                return f"missing_{key}"
        if params["username"] != username:
            return "wrong_username"
        if params["realm"] != self.realm:
            return "wrong_realm"
        algorithm = params.get("algorithm", "MD5").upper()
        if algorithm != "MD5":
            return "unsupported_algorithm"
        stamp, _, mac = params["nonce"].rpartition(".")
        expiry = stamp.partition(".")[0]
        if not expiry.isdigit() or not hmac.compare_digest(mac, self._nonce_mac(stamp)):
            return "unknown_nonce"
        if int(expiry) < time.monotonic():
            return "stale_nonce"
        qop = params.get("qop", "")
        if qop and qop != "auth":
            return "unsupported_qop"
        expected = response_digest(
            username=username,
            realm=self.realm,
            password=password,
            method=method,
            uri=params["uri"],
            nonce=params["nonce"],
            qop=qop,
            nc=params.get("nc", ""),
            cnonce=params.get("cnonce", ""),
        )
        if not hmac.compare_digest(expected, params["response"].lower()):
            return "wrong_password"
        if qop:
            try:
                nc = int(params.get("nc", ""), 16)
            except ValueError:
                return "bad_nc"
            if nc <= self._nc.get(params["nonce"], 0):
                return "replayed_nc"
            self._nc[params["nonce"]] = nc
            self._nc.move_to_end(params["nonce"])
            while len(self._nc) > self._nc_limit:
                self._nc.popitem(last=False)
        return ""
