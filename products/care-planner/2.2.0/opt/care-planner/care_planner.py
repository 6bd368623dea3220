"""care-planner: plans the day's home-care visits for the municipality's care teams.

  care-planner --version      print the installed version
  care-planner plan --demo    print a demo route for one care team

2.2.0 adds site profiles (/etc/care-planner/site.conf): under ``profile = production`` the care
teams come from the municipal roster, /var/lib/care-planner/roster.json.
"""

import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "../.."))
DEMO_ROUTE = [("08:00", "Aino K.", "medication"), ("09:15", "Eero L.", "shower"), ("11:00", "Sofia M.", "lunch")]


def version():
    with open(os.path.join(HERE, "VERSION")) as handle:
        return handle.read().strip()


def site_profile():
    try:
        with open(os.path.join(ROOT, "etc/care-planner/site.conf")) as handle:
            for line in handle:
                key, _, value = line.partition("=")
                if key.strip() == "profile":
                    return value.strip()
    except FileNotFoundError:
        pass
    return "lab"


def teams():
    if site_profile() == "production":
        # The roster is expected to be provisioned with the site profile; nothing creates it.
        with open(os.path.join(ROOT, "var/lib/care-planner/roster.json")) as handle:
            return json.load(handle)
    return {"North": DEMO_ROUTE}


def main(argv):
    if argv[:1] == ["--version"]:
        print("care-planner %s" % version())
        return 0
    if argv[:2] == ["plan", "--demo"]:
        route = teams()["North"]
        print("Route for team North (%d visits)" % len(route))
        for when, client, task in route:
            print("  %s  %-10s %s" % (when, client, task))
        return 0
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
