"""SOAP/WS-Management envelope parsing and rendering, shaped like a Windows host's.

Requests are parsed with ElementTree into a :class:`WSManRequest`. Responses are
rendered as text so that prefixes, namespace declarations and element order match
what a real Windows Remote Management service sends (see the recordings under
``$LAB_REFERENCE_DIR/winrm-recordings``, tests/support/labfiles.py).
"""

from __future__ import annotations

import re
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, field
from xml.sax.saxutils import escape, quoteattr

NS: dict[str, str] = {
    "s": "http://www.w3.org/2003/05/soap-envelope",
    "a": "http://schemas.xmlsoap.org/ws/2004/08/addressing",
    "x": "http://schemas.xmlsoap.org/ws/2004/09/transfer",
    "e": "http://schemas.xmlsoap.org/ws/2004/08/eventing",
    "n": "http://schemas.xmlsoap.org/ws/2004/09/enumeration",
    "w": "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd",
    "rsp": "http://schemas.microsoft.com/wbem/wsman/1/windows/shell",
    "p": "http://schemas.microsoft.com/wbem/wsman/1/wsman.xsd",
    "f": "http://schemas.microsoft.com/wbem/wsman/1/wsmanfault",
}
ANONYMOUS = "http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous"
TRANSFER = NS["x"]
SHELL = NS["rsp"]
CMD_RESOURCE_URI = SHELL + "/cmd"
FAULT_ACTION = "http://schemas.dmtf.org/wbem/wsman/1/wsman/fault"

#: The namespace declarations a Windows host puts on each kind of response envelope.
ENVELOPE_PREFIXES: dict[str, tuple[str, ...]] = {
    "with_transfer": ("s", "a", "x", "w", "rsp", "p"),
    "receive": ("s", "a", "w", "rsp", "p"),
    "delete": ("s", "a", "w", "p"),
    "fault": ("s", "a", "x", "e", "n", "w", "p"),
}

_DURATION = re.compile(r"^P(?:(?P<d>\d+)D)?(?:T(?:(?P<h>\d+)H)?(?:(?P<m>\d+)M)?(?:(?P<s>\d+(?:\.\d+)?)S)?)?$")


class SoapParseError(ValueError):
    """The request body is not a SOAP envelope this endpoint can read."""


def q(prefix: str, local: str) -> str:
    """Return the ElementTree (Clark) name ``{namespace}local`` for a known prefix."""
    return f"{{{NS[prefix]}}}{local}"


def parse_duration(text: str | None, default: float) -> float:
    """Parse an xs:duration such as ``PT20S``/``PT20.000S``/``P0DT0H1M0S`` into seconds.

    Returns ``default`` when ``text`` is missing or not a duration.
    """
    if not text:
        return default
    match = _DURATION.match(text.strip())
    if match is None:
        return default
    parts = {k: float(v) if v else 0.0 for k, v in match.groupdict().items()}
    return parts["d"] * 86400 + parts["h"] * 3600 + parts["m"] * 60 + parts["s"]


def format_timeout(seconds: float) -> str:
    """Render seconds the way Windows echoes an IdleTimeOut: ``PT7200.000S``."""
    return f"PT{seconds:.3f}S"


def format_elapsed(seconds: float) -> str:
    """Render elapsed seconds the way Windows reports ShellRunTime: ``P0DT0H0M5S``."""
    total = int(seconds)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    return f"P{days}DT{hours}H{minutes}M{secs}S"


def new_id() -> str:
    """A fresh upper-case GUID, the form Windows uses for ShellId/CommandId."""
    return str(uuid.uuid4()).upper()


@dataclass
class WSManRequest:
    """The parts of a WS-Management request the endpoint acts on."""

    action: str
    message_id: str | None
    resource_uri: str
    to: str
    operation_timeout: float
    max_envelope_size: int
    selectors: dict[str, str] = field(default_factory=dict)
    options: dict[str, str] = field(default_factory=dict)
    body: ET.Element | None = None


