"""A Postfix instance of its own, for the tests (Postfix in front of mailfax) and the benchmark
(Postfix's durable acceptance, as the yardstick): config, queue and mailboxes in one temporary
directory, SMTP on one loopback port; the machine's own Postfix (if any) is not touched."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

DEPLOY = Path(__file__).resolve().parent.parent / "deploy" / "postfix"
POSTFIX = shutil.which("postfix", path=f"{os.environ.get('PATH', '')}:/usr/sbin")
COMMAND_TIMEOUT = 60.0


def mailfax_transport(mailfax_port: int) -> str:
    """deploy/postfix/transport, pointing at mailfax's port: fax.local relayed to mailfax."""
    return (DEPLOY / "transport").read_text().replace(":2525", f":{mailfax_port}")


# fax.local accepted into Postfix's queue, then thrown away: its durable acceptance alone.
DISCARD_TRANSPORT = "fax.local discard:\n"

_MASTER_CF = """\
127.0.0.1:{port} inet n - n - - smtpd
pickup    unix  n - n 60 1 pickup
cleanup   unix  n - n -  0 cleanup
qmgr      unix  n - n 300 1 qmgr
rewrite   unix  - - n -  - trivial-rewrite
bounce    unix  - - n -  0 bounce
defer     unix  - - n -  0 bounce
trace     unix  - - n -  0 bounce
verify    unix  - - n -  1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n -  - proxymap
smtp      unix  - - n -  - smtp
relay     unix  - - n -  - smtp
showq     unix  n - n -  - showq
error     unix  - - n -  - error
retry     unix  - - n -  - error
discard   unix  - - n -  - discard
virtual   unix  - n n -  - virtual
anvil     unix  - - n -  1 anvil
scache    unix  - - n -  1 scache
postlog   unix-dgram n - n - 1 postlogd
"""


def _tool(name: str) -> str:
    """A Postfix program, from where the postfix command is."""
    assert POSTFIX is not None
    return str(Path(POSTFIX).with_name(name))


@dataclass
class Postfix:
    """One instance (needs root to start); `configure`, then `postfix("start")`."""

    base: Path
    port: int

    @property
    def config(self) -> Path:
        return self.base / "etc"

    @property
    def mailbox(self) -> Path:
        """alice@example.test's Maildir."""
        return self.base / "mail" / "alice"

    def log(self) -> str:
        path = self.base / "maillog"
        return path.read_text(errors="replace") if path.exists() else "(no log)"

    def configure(self, transport: str) -> None:
        """The harness settings, then deploy/postfix/main.cf as documented, with `transport`
        as the transport map."""
        nobody = pwd.getpwnam("nobody")
        for sub in ("etc", "queue", "data", "mail"):
            (self.base / sub).mkdir()
        os.chown(self.base / "data", pwd.getpwnam("postfix").pw_uid, -1)
        os.chown(self.base / "mail", nobody.pw_uid, nobody.pw_gid)
        # The harness: where this instance keeps its files, and a local mailbox for receipts.
        (self.config / "main.cf").write_text(
            f"""compatibility_level = 3.6
queue_directory = {self.base}/queue
data_directory = {self.base}/data
maillog_file = {self.base}/maillog
maillog_file_prefixes = {self.base}
myhostname = postfix.mailfax-test.localdomain
mydestination =
inet_interfaces = loopback-only
inet_protocols = ipv4
smtp_tls_security_level = none
virtual_mailbox_domains = example.test
virtual_mailbox_base = {self.base}/mail
virtual_mailbox_maps = inline:{{ alice@example.test=alice/ }}
virtual_uid_maps = static:{nobody.pw_uid}
virtual_gid_maps = static:{nobody.pw_gid}
"""
        )
        (self.config / "master.cf").write_text(_MASTER_CF.format(port=self.port))
        # The documented set-up, as an organisation would apply it.
        for line in (DEPLOY / "main.cf").read_text().splitlines():
            if line.strip() and not line.startswith("#"):
                setting = line.replace("/etc/postfix/", f"{self.config}/")
                postconf = [_tool("postconf"), "-c", str(self.config), "-e", setting]
                subprocess.run(postconf, check=True)
        (self.config / "transport").write_text(transport)
        subprocess.run(
            [_tool("postmap"), "-c", str(self.config), str(self.config / "transport")], check=True
        )

    def postfix(self, action: str) -> subprocess.CompletedProcess[str]:
        assert POSTFIX is not None
        return subprocess.run(
            [POSTFIX, "-c", str(self.config), action],
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
            check=False,
        )
