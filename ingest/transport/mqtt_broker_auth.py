"""amqtt plugins that enforce the hub's broker accounts: the password file and ACL file ``mqtt_acl`` writes for
Mosquitto, read by the amqtt fallback broker (``sharpeye/node/embedded.py``), so a machine without Mosquitto still
has one account per device and the same topic rules.

amqtt's own ``FileAuthPlugin`` takes only Argon2/bcrypt hashes and reads its file once, and its
``TopicAccessControlListPlugin`` takes fixed lists from the broker's YAML; these read Mosquitto's ``$7$`` hashes and
ACL file instead, and read them again when the hub rewrites them (a device added or removed at run time), as
Mosquitto does on SIGHUP. They run inside the amqtt process, loaded by their dotted path from its configuration.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from amqtt.contexts import Action
from amqtt.plugins.base import BaseAuthPlugin, BaseTopicPlugin
from sharpeye.ingest.transport.mqtt_acl import Accounts, read_accounts

log = logging.getLogger(__name__)

RECHECK_S = 0.5  # how often the files' modification times are looked at


class AccountFiles:
    """The accounts of a password file and an ACL file, read again when either changes. A file that cannot be read
    keeps the accounts read last (none at first: every login is refused)."""

    def __init__(self, passwd: Path, acl: Path) -> None:
        self.passwd = passwd
        self.acl = acl
        self._stamp: tuple[int, int] | None = None
        self._checked = 0.0
        self.accounts = Accounts({}, {})
        self.refresh(force=True)

    def refresh(self, force: bool = False) -> Accounts:
        now = time.monotonic()
        if not force and now - self._checked < RECHECK_S:
            return self.accounts
        self._checked = now
        try:
            stamp = (self.passwd.stat().st_mtime_ns, self.acl.stat().st_mtime_ns)
            if stamp != self._stamp:
                self.accounts = read_accounts(self.passwd, self.acl)
                self._stamp = stamp
                log.info("broker accounts read: %d users", len(self.accounts.hashes))
        except OSError as exc:
            log.error("cannot read the broker's account files (%s); keeping the accounts read last", exc)
        return self.accounts


_files: dict[tuple[str, str], AccountFiles] = {}


def account_files(passwd: str, acl: str) -> AccountFiles:
    """One reader per pair of files in this process (both plugins share it)."""
    key = (passwd, acl)
    if key not in _files:
        _files[key] = AccountFiles(Path(passwd), Path(acl))
    return _files[key]


@dataclass
class FilesConfig:
    password_file: str = ""
    acl_file: str = ""


class AccountAuthPlugin(BaseAuthPlugin):  # type: ignore[misc]  # amqtt is untyped
    """A client logs in with a user name and password of the password file; anyone else is refused."""

    Config = FilesConfig

    def __init__(self, context: Any) -> None:
        super().__init__(context)
        config: FilesConfig = context.config
        self.files = account_files(config.password_file, config.acl_file)

    async def authenticate(self, *, session: Any) -> bool:
        username = getattr(session, "username", None)
        ok = self.files.refresh().authenticate(username, getattr(session, "password", None))
        if not ok:
            log.warning("refused MQTT login of %r (client %r): unknown user or wrong password", username,
                        getattr(session, "client_id", None))  # fmt: skip
        return ok


class AccountTopicPlugin(BaseTopicPlugin):  # type: ignore[misc]  # amqtt is untyped
    """Publishing needs a ``write`` grant of the ACL file, subscribing and receiving a ``read`` grant."""

    Config = FilesConfig

    def __init__(self, context: Any) -> None:
        super().__init__(context)
        config: FilesConfig = context.config
        self.files = account_files(config.password_file, config.acl_file)

    async def topic_filtering(self, *, session: Any = None, topic: str | None = None, action: Any = None) -> bool:
        if session is None or not topic:
            return False
        username = getattr(session, "username", None)
        accounts = self.files.refresh()
        if action == Action.PUBLISH:
            allowed = accounts.may_write(username, topic)
        else:  # subscribe, or a message about to be delivered
            allowed = accounts.may_read(username, topic)
        if not allowed and action != Action.RECEIVE:
            log.warning("refused MQTT %s of %r on %s", action, username, topic)
        return allowed