def _text(parent: ET.Element, tag: str) -> str | None:
    element = parent.find(tag)
    if element is None or element.text is None:
        return None
    return element.text.strip()


def parse_request(data: bytes, default_timeout: float = 60.0) -> WSManRequest:
    """Parse a SOAP envelope; raise :class:`SoapParseError` if it is not one.

    The operation timeout defaults to ``default_timeout`` seconds when the
    request has no ``w:OperationTimeout`` (Windows' own default is 60 s).
    """
    try:
        root = ET.fromstring(data)
    except ET.ParseError as err:
        raise SoapParseError(f"not XML: {err}") from err
    header = root.find(q("s", "Header"))
    body = root.find(q("s", "Body"))
    if root.tag != q("s", "Envelope") or header is None or body is None:
        raise SoapParseError("not a SOAP 1.2 envelope with Header and Body")
    selectors = {
        el.get("Name", ""): (el.text or "").strip()
        for el in header.findall(f"{q('w', 'SelectorSet')}/{q('w', 'Selector')}")
    }
    options = {
        el.get("Name", ""): (el.text or "").strip()
        for el in header.findall(f"{q('w', 'OptionSet')}/{q('w', 'Option')}")
    }
    size_text = _text(header, q("w", "MaxEnvelopeSize"))
    children = list(body)
    return WSManRequest(
        action=_text(header, q("a", "Action")) or "",
        message_id=_text(header, q("a", "MessageID")),
        resource_uri=_text(header, q("w", "ResourceURI")) or "",
        to=_text(header, q("a", "To")) or "",
        operation_timeout=parse_duration(_text(header, q("w", "OperationTimeout")), default_timeout),
        max_envelope_size=int(size_text) if size_text and size_text.isdigit() else 153600,
        selectors=selectors,
        options=options,
        body=children[0] if children else None,
    )


def peek_message_id(data: bytes) -> str | None:
    """Best-effort MessageID of a request that may not parse as a whole."""
    match = re.search(rb"<(?:\w+:)?MessageID[^>]*>\s*([^<\s]+)\s*<", data)
    return match.group(1).decode("utf-8", "replace") if match else None


def text(value: str) -> str:
    """Escape character data for an element body."""
    return escape(value)


def attr(value: str) -> str:
    """Quote and escape an attribute value (including the quotes)."""
    return quoteattr(value)


def envelope(
    action: str, relates_to: str | None, body: str, prefixes: Sequence[str], activity_id: bool = False
) -> bytes:
    """Render a response envelope as a Windows host does.

    The header carries ``a:Action``, a fresh ``a:MessageID``, ``a:To`` (anonymous)
    and ``a:RelatesTo`` (the request's MessageID, omitted only when the request had
    none). Some hosts also put a ``p:ActivityId`` after the MessageID: ``activity_id``.
    ``body`` is inserted verbatim inside ``s:Body``.
    """
    decls = " ".join(f"xmlns:{p}={attr(NS[p])}" for p in prefixes)
    relates = f"<a:RelatesTo>{text(relates_to)}</a:RelatesTo>" if relates_to else ""
    activity = f"<p:ActivityId>{new_id()}</p:ActivityId>" if activity_id else ""
    return (
        f'<s:Envelope xml:lang="en-US" {decls}><s:Header>'
        f"<a:Action>{text(action)}</a:Action>"
        f"<a:MessageID>uuid:{new_id()}</a:MessageID>{activity}"
        f"<a:To>{ANONYMOUS}</a:To>{relates}</s:Header>"
        f"<s:Body>{body}</s:Body></s:Envelope>"
    ).encode()


@dataclass
class SoapFault(Exception):
    """A WS-Management fault; rendered by :func:`render_fault` and sent with HTTP 500.

    ``wsman_code`` goes into ``f:WSManFault/@Code`` (or ``p:error_Code`` when
    ``wmi_error`` is set, the form newer hosts use for quota errors).
    """

    code: str
    subcode: str
    reason: str
    wsman_code: int
    message: str
    fault_detail: str | None = None
    provider: tuple[str, str] | None = None
    wmi_error: bool = False

    def __str__(self) -> str:
        return f"{self.subcode} ({self.wsman_code}): {self.message.strip()}"


