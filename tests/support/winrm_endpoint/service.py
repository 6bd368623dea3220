"""WS-Management actions of the Windows Remote Shell resource: Create, Command, Send,
Receive, Signal, Delete (and Get of a shell), answered like a Windows host answers them.
"""

from __future__ import annotations

import base64
import binascii
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass

from . import faults
from .shells import DEFAULT_OEM_CODEPAGE, Command, CommandGone, Received, Shell, ShellGone, ShellRegistry, ShellSpec
from .soap import (
    CMD_RESOURCE_URI,
    ENVELOPE_PREFIXES,
    NS,
    SHELL,
    TRANSFER,
    SoapFault,
    SoapParseError,
    WSManRequest,
    attr,
    envelope,
    format_elapsed,
    format_timeout,
    parse_duration,
    parse_request,
    peek_message_id,
    q,
    render_fault,
    text,
)

DEFAULT_IDLE_TIMEOUT = 7200.0
STATE_DONE = SHELL + "/CommandState/Done"
STATE_RUNNING = SHELL + "/CommandState/Running"


@dataclass(frozen=True)
class CallContext:
    """Who is calling: the authenticated user, their address and the host name they used."""

    user: str
    client_ip: str
    machine: str


class WSManService:
    """Turns request envelopes into response envelopes, backed by a :class:`ShellRegistry`."""

    def __init__(
        self,
        registry: ShellRegistry,
        *,
        receive_linger: float,
        on_fault: Callable[[], None],
        activity_ids: bool = False,
        oem_codepage: int = DEFAULT_OEM_CODEPAGE,
    ) -> None:
        self.registry = registry
        self.oem_codepage = oem_codepage
        self.receive_linger = receive_linger
        self.activity_ids = activity_ids
        self._on_fault = on_fault

    def handle(self, data: bytes, ctx: CallContext) -> tuple[int, bytes]:
        """Process one SOAP request; returns (HTTP status, response envelope).

        Faults come back with status 500 like on Windows; every response carries
        ``a:RelatesTo`` = the request's MessageID.
        """
        try:
            request = parse_request(data)
        except SoapParseError as err:
            self._on_fault()
            fault = faults.schema_validation(str(err))
            return 500, render_fault(fault, peek_message_id(data), ctx.machine, self.activity_ids)
        try:
            return 200, self._dispatch(request, ctx)
        except SoapFault as fault:
            self._on_fault()
            return 500, render_fault(fault, request.message_id, ctx.machine, self.activity_ids)

    def _dispatch(self, req: WSManRequest, ctx: CallContext) -> bytes:
        resource = req.resource_uri.lower()
        if resource not in (CMD_RESOURCE_URI.lower(), SHELL.lower()):
            raise faults.resource_not_found(req.resource_uri)
        handlers: dict[str, Callable[[WSManRequest, CallContext], tuple[str, str, str]]] = {
            TRANSFER + "/Create": self._create,
            TRANSFER + "/Get": self._get,
            TRANSFER + "/Delete": self._delete,
            SHELL + "/Command": self._command,
            SHELL + "/Send": self._send,
            SHELL + "/Receive": self._receive,
            SHELL + "/Signal": self._signal,
        }
        handler = handlers.get(req.action)
        if handler is None:
            raise faults.action_not_supported(req.action)
        action, body, kind = handler(req, ctx)
        return envelope(action, req.message_id, body, ENVELOPE_PREFIXES[kind], self.activity_ids)

    def _body(self, req: WSManRequest, prefix: str, local: str) -> ET.Element:
        if req.body is None or req.body.tag != q(prefix, local):
            raise faults.schema_validation(f"the body must be a {prefix}:{local} element.")
        return req.body

    # -- WS-Transfer ---------------------------------------------------------------------------

    def _create(self, req: WSManRequest, ctx: CallContext) -> tuple[str, str, str]:
        body = self._body(req, "rsp", "Shell")

        def child(local: str) -> str | None:
            el = body.find(q("rsp", local))
            return None if el is None else (el.text or "").strip()

        variables = body.findall(f"{q('rsp', 'Environment')}/{q('rsp', 'Variable')}")
        env = {v.get("Name", ""): v.text or "" for v in variables}
        idle = child("IdleTimeOut")
        codepage = req.options.get("WINRS_CODEPAGE")
        if codepage is not None and not codepage.isdigit():
            raise faults.invalid_codepage(codepage)
        spec = ShellSpec(
            input_streams=child("InputStreams") or "stdin",
            output_streams=child("OutputStreams") or "stdout stderr",
            environment=env,
            working_directory=child("WorkingDirectory"),
            idle_timeout=parse_duration(idle, DEFAULT_IDLE_TIMEOUT) if idle else None,
            shell_id=body.get("ShellId"),
            options=dict(req.options),
            codepage=int(codepage) if codepage else self.oem_codepage,
        )
        shell = self.registry.create(ctx.user, ctx.client_ip, spec)
        created = (
            f"<x:ResourceCreated><a:Address>{text(req.to)}</a:Address><a:ReferenceParameters>"
            f"<w:ResourceURI>{CMD_RESOURCE_URI}</w:ResourceURI><w:SelectorSet>"
            f'<w:Selector Name="ShellId">{text(shell.id)}</w:Selector></w:SelectorSet>'
            "</a:ReferenceParameters></x:ResourceCreated>"
        )
        return TRANSFER + "/CreateResponse", created + _shell_xml(shell), "with_transfer"

    def _get(self, req: WSManRequest, ctx: CallContext) -> tuple[str, str, str]:
        shell = self.registry.get(req.selectors.get("ShellId"))
        return TRANSFER + "/GetResponse", _shell_xml(shell), "with_transfer"

    def _delete(self, req: WSManRequest, ctx: CallContext) -> tuple[str, str, str]:
        self.registry.delete(req.selectors.get("ShellId"))
        return TRANSFER + "/DeleteResponse", "", "delete"

    # -- Windows Remote Shell ------------------------------------------------------------------

    def _command(self, req: WSManRequest, ctx: CallContext) -> tuple[str, str, str]:
        shell = self.registry.get(req.selectors.get("ShellId"))
        body = self._body(req, "rsp", "CommandLine")
        command = body.find(q("rsp", "Command"))
        program = (command.text or "").strip() if command is not None else ""
        arguments = [arg.text or "" for arg in body.findall(q("rsp", "Arguments"))]
        skip_cmd_shell = req.options.get("WINRS_SKIP_CMD_SHELL", "false").lower() == "true"
        started = self.registry.start_command(shell, program, arguments, body.get("CommandId"), skip_cmd_shell)
        response = f"<rsp:CommandResponse><rsp:CommandId>{text(started.id)}</rsp:CommandId></rsp:CommandResponse>"
        return SHELL + "/CommandResponse", response, "with_transfer"

    def _send(self, req: WSManRequest, ctx: CallContext) -> tuple[str, str, str]:
        shell = self.registry.get(req.selectors.get("ShellId"))
        body = self._body(req, "rsp", "Send")
        for stream in body.findall(q("rsp", "Stream")):
            if stream.get("Name", "") not in shell.spec.input_streams.split():
                raise faults.invalid_parameter()
            try:
                data = base64.b64decode((stream.text or "").strip(), validate=True)
            except binascii.Error as err:
                raise faults.invalid_parameter() from err
            end = stream.get("End", "false").lower() == "true"
            shell.command(stream.get("CommandId")).send(data, end)
        return SHELL + "/SendResponse", "<rsp:SendResponse/>", "with_transfer"

    def _receive(self, req: WSManRequest, ctx: CallContext) -> tuple[str, str, str]:
        shell = self.registry.get(req.selectors.get("ShellId"))
        desired = self._body(req, "rsp", "Receive").find(q("rsp", "DesiredStream"))
        if desired is None:
            raise faults.schema_validation("rsp:Receive needs a rsp:DesiredStream.")
        command = shell.command(desired.get("CommandId"))
        streams = (desired.text or "").split() or shell.spec.output_streams.split()
        budget = max(4096, int((req.max_envelope_size - 4096) * 0.7))
        try:
            got = command.receive(streams, req.operation_timeout, budget, self.receive_linger)
        except ShellGone:
            raise faults.shell_not_found(shell.id) from None
        except CommandGone:
            raise faults.command_not_found() from None
        if got is None:
            raise faults.timed_out()
        return SHELL + "/ReceiveResponse", _receive_xml(command, got), "receive"

    def _signal(self, req: WSManRequest, ctx: CallContext) -> tuple[str, str, str]:
        shell = self.registry.get(req.selectors.get("ShellId"))
        body = self._body(req, "rsp", "Signal")
        code = body.find(q("rsp", "Code"))
        shell.command(body.get("CommandId")).signal((code.text or "").strip() if code is not None else "")
        return SHELL + "/SignalResponse", "<rsp:SignalResponse/>", "with_transfer"


