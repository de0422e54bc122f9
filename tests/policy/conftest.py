"""Policy-pack tests: import the pack's package (never the PolicyPack, whose constructor
serves gRPC forever) and the fixtures next to this file."""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
for p in (os.path.join(REPO, "policy"), HERE):
    if p not in sys.path:
        sys.path.insert(0, p)