def _wmi_detail(fault: SoapFault) -> str:
    cim = 'xsi:type="cim:cimString"'
    nil = 'xsi:nil="true"'
    fields = [
        ("CIMStatusCode", 'xsi:type="cim:cimUnsignedInt"', "27"),
        ("CIMStatusCodeDescription", f"{cim} {nil}", None),
        ("ErrorSource", f"{cim} {nil}", None),
        ("ErrorSourceFormat", 'xsi:type="cim:cimUnsignedShort"', "0"),
        ("ErrorType", 'xsi:type="cim:cimUnsignedShort"', "0"),
        ("Message", cim, fault.message),
        ("MessageID", cim, f"HRESULT 0x{fault.wsman_code:08x}"),
        ("OtherErrorSourceFormat", f"{cim} {nil}", None),
        ("OtherErrorType", f"{cim} {nil}", None),
        ("OwningEntity", f"{cim} {nil}", None),
        ("PerceivedSeverity", 'xsi:type="cim:cimUnsignedShort"', "0"),
        ("ProbableCause", 'xsi:type="cim:cimUnsignedShort"', "0"),
        ("ProbableCauseDescription", f"{cim} {nil}", None),
        ("error_Category", 'xsi:type="cim:cimUnsignedInt"', "30"),
        ("error_Code", 'xsi:type="cim:cimUnsignedInt"', str(fault.wsman_code)),
        ("error_Type", cim, "HRESULT"),
        ("error_WindowsErrorMessage", cim, fault.message),
    ]
    inner = "".join(
        f"<p:{name} {attrs} />" if value is None else f"<p:{name} {attrs}>{text(value)}</p:{name}>"
        for name, attrs, value in fields
    )
    return (
        '<p:MSFT_WmiError b:IsCIM_Error="true" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
        'xmlns:b="http://schemas.dmtf.org/wbem/wsman/1/cimbinding.xsd" '
        'xmlns:p="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/MSFT_WmiError" '
        'xmlns:cim="http://schemas.dmtf.org/wbem/wscim/1/common" '
        f'xsi:type="p:MSFT_WmiError_Type">{inner}</p:MSFT_WmiError>'
    )


def render_fault(fault: SoapFault, relates_to: str | None, machine: str, activity_id: bool = False) -> bytes:
    """Render ``fault`` as a complete fault envelope (``a:Action`` = the wsman fault URI)."""
    if fault.wmi_error:
        detail = _wmi_detail(fault)
    else:
        message = text(fault.message)
        if fault.provider is not None:
            name, path = fault.provider
            message = f"<f:ProviderFault provider={attr(name)} path={attr(path)}>{message}</f:ProviderFault>"
        detail_uri = ""
        if fault.fault_detail:
            detail_uri = f"<w:FaultDetail>{text(fault.fault_detail)}</w:FaultDetail>"
        detail = (
            f"{detail_uri}<f:WSManFault xmlns:f={attr(NS['f'])} Code={attr(str(fault.wsman_code))} "
            f"Machine={attr(machine)}><f:Message>{message}</f:Message></f:WSManFault>"
        )
    body = (
        f"<s:Fault><s:Code><s:Value>{text(fault.code)}</s:Value><s:Subcode><s:Value>"
        f"{text(fault.subcode)}</s:Value></s:Subcode></s:Code><s:Reason>"
        f'<s:Text xml:lang="en-US">{text(fault.reason)}</s:Text></s:Reason>'
        f"<s:Detail>{detail}</s:Detail></s:Fault>"
    )
    return envelope(FAULT_ACTION, relates_to, body, ENVELOPE_PREFIXES["fault"], activity_id)
