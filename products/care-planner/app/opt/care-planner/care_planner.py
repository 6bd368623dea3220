"""care-planner: plans the day's home-care visits for the municipality's care teams.

  care-planner --version      print the installed version
  care-planner plan --demo    print a demo route for one care team
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
DEMO_ROUTE = [("08:00", "Aino K.", "medication"), ("09:15", "Eero L.", "shower"), ("11:00", "Sofia M.", "lunch")]


def version():
    with open(os.path.join(HERE, "VERSION")) as handle:
        return handle.read().strip()


def main(argv):
    if argv[:1] == ["--version"]:
        print("care-planner %s" % version())
        return 0
    if argv[:2] == ["plan", "--demo"]:
        print("Route for team North (%d visits)" % len(DEMO_ROUTE))
        for when, client, task in DEMO_ROUTE:
            print("  %s  %-10s %s" % (when, client, task))
        return 0
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
