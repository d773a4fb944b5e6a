"""A scripted SMTP/LMTP next hop on loopback: a real TCP server speaking the protocol line by line (so pipelined
commands are read and answered in order, as a real server does), whose replies each test chooses. It records every
connection, command and accepted message, so a test can see what the client really sent."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Script:
    """Replies by command. `mail(connection_no, mail_no)` (mail_no: the n-th MAIL of the connection, from 0)
    answers MAIL FROM (a 421 also closes the connection); `rcpt` by address; `data` answers DATA; `final` the end
    of the content, by recipient for LMTP (one reply each) or under "*" for SMTP."""

    lmtp: bool = True
    extensions: tuple[str, ...] = ("PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES")
    mail: Callable[[int, int], str] = lambda conn, txn: "250 2.1.0 ok"
    rcpt: dict[str, str] = field(default_factory=dict)
    data: str = "354 go ahead"
    final: dict[str, str] = field(default_factory=dict)


@dataclass
class Received:
    connection: int
    mail_from: str
    recipients: list[str]
    body: bytes


class ScriptedPeer:
    def __init__(self, script: Script) -> None:
        self.script = script
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.commands: list[tuple[int, str]] = []  # upper-cased
        self.received: list[Received] = []
        self._threads: list[threading.Thread] = []
        self._accept = threading.Thread(target=self._serve, daemon=True)
        self._accept.start()

    @property
    def url(self) -> str:
        return f"{'lmtp' if self.script.lmtp else 'smtp'}://127.0.0.1:{self.port}"

    def close(self) -> None:
        self.sock.close()
        for t in self._threads:
            t.join(5)

    def __enter__(self) -> ScriptedPeer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            t = threading.Thread(target=self._session, args=(conn, self.connections), daemon=True)
            t.start()
            self._threads.append(t)

    def _session(self, conn: socket.socket, number: int) -> None:
        script = self.script
        reader = conn.makefile("rb")

        def say(*lines: str) -> None:
            conn.sendall("".join(f"{line}\r\n" for line in lines).encode())

        say("220 scripted peer")
        txn = 0
        mail_from: str | None = None
        accepted: list[str] = []
        try:
            while True:
                line = reader.readline()
                if not line:
                    return
                command = line.decode("utf-8", "replace").rstrip("\r\n")
                self.commands.append((number, command.upper()))
                verb = command.split(" ", 1)[0].split(":", 1)[0].upper()
                if verb in ("EHLO", "LHLO"):
                    names = ["scripted.peer", *script.extensions]
                    say(*[f"250-{n}" for n in names[:-1]], f"250 {names[-1]}")
                elif verb == "HELO":
                    say("250 scripted.peer")
                elif verb == "MAIL":
                    reply = script.mail(number, txn)
                    txn += 1
                    say(reply)
                    if reply.startswith("421"):
                        return
                    if reply.startswith("2"):
                        mail_from, accepted = command.split(":", 1)[1].split(" ")[0].strip("<>"), []
                elif verb == "RCPT":
                    if mail_from is None:
                        say("503 5.5.1 MAIL first")
                        continue
                    address = command.split(":", 1)[1].strip().strip("<>")
                    reply = script.rcpt.get(address, "250 2.1.5 ok")
                    if reply.startswith("2"):
                        accepted.append(address)
                    say(reply)
                elif verb == "DATA":
                    if mail_from is None or not accepted:
                        say("554 5.5.1 no valid recipients")
                        continue
                    say(script.data)
                    if not script.data.startswith("354"):
                        continue
                    body = bytearray()
                    while (chunk := reader.readline()) not in (b".\r\n", b""):
                        body += chunk
                    self.received.append(Received(number, mail_from, list(accepted), bytes(body)))
                    if script.lmtp:
                        say(*[script.final.get(r, "250 2.0.0 ok") for r in accepted])
                    else:
                        say(script.final.get("*", "250 2.0.0 queued"))
                    mail_from, accepted = None, []
                elif verb == "RSET":
                    mail_from, accepted = None, []
                    say("250 2.0.0 reset")
                elif verb == "QUIT":
                    say("221 2.0.0 bye")
                    return
                else:
                    say("500 5.5.2 unknown command")
        except OSError:
            return
        finally:
            reader.close()
            conn.close()
