"""Readable text from what Windows PowerShell writes to a redirected stderr.

``powershell.exe -EncodedCommand ...`` with stderr redirected (as under WinRS) does not write
its error stream as text: it writes a line ``#< CLIXML`` followed by serialized objects, e.g.

    #< CLIXML
    <Objs Version="1.1.0.1" xmlns="http://schemas.microsoft.com/powershell/2004/04">
      <Obj S="progress" RefId="0">...</Obj>
      <S S="Error">Write-Error : boom_x000D__x000A_</S>
      <S S="Error">At line:1 char:1_x000D__x000A_</S> ...
    </Objs>

``readable_stderr`` turns that into the lines a console would have shown (errors, warnings,
verbose and debug text), drops progress records, and passes plain text through unchanged;
``stderr_summary`` picks the line worth showing in a one-line result message.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

MARKER = "#< CLIXML"
NAMESPACE = "{http://schemas.microsoft.com/powershell/2004/04}"
ESCAPE = re.compile(r"_x([0-9A-Fa-f]{4})_")
# Where PowerShell's error view says *where* an error happened, not what it was.
POSITION = re.compile(r"^(At line:\d+|At [^\n]*:\d+ char:\d+|\+ |\s+\+ (CategoryInfo|FullyQualifiedErrorId)\b"
                      r"|\s*~+\s*$)")
STREAM_PREFIX = {"Error": "", "Warning": "WARNING: ", "Verbose": "VERBOSE: ", "Debug": "DEBUG: ",
                 "Information": ""}


def unescape(text: str) -> str:
    """Undo PowerShell's ``_xHHHH_`` escaping of characters XML cannot carry (CR, LF, control characters)."""
    return ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), text)


def clixml_lines(document: str) -> list[str]:
    """The text lines of the stream records in one ``<Objs>`` document; progress records are skipped."""
    # ElementTree expands no external entities; the document comes from the host we are testing.
    root = ET.fromstring(document)  # noqa: S314
    text = ""
    for element in root:
        if element.tag != NAMESPACE + "S":
            continue  # <Obj S="progress"> and other objects carry no console text
        stream = element.get("S", "")
        text += STREAM_PREFIX.get(stream, "") + unescape(element.text or "")
    return text.replace("\r\n", "\n").split("\n")


def readable_stderr(raw: bytes) -> str:
    """``raw`` stderr with every CLIXML block decoded to the lines a console would show.

    A block that does not parse is kept as it came, so nothing the host said is lost.
    """
    text = raw.decode("utf-8", "replace").lstrip("\ufeff")
    lines: list[str] = []
    for line in text.replace("\r\n", "\n").split("\n"):
        stripped = line.strip()
        if stripped == MARKER:
            continue
        if stripped.startswith("<Objs"):
            try:
                lines.extend(clixml_lines(stripped))
                continue
            except ET.ParseError:
                pass
        lines.append(line)
    return "\n".join(lines).strip("\n")


def stderr_summary(raw: bytes) -> str:
    """The last line of ``raw`` stderr that says what went wrong (not where), decoded from CLIXML."""
    meaningful = [line.strip() for line in readable_stderr(raw).split("\n")
                  if line.strip() and not POSITION.match(line)]
    return meaningful[-1] if meaningful else ""
