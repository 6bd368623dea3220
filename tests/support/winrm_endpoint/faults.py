"""The WS-Management faults this endpoint raises, with the codes and wording of real hosts.

Sources: the recordings (InvalidParameter/87), published captures of Windows
responses (TimedOut, InvalidSelectors for an unknown shell and for an unknown command,
the cmd plugin's file-not-found when WINRS_SKIP_CMD_SHELL is set, QuotaLimit,
MSFT_WmiError quota errors) and the ``ERROR_WSMAN_*`` constants of the Windows SDK.
Faults marked *approximated* use the SDK code and the WS-Management subcode but
wording not seen in a capture.

Two faults share code 2150858843 (``w:InvalidSelectors``): a ShellId the host does not
know (its message names that ShellId) and a CommandId it does not know in a live shell
(its message names no id). A client tells "shell lost" from "command gone" by that.
"""

from __future__ import annotations

from .soap import SoapFault

FAULT_DETAIL = "http://schemas.dmtf.org/wbem/wsman/1/wsman/faultDetail/"
CMD_PLUGIN = ("Shell cmd plugin", "%systemroot%\\system32\\winrscmd.dll")

ERROR_WSMAN_OPERATION_TIMEDOUT = 2150858793
ERROR_WSMAN_SHELL_NOT_FOUND = 2150858843
ERROR_WSMAN_QUOTA_MAX_SHELLS = 2150859173
ERROR_WSMAN_QUOTA_MAX_OPERATIONS = 2150859174
ERROR_WSMAN_RESOURCE_NOT_FOUND = 2150858752
ERROR_WSMAN_INVALID_ACTIONURI = 2150858753
ERROR_WSMAN_SCHEMA_VALIDATION = 2150858817
ERROR_INVALID_PARAMETER = 87
# Win32 errors of CreateProcess come back as HRESULTs (0x8007xxxx)
HRESULT_FILE_NOT_FOUND = 0x80070002
HRESULT_DIRECTORY = 0x8007010B

_TIMED_OUT_TEXT = (
    "The WS-Management service cannot complete the operation within the time specified in OperationTimeout.  "
)


def timed_out() -> SoapFault:
    """A Receive found no output within OperationTimeout; clients poll again."""
    return SoapFault(
        code="s:Receiver",
        subcode="w:TimedOut",
        reason=_TIMED_OUT_TEXT,
        wsman_code=ERROR_WSMAN_OPERATION_TIMEDOUT,
        message=_TIMED_OUT_TEXT,
    )


def _invalid_selectors(message: str) -> SoapFault:
    return SoapFault(
        code="s:Sender",
        subcode="w:InvalidSelectors",
        reason=(
            "The WS-Management service cannot process the request because the request contained "
            "invalid selectors for the resource. "
        ),
        wsman_code=ERROR_WSMAN_SHELL_NOT_FOUND,
        message=message,
        fault_detail=FAULT_DETAIL + "UnexpectedSelectors",
    )


def shell_not_found(shell_id: str) -> SoapFault:
    """The ShellId selector names no live shell (never created, deleted or dropped)."""
    return _invalid_selectors(
        f"The request for the Windows Remote Shell with ShellId {shell_id} failed because the shell "
        "was not found on the server. Possible causes are: the specified ShellId is incorrect or the "
        "shell no longer exists on the server. Provide the correct ShellId or create a new shell and "
        "retry the operation. "
    )


def command_not_found() -> SoapFault:
    """The CommandId names no command of this (live) shell: it ended and was cleaned up, or never existed."""
    return _invalid_selectors(
        "The Windows Remote Shell received a request to perform an operation on a command identifier "
        "that does not exist. Either the command has completed execution or the client specified an "
        "invalid command identifier. "
    )


def file_not_found() -> SoapFault:
    """WINRS_SKIP_CMD_SHELL is set and the Command is no file: CreateProcess does not search PATH."""
    return SoapFault(
        code="s:Receiver",
        subcode="w:InternalError",
        reason="The system cannot find the file specified. ",
        wsman_code=HRESULT_FILE_NOT_FOUND,
        message="The system cannot find the file specified. ",
        provider=CMD_PLUGIN,
    )


