"""The HTTP(S) listener on ``/wsman`` and :class:`WinRMEndpoint`, the API tests use.

Example::

    with WinRMEndpoint(users={"user": "pass"}, https=False) as ep:
        session = winrm.Session(ep.url, auth=("user", "pass"), transport="ntlm")
        assert session.run_cmd("echo hi").std_out == b"hi\\n"
        assert ep.counters.shells_created == 1
"""

from __future__ import annotations

import ipaddress
import logging
import shutil
import socket
import ssl
import tempfile
import threading
from collections.abc import Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from urllib.parse import urlsplit

from spnego.channel_bindings import GssChannelBindings

from . import certs, encryption
from .auth import CbtPolicy, ConnectionAuth, UserStore, environment_snapshot
from .counters import Counters, CounterStore
from .service import CallContext, WSManService
from .shells import ShellRegistry

log = logging.getLogger(__name__)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], endpoint: WinRMEndpoint) -> None:
        super().__init__(address, _Handler, bind_and_activate=False)
        self.endpoint = endpoint

    def handle_error(self, request: object, client_address: object) -> None:
        log.debug("connection from %s failed", client_address, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "Microsoft-HTTPAPI/2.0"
    sys_version = ""
    server: _Server

    def setup(self) -> None:
        endpoint = self.server.endpoint
        if endpoint.ssl_context is not None:
            self.request.settimeout(10.0)  # a client that never completes the handshake
            self.request = endpoint.ssl_context.wrap_socket(self.request, server_side=True)
            self.request.settimeout(None)
        super().setup()
        endpoint._connection_opened(self.connection)
        self.auth = endpoint._new_connection_auth()

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.endpoint._connection_closed(self.connection)
            if isinstance(self.request, ssl.SSLSocket):  # socketserver only closes the raw socket
                self.request.close()

    def log_message(self, format: str, *args: object) -> None:
        log.debug("%s " + format, self.client_address[0], *args)

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = b""
            while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                body += self.rfile.read(size)
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                pass
            return body
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _reply(self, status: int, body: bytes = b"", headers: Sequence[tuple[str, str]] = ()) -> None:
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _machine(self) -> str:
        """The host name the client addressed (Host header without port), for WSManFault/@Machine."""
        host = self.headers.get("Host") or self.server.endpoint.host
        if host.startswith("["):
            return host[1 : host.find("]")]
        return host.rsplit(":", 1)[0] if host.count(":") == 1 else host

    def _deny(self) -> None:
        self.server.endpoint._count("auth_rejections")
        self._reply(401, headers=[("WWW-Authenticate", scheme) for scheme in self.auth.offered])

    def do_GET(self) -> None:
        self.server.endpoint._count("http_requests")
        self._read_body()
        self._reply(405, headers=[("Allow", "POST")])

    def do_POST(self) -> None:
        endpoint = self.server.endpoint
        endpoint._count("http_requests")
        body = self._read_body()
        if urlsplit(self.path).path.rstrip("/").lower() != endpoint.path.lower():
            self._reply(404)
            return
        result = self.auth.authenticate(self.headers.get("Authorization"))
        if result.status == "continue":
            self._reply(401, headers=[("WWW-Authenticate", result.header or "Negotiate")])
            return
        if result.status == "denied" or result.user is None:
            self._deny()
            return
        extra = [("WWW-Authenticate", result.header)] if result.header else []
        content_type = self.headers.get("Content-Type", "")
        context = self.auth.session_context
        encrypted = encryption.is_encrypted(content_type)
        if encrypted:
            if context is None:
                self._reply(400, headers=extra)
                return
            try:
                body = encryption.unwrap(body, content_type, context)
            except encryption.EncryptionError:
                log.debug("rejecting a body that does not unseal", exc_info=True)
                self._reply(400, headers=extra)
                return
            endpoint._count("encrypted_messages")
        elif body and context is not None and endpoint.ssl_context is None and not endpoint.allow_unencrypted:
            self._deny()  # AllowUnencrypted=false: plaintext SOAP over HTTP is refused
            return
        if not body:
            self._reply(200, headers=extra)
            return
        ctx = CallContext(user=result.user, client_ip=self.client_address[0], machine=self._machine())
        status, response = endpoint.service.handle(body, ctx)
        if encrypted and context is not None:
            response = encryption.wrap(response, context)
            extra.append(("Content-Type", encryption.CONTENT_TYPE))
        else:
            extra.append(("Content-Type", "application/soap+xml;charset=UTF-8"))
        self._reply(status, response, extra)


class WinRMEndpoint:
    """A WS-Management (WinRM) listener on a loopback port, serving the cmd shell resource.

    ``users`` maps ``user`` or ``DOMAIN\\user`` to passwords. NTLM/Negotiate (with
    message encryption over HTTP) are always accepted; Basic only over HTTPS or when
    ``allow_unencrypted`` is set. Quotas, a delayed first listen
    (``refuse_connections_for``: connections are refused until then, like a booting
    host) and :meth:`reboot`/:meth:`drop_shell`/:meth:`drop_command` model failures.
    ``activity_ids`` adds the ``p:ActivityId`` header some hosts send; ``oem_codepage`` is
    the code page of shells created without ``WINRS_CODEPAGE``. Use as a context manager or call
    :meth:`start`/:meth:`stop`.
    """

    def __init__(
        self,
        users: Mapping[str, str] | None = None,
        *,
        https: bool = False,
        host: str = "127.0.0.1",
        port: int = 0,
        path: str = "/wsman",
        auth_schemes: Sequence[str] = ("Negotiate",),
        allow_unencrypted: bool = False,
        channel_binding: CbtPolicy = "relaxed",
        max_shells_per_user: int = 30,
        max_operations_per_shell: int = 1500,
        refuse_connections_for: float = 0.0,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        receive_linger: float = 0.1,
        activity_ids: bool = False,
        oem_codepage: int = 437,
    ) -> None:
        if host != "localhost" and not ipaddress.ip_address(host).is_loopback:
            raise ValueError(f"the test endpoint only listens on loopback addresses, not {host}")
        self.users = dict(users if users is not None else {"user": "pass"})
        self.https = https
        self.host = host
        self.path = "/" + path.strip("/")
        self.auth_schemes = tuple(auth_schemes)
        self.allow_unencrypted = allow_unencrypted
        self.channel_binding: CbtPolicy = channel_binding
        self.max_shells_per_user = max_shells_per_user
        self.max_operations_per_shell = max_operations_per_shell
        self.refuse_connections_for = refuse_connections_for
        self.env = dict(env or {})
        self.cwd = cwd
        self.receive_linger = receive_linger
        self.activity_ids = activity_ids
        self.oem_codepage = oem_codepage
        self.ssl_context: ssl.SSLContext | None = None
        self.tls: certs.TlsMaterial | None = None
        self._port = port
        self._lock = threading.RLock()
        self._counters = CounterStore()
        self._connections: set[socket.socket] = set()
        self._server: _Server | None = None
        self._timer: threading.Timer | None = None
        self._serving = False
        self._listening = threading.Event()
        self._workdir: Path | None = None
        self._bindings: GssChannelBindings | None = None

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> WinRMEndpoint:
        """Bind the port, prepare credentials/TLS and listen (now or after ``refuse_connections_for``)."""
        self._workdir = Path(tempfile.mkdtemp(prefix="winrm-endpoint-"))
        self._store = UserStore(self.users, self._workdir)
        if self.https:
            ips = (self.host,) if self.host != "localhost" else ()
            self.tls = certs.generate(self._workdir / "tls", ip_addresses=ips)
            self.ssl_context = self.tls.server_context()
            binding = b"tls-server-end-point:" + self.tls.end_point_hash()
            self._bindings = GssChannelBindings(application_data=binding)
        home = self._workdir / "home"
        home.mkdir()
        self.registry = ShellRegistry(
            base_env={**environment_snapshot(), **self.env},
            default_cwd=self.cwd or str(home),
            max_shells_per_user=self.max_shells_per_user,
            max_operations_per_shell=self.max_operations_per_shell,
            on_event=self._count,
        )
        self.service = WSManService(
            self.registry,
            receive_linger=self.receive_linger,
            on_fault=lambda: self._count("faults"),
            activity_ids=self.activity_ids,
            oem_codepage=self.oem_codepage,
        )
        self._open(self.refuse_connections_for)
        return self

    def stop(self) -> None:
        """Stop listening, drop every connection, kill every process, remove temp files."""
        self._close()
        if hasattr(self, "registry"):
            self.registry.drop()
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    def __enter__(self) -> WinRMEndpoint:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _open(self, delay: float) -> None:
        server = _Server((self.host, self._port), self)
        server.server_bind()  # the port is ours from now on; connecting is refused until listen()
        self._port = server.server_address[1]
        with self._lock:
            self._server = server
            self._listening.clear()
            if delay > 0:
                self._timer = threading.Timer(delay, self._activate, args=(server,))
                self._timer.daemon = True
                self._timer.start()
            else:
                self._activate(server)

    def _activate(self, server: _Server) -> None:
        with self._lock:
            if self._server is not server:
                return
            server.server_activate()
            threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
            self._serving = True
            self._listening.set()

    def _close(self) -> None:
        with self._lock:
            server, self._server = self._server, None
            serving, self._serving = self._serving, False
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self._listening.clear()
            connections = list(self._connections)
        if server is not None:
            if serving:
                server.shutdown()
            server.server_close()
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    # -- fault simulation ----------------------------------------------------------------------

    def reboot(self, downtime: float) -> None:
        """Simulate a host reboot: drop connections and shells, refuse connections for ``downtime`` s."""
        self._close()
        self.registry.drop()
        self._open(downtime)

    def drop_shell(self, shell_id: str | None = None) -> int:
        """Make one shell (or all, when None) vanish mid-run; later use gets InvalidSelectors."""
        return self.registry.drop(shell_id)

    def drop_command(self, shell_id: str, command_id: str) -> bool:
        """Make one command vanish from its live shell: Receive, Send and Signal on it get the
        unknown-CommandId fault (InvalidSelectors, no ShellId in the message). False if there was none."""
        return self.registry.drop_command(shell_id, command_id)

    def command_ids(self) -> list[tuple[str, str]]:
        """(ShellId, CommandId) of every command the live shells know."""
        return self.registry.command_ids()

    def wait_listening(self, timeout: float = 10.0) -> bool:
        """Block until the listener accepts connections; False on timeout."""
        return self._listening.wait(timeout)

    # -- observation ---------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The TCP port (fixed at :meth:`start`, kept across :meth:`reboot`)."""
        return self._port

    @property
    def scheme(self) -> str:
        return "https" if self.https else "http"

    @property
    def url(self) -> str:
        """The endpoint URL clients connect to, e.g. ``http://127.0.0.1:41234/wsman``."""
        return f"{self.scheme}://{self.host}:{self.port}{self.path}"

    @property
    def ca_path(self) -> Path | None:
        """PEM of the CA that signed the HTTPS certificate (None over HTTP)."""
        return self.tls.ca_path if self.tls else None

    @property
    def counters(self) -> Counters:
        """A snapshot of the request/shell/command counters."""
        return self._counters.snapshot()

    def reset_counters(self) -> None:
        self._counters.reset()

    def shell_ids(self) -> list[str]:
        """ShellIds currently alive."""
        return self.registry.ids()

    # -- internals used by the handler ---------------------------------------------------------

    def _count(self, name: str) -> None:
        self._counters.add(name)

    def _connection_opened(self, conn: socket.socket) -> None:
        self._count("connections")
        with self._lock:
            self._connections.add(conn)

    def _connection_closed(self, conn: socket.socket) -> None:
        with self._lock:
            self._connections.discard(conn)

    def _new_connection_auth(self) -> ConnectionAuth:
        return ConnectionAuth(
            self._store,
            allow_basic=self.https or self.allow_unencrypted,
            offered=self.auth_schemes,
            channel_bindings=self._bindings,
            cbt_policy=self.channel_binding,
            on_logon=lambda kind: self._count("logons_" + kind),
        )
