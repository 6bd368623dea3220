"""Structural comparison of a recorded WS-Management envelope with one this endpoint produced.

Two envelopes match when they have the same tree of elements (by namespace-qualified
name, prefixes and declarations do not matter), the same attributes, the same values
for attributes and for the text of protocol-significant elements (actions, resource
URIs, stream names, states, exit codes, fault codes...), and text present where the
recording has text. Volatile values (message ids, owners, addresses, output bytes) only
need the same shape. Runs of sibling elements with identical name and attributes (the
output chunks of one stream) count as one, since chunking depends on timing.
"""

from __future__ import annotations

import difflib
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence

from .soap import NS

_PREFIX = {uri: prefix for prefix, uri in NS.items()}
_PREFIX["http://www.w3.org/XML/1998/namespace"] = "xml"


def _clark(name: str) -> str:
    prefix, local = name.split(":")
    if prefix == "xml":
        return "{http://www.w3.org/XML/1998/namespace}" + local
    return f"{{{NS[prefix]}}}{local}"


#: Elements whose text must be identical (after mapping ShellId/CommandId values).
STABLE_TEXT = frozenset(
    _clark(n)
    for n in (
        "a:Action",
        "a:To",
        "a:RelatesTo",
        "w:ResourceURI",
        "w:Selector",
        "rsp:ShellId",
        "rsp:CommandId",
        "rsp:ResourceUri",
        "rsp:InputStreams",
        "rsp:OutputStreams",
        "rsp:IdleTimeOut",
        "rsp:ShellRunTime",
        "rsp:ShellInactivity",
        "rsp:Variable",
        "rsp:ExitCode",
        "s:Value",
        "s:Text",
        "w:FaultDetail",
        "f:ProviderFault",
    )
)
#: Attributes whose value may differ (the name of the machine that answered).
VOLATILE_ATTRS = frozenset({"Machine"})
_UUID = re.compile(r"^uuid:[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$")


def qname(tag: str) -> str:
    """Render a Clark name with the conventional prefix, e.g. ``rsp:Stream``."""
    if tag.startswith("{"):
        uri, local = tag[1:].split("}", 1)
        prefix = _PREFIX.get(uri)
        return f"{prefix}:{local}" if prefix else tag
    return tag


def _signature(el: ET.Element) -> tuple[str, tuple[tuple[str, str], ...]]:
    attrs = tuple(sorted((k, "*" if k in VOLATILE_ATTRS else v) for k, v in el.attrib.items()))
    return el.tag, attrs


def _describe(el: ET.Element) -> str:
    attrs = "".join(f" {qname(k)}={v!r}" for k, v in sorted(el.attrib.items()))
    return f"<{qname(el.tag)}{attrs}>"


def _groups(children: Sequence[ET.Element]) -> list[list[ET.Element]]:
    groups: list[list[ET.Element]] = []
    for child in children:
        if groups and _signature(groups[-1][0]) == _signature(child) and not len(child):
            groups[-1].append(child)
        else:
            groups.append([child])
    return groups


def _map_ids(root: ET.Element, id_map: Mapping[str, str]) -> None:
    def swap(value: str) -> str:
        for ours, recorded in id_map.items():
            value = value.replace(ours, recorded)
        return value

    for el in root.iter():
        if el.text:
            el.text = swap(el.text)
        for key, value in el.attrib.items():
            el.attrib[key] = swap(value)


def _compare(rec: ET.Element, act: ET.Element, path: str, out: list[str]) -> None:
    if rec.tag != act.tag:
        out.append(f"{path}: element is {qname(act.tag)}, recorded {qname(rec.tag)}")
        return
    for key in sorted(set(rec.attrib) | set(act.attrib)):
        if key not in act.attrib:
            out.append(f"{path}: missing attribute {qname(key)}={rec.attrib[key]!r}")
        elif key not in rec.attrib:
            out.append(f"{path}: unexpected attribute {qname(key)}={act.attrib[key]!r}")
        elif key not in VOLATILE_ATTRS and rec.attrib[key] != act.attrib[key]:
            out.append(f"{path}: attribute {qname(key)} is {act.attrib[key]!r}, recorded {rec.attrib[key]!r}")
    rec_text, act_text = rec.text or "", act.text or ""
    if rec.tag in STABLE_TEXT and not len(rec):
        if rec_text != act_text:
            out.append(f"{path}: text is {act_text!r}, recorded {rec_text!r}")
    elif rec.tag == _clark("a:MessageID"):
        if not (_UUID.match(rec_text.strip()) and _UUID.match(act_text.strip())):
            out.append(f"{path}: MessageID {act_text!r} is not shaped like recorded {rec_text!r}")
    elif bool(rec_text.strip()) != bool(act_text.strip()):
        state = "has text" if act_text.strip() else "is empty"
        out.append(f"{path}: {state}, recorded {rec_text.strip()[:40]!r}")
    rec_groups, act_groups = _groups(list(rec)), _groups(list(act))
    matcher = difflib.SequenceMatcher(
        a=[_signature(g[0]) for g in rec_groups], b=[_signature(g[0]) for g in act_groups], autojunk=False
    )
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal" or (op == "replace" and i2 - i1 == j2 - j1):
            for offset in range(i2 - i1):
                rec_child, act_child = rec_groups[i1 + offset][0], act_groups[j1 + offset][0]
                _compare(rec_child, act_child, f"{path}/{qname(rec_child.tag)}[{i1 + offset + 1}]", out)
            continue
        for group in rec_groups[i1:i2]:
            out.append(f"{path}: missing child {_describe(group[0])}")
        for group in act_groups[j1:j2]:
            out.append(f"{path}: unexpected child {_describe(group[0])}")


def compare_envelopes(recorded: str | bytes, actual: str | bytes, id_map: Mapping[str, str] | None = None) -> list[str]:
    """Differences between a recorded response and ours, one readable line each ([] = match).

    ``id_map`` maps ids in ``actual`` (our ShellId/CommandId values) to the recorded
    ones so that selectors, CommandId attributes and fault messages compare equal.
    Paths name elements by prefix and 1-based position among collapsed siblings.
    """
    rec_root = ET.fromstring(recorded)
    act_root = ET.fromstring(actual)
    _map_ids(act_root, id_map or {})
    out: list[str] = []
    _compare(rec_root, act_root, "/" + qname(rec_root.tag), out)
    return out
