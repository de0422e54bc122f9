"""The CrossGuard policy pack: `pulumi preview --policy-pack policy`."""
from pulumi_policy import EnforcementLevel, PolicyPack

from newapi_policy import PACK_NAME, POLICIES

PolicyPack(name=PACK_NAME, enforcement_level=EnforcementLevel.MANDATORY, policies=POLICIES)
