"""Windows PowerShell's CLIXML on stderr becomes readable messages (issue 13, item 2).

The sample is the shape powershell.exe 5.1 writes with -EncodedCommand and redirected stderr: a
progress record (module loading) and the error view of a terminating error, one ``<S S="Error">``
per console line with CR/LF escaped as ``_x000D__x000A_``.
"""

from __future__ import annotations

from pathlib import Path

from lab.checks.clixml import readable_stderr, stderr_summary, unescape
from lab.checks.manifest import parse_results
from lab.model import Check, Status, Suite
from lab.transports.base import CommandResult

OBJS = '<Objs Version="1.1.0.1" xmlns="http://schemas.microsoft.com/powershell/2004/04">'
PROGRESS = ('<Obj S="progress" RefId="0"><TN RefId="0"><T>System.Management.Automation.PSCustomObject</T>'
            '<T>System.Object</T></TN><MS><I64 N="SourceId">1</I64><PR N="Record"><AV>Preparing modules for '
            'first use.</AV><AI>0</AI><Nil /><PI>-1</PI><PC>-1</PC><T>Completed</T><SR>-1</SR><SD> </SD></PR>'
            '</MS></Obj>')
ERROR = ('<S S="Error">Cannot convert value "Grüße" to type "System.Int32"._x000D__x000A_</S>'
         '<S S="Error">At line:42 char:5_x000D__x000A_</S>'
         '<S S="Error">+     $x = [int]$Params[\'n\']_x000D__x000A_</S>'
         '<S S="Error">+     ~~~~~~~~~~~~~~~~~~~~~~~_x000D__x000A_</S>'
         '<S S="Error">    + CategoryInfo          : InvalidArgument: (:) [], RuntimeException_x000D__x000A_</S>'
         '<S S="Error">    + FullyQualifiedErrorId : InvalidCastFromStringToInteger_x000D__x000A_</S>'
         '<S S="Error"> _x000D__x000A_</S>')
CLIXML = ("#< CLIXML\r\n" + OBJS + PROGRESS + ERROR + "</Objs>").encode()


def test_escapes_are_undone() -> None:
    assert unescape("a_x000D__x000A_b_x0009_c") == "a\r\nb\tc"
    assert unescape("no_escape_here") == "no_escape_here"


def test_clixml_is_decoded_to_the_console_lines_without_progress() -> None:
    text = readable_stderr(CLIXML)
    assert "<Objs" not in text and "CLIXML" not in text and "Preparing modules" not in text
    assert text.splitlines()[:2] == ['Cannot convert value "Grüße" to type "System.Int32".', "At line:42 char:5"]


def test_the_summary_is_what_went_wrong_not_where() -> None:
    assert stderr_summary(CLIXML) == 'Cannot convert value "Grüße" to type "System.Int32".'


def test_plain_stderr_and_broken_clixml_pass_through() -> None:
    assert stderr_summary(b"lab bootstrap: no manifest on stdin\r\n") == "lab bootstrap: no manifest on stdin"
    broken = b"#< CLIXML\n<Objs Version=\"1.1.0.1\"><S S=\"Error\">cut short"
    assert stderr_summary(broken) == '<Objs Version="1.1.0.1"><S S="Error">cut short'
    assert stderr_summary(b"") == ""


def test_warnings_keep_their_prefix() -> None:
    raw = ("#< CLIXML\n" + OBJS + '<S S="Warning">disk almost full_x000D__x000A_</S></Objs>').encode()
    assert readable_stderr(raw) == "WARNING: disk almost full"


def test_an_error_result_shows_the_decoded_message_not_xml() -> None:
    suite = Suite("s", Path("s.yml"), True, ("windows-server-2022",), (Check("a", "file", {"path": "x"}, 5.0, 0),))
    results = parse_results(suite, CommandResult(1, b"", CLIXML, False, 2.0))
    assert [(r.status, r.message) for r in results] == [(
        Status.ERROR,
        'the runner stopped (exit code 1) before this check reported: '
        'Cannot convert value "Grüße" to type "System.Int32".',
    )]


def test_a_bom_before_the_first_result_line_does_not_lose_it() -> None:
    suite = Suite("s", Path("s.yml"), True, ("windows-server-2022",), (Check("a", "file", {"path": "x"}, 5.0, 0),))
    stdout = b'\xef\xbb\xbf{"id":"a","status":"pass","message":"ok","evidence":{}}\n{"end":true,"checks":1}\n'
    results = parse_results(suite, CommandResult(0, stdout, b"", False, 1.0))
    assert [(r.status, r.message) for r in results] == [(Status.PASS, "ok")]
