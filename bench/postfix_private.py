"""A private Postfix for bench/smtp.py: its own config dir (main.cf + master.cf), queue and log in a temp dir, smtpd
on a loopback port, relaying the bench domain over LMTP to the bench's Dovecot. Never touches /etc/postfix or port 25;
`stop()` ends it (and the bench stops it in a `finally`)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

# Debian's master.cf with every service un-chrooted (no copies of /etc files into the queue dir) and smtpd moved to
# a loopback port. Postfix 3.4+ writes its own log file through postlogd (no syslog on this machine).
MASTER_CF = """\
{listen} inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


def available() -> bool:
    return shutil.which("postfix") is not None and Path("/usr/lib/postfix/sbin/master").exists()


class PrivatePostfix:
    def __init__(self, root: Path, port: int, domain: str, lmtp: str) -> None:
        self.root = root
        self.port = port
        self.domain = domain
        self.lmtp = lmtp  # host:port of the LMTP next hop

    @property
    def conf(self) -> Path:
        return self.root / "etc"

    @property
    def log(self) -> Path:
        return self.root / "maillog"

    def write_config(self) -> None:
        for d in ("etc", "queue", "data"):
            (self.root / d).mkdir(parents=True, exist_ok=True)
        shutil.chown(self.root / "data", "postfix", "postfix")
        host, port = self.lmtp.rsplit(":", 1)
        (self.conf / "main.cf").write_text(
            f"""compatibility_level = 3.6
queue_directory = {self.root / "queue"}
data_directory = {self.root / "data"}
mail_owner = postfix
setgid_group = postdrop
myhostname = postfix.bench.test
mydomain = bench.test
myorigin = $myhostname
mydestination =
local_recipient_maps =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
relay_domains = {self.domain}
transport_maps = inline:{{ {self.domain}=lmtp:inet:{host}:{port} }}
smtpd_relay_restrictions = reject_unauth_destination
smtpd_recipient_restrictions =
message_size_limit = 52428800
maillog_file = {self.log}
maillog_file_prefixes = {self.root}
smtputf8_enable = yes
biff = no
alias_maps =
alias_database =
"""
        )
        (self.conf / "master.cf").write_text(MASTER_CF.format(listen=f"127.0.0.1:{self.port}"))
        for name in ("main.cf", "master.cf"):
            (self.conf / name).chmod(0o644)

    def _postfix(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "MAIL_CONFIG": str(self.conf)}
        return subprocess.run(
            ["postfix", "-c", str(self.conf), *args], env=env, capture_output=True, text=True, timeout=60
        )

    def start(self) -> None:
        self.write_config()
        self._postfix("set-permissions")  # creates the queue directories with Postfix's owners and modes
        result = self._postfix("start")
        if result.returncode != 0:
            raise RuntimeError(f"postfix did not start: {result.stdout}{result.stderr}")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.1)
        tail = self.log.read_text()[-2000:] if self.log.exists() else ""
        raise RuntimeError("postfix smtpd did not listen: " + tail)

    def master_pid(self) -> int | None:
        pidfile = self.root / "queue" / "pid" / "master.pid"
        try:
            return int(pidfile.read_text().strip())
        except (OSError, ValueError):
            return None

    def stop(self) -> None:
        self._postfix("stop")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            pid = self.master_pid()
            if pid is None or not Path(f"/proc/{pid}").exists():
                return
            time.sleep(0.1)
        pid = self.master_pid()
        if pid is not None:
            subprocess.run(["postfix", "-c", str(self.conf), "abort"], capture_output=True)
