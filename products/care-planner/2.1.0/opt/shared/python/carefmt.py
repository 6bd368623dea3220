"""carefmt 2.0 as bundled by care-planner 2.1.0 for its new PDF export (API level 2).

The installer overwrites the shared copy in /opt/shared/python: this is the incompatibility
the lab must catch, since the journal service still calls the level-1 ``format_record``.
"""

CAREFMT_API = 2


def render(record: dict) -> str:
    """Render a record given as {"client": ..., "visits": [(when, what), ...]}."""
    lines = ["Client: %s" % record["client"]]
    lines.extend("  %s  %s" % visit for visit in record["visits"])
    return "\n".join(lines)