def invalid_parameter(detail: str = "") -> SoapFault:
    """What the cmd plugin answers for e.g. a Receive without a CommandId (recorded); ``detail`` is appended
    to the message (for the approximated uses)."""
    return SoapFault(
        code="s:Sender",
        subcode="w:InvalidParameter",
        reason="The parameter is incorrect. ",
        wsman_code=ERROR_INVALID_PARAMETER,
        message="The parameter is incorrect. " + detail,
        fault_detail=FAULT_DETAIL + "InvalidValue",
        provider=CMD_PLUGIN,
    )


def shell_quota(limit: int) -> SoapFault:
    """The user already holds MaxShellsPerUser shells."""
    return SoapFault(
        code="s:Sender",
        subcode="w:QuotaLimit",
        reason=(
            "The WS-Management service cannot process the request. The maximum number of concurrent "
            "shells for this user has been exceeded. Close existing shells or raise the quota for this user. "
        ),
        wsman_code=ERROR_WSMAN_QUOTA_MAX_SHELLS,
        message=(
            f"The WS-Management service cannot process the request. This user is allowed a maximum number "
            f"of {limit} concurrent shells, which has been exceeded. Close existing shells or raise the "
            "quota for this user. "
        ),
    )


def operation_quota(limit: int) -> SoapFault:
    """MaxConcurrentOperationsPerUser exceeded, in the MSFT_WmiError form newer hosts send."""
    message = (
        f"The WS-Management service cannot process the request. This user is allowed a maximum number of "
        f"{limit} concurrent operations, which has been exceeded. Close existing operations for this user, "
        "or raise the quota for this user. "
    )
    return SoapFault(
        code="s:Receiver",
        subcode="w:InternalError",
        reason=message,
        wsman_code=ERROR_WSMAN_QUOTA_MAX_OPERATIONS,
        message=message,
        wmi_error=True,
    )


def resource_not_found(resource_uri: str) -> SoapFault:
    """(approximated) The ResourceURI is not the cmd shell this endpoint serves."""
    return SoapFault(
        code="s:Sender",
        subcode="w:DestinationUnreachable",
        reason=(
            "The WS-Management service cannot process the request because the resource URI "
            f"{resource_uri} is not supported. "
        ),
        wsman_code=ERROR_WSMAN_RESOURCE_NOT_FOUND,
        message=(
            "The WS-Management service cannot process the request. The resource URI is not valid or was not found. "
        ),
        fault_detail=FAULT_DETAIL + "InvalidResourceURI",
    )


def action_not_supported(action: str) -> SoapFault:
    """(approximated) The wsa:Action is not one of the shell actions."""
    return SoapFault(
        code="s:Sender",
        subcode="a:ActionNotSupported",
        reason=f"The action {action} is not supported by the service. ",
        wsman_code=ERROR_WSMAN_INVALID_ACTIONURI,
        message="The WS-Management service cannot process the request because the action is not valid. ",
    )


def schema_validation(detail: str) -> SoapFault:
    """(approximated) The body is not the XML the action requires."""
    return SoapFault(
        code="s:Sender",
        subcode="w:SchemaValidationError",
        reason="The SOAP XML in the message does not match the corresponding XML schema definition. "
        "Change the XML and retry. ",
        wsman_code=ERROR_WSMAN_SCHEMA_VALIDATION,
        message=f"The WS-Management service cannot process the request: {detail} ",
    )


def invalid_directory(path: str) -> SoapFault:
    """(approximated) The shell's WorkingDirectory does not exist when a command starts."""
    return SoapFault(
        code="s:Receiver",
        subcode="w:InternalError",
        reason="The directory name is invalid. ",
        wsman_code=HRESULT_DIRECTORY,
        message="The directory name is invalid. ",
        provider=CMD_PLUGIN,
    )


def invalid_codepage(codepage: str) -> SoapFault:
    """(approximated) WINRS_CODEPAGE names a code page the host does not have."""
    return invalid_parameter(f"(WINRS_CODEPAGE {codepage}) ")
