"""Entry point when Pulumi hosts this directory as a component package for other
languages (``pulumi package add``): serves every public component, with the package
schema inferred from their typed args and outputs."""

import sys
from pathlib import Path

# Pulumi runs this file from the plugin directory; make the package importable as
# `components` (its modules use relative imports).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pulumi.provider.experimental import component_provider_host  # noqa: E402

import components  # noqa: E402

if __name__ == "__main__":
    component_provider_host(name="new-api", components=components.public_components(),
                            version=components.__version__)
