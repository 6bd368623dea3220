"""carefmt 1.4: the municipality's shared formatter for home-care records (API level 1).

Several applications of the portfolio import it from /opt/shared/python; its API is a contract.
"""

CAREFMT_API = 1


def format_record(client: str, visits: list) -> str:
    """One line per visit, headed by the client's name, as the journal prints them."""
    lines = ["Client: %s" % client]
    for when, what in visits:
        lines.append("  %s  %s" % (when, what))
    return "\n".join(lines)