def _shell_xml(shell: Shell) -> str:
    """The ``rsp:Shell`` description Windows returns from Create (and Get)."""
    spec = shell.spec
    parts = [
        f"<rsp:ShellId>{text(shell.id)}</rsp:ShellId>",
        f"<rsp:ResourceUri>{CMD_RESOURCE_URI}</rsp:ResourceUri>",
        f"<rsp:Owner>{text(shell.owner)}</rsp:Owner>",
        f"<rsp:ClientIP>{text(shell.client_ip)}</rsp:ClientIP>",
    ]
    if spec.environment:
        # Windows echoes the variables, dropping backslashes from the names (seen in recordings).
        variables = "".join(
            f"<rsp:Variable Name={attr(name.replace(chr(92), ''))}>{text(value)}</rsp:Variable>"
            for name, value in spec.environment.items()
        )
        parts.append(f"<rsp:Environment>{variables}</rsp:Environment>")
    if spec.working_directory:
        parts.append(f"<rsp:WorkingDirectory>{text(spec.working_directory)}</rsp:WorkingDirectory>")
    now = time.monotonic()
    idle = spec.idle_timeout if spec.idle_timeout is not None else DEFAULT_IDLE_TIMEOUT
    parts += [
        f"<rsp:IdleTimeOut>{format_timeout(idle)}</rsp:IdleTimeOut>",
        f"<rsp:InputStreams>{text(spec.input_streams)}</rsp:InputStreams>",
        f"<rsp:OutputStreams>{text(spec.output_streams)}</rsp:OutputStreams>",
        f"<rsp:ShellRunTime>{format_elapsed(now - shell.created)}</rsp:ShellRunTime>",
        f"<rsp:ShellInactivity>{format_elapsed(now - shell.last_activity)}</rsp:ShellInactivity>",
    ]
    return f"<rsp:Shell xmlns:rsp={attr(NS['rsp'])}>{''.join(parts)}</rsp:Shell>"


def _receive_xml(command: Command, got: Received) -> str:
    """The ``rsp:ReceiveResponse`` body: data streams, End markers, then CommandState."""
    cid = attr(command.id)
    out = [
        f"<rsp:Stream Name={attr(name)} CommandId={cid}>{base64.b64encode(data).decode()}</rsp:Stream>"
        for name, data in got.chunks
    ]
    out += [f'<rsp:Stream Name={attr(name)} CommandId={cid} End="true"></rsp:Stream>' for name in got.ended]
    if got.done:
        out.append(
            f'<rsp:CommandState CommandId={cid} State="{STATE_DONE}">'
            f"<rsp:ExitCode>{got.exit_code}</rsp:ExitCode></rsp:CommandState>"
        )
    else:
        out.append(f'<rsp:CommandState CommandId={cid} State="{STATE_RUNNING}"></rsp:CommandState>')
    return f"<rsp:ReceiveResponse>{''.join(out)}</rsp:ReceiveResponse>"
