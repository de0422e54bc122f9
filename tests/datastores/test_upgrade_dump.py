"""The pre-upgrade dump Job (kubernetes backend) runs the backup script, as rendered, to
completion against a real PostgreSQL (issue 16): a verified custom-format archive named
after the version, and nothing pruned."""

import os
import time

from support import Stack, override
from tools import mockrt

from .conftest import needs_postgres
from .test_backup import BACKUP_ROLE, _run_script, backup_dir  # noqa: F401 (fixture)


def _dump_container() -> dict:
    stack = Stack(mockrt.run_stack("dev", override("dev", ("app.image", "calciumion/new-api:v1.0.0"),
                                                   ("app.deployedVersion", "v1.0.0-rc.25"))))
    job = stack.k8s("Job", "new-api-db-backup-pre-upgrade-v1-0-0")
    return job["spec"]["template"]["spec"]["containers"][0]


@needs_postgres
def test_pre_upgrade_job_dumps_the_database_with_the_rendered_script(live_postgres, backup_dir):  # noqa: F811
    c = _dump_container()
    assert c["command"][:2] == ["/bin/sh", "-c"]
    env = {e["name"]: e["value"] for e in c["env"] if "value" in e and not e["name"].startswith("PG")}
    env["BACKUP_DIR"] = str(backup_dir)  # the PVC mount (/backups) here
    old = backup_dir / "newapi-dev-20200101T020000Z.dump"
    old.write_text("x")
    t = time.time() - 400 * 86400
    os.utime(old, (t, t))
    env.pop("HOME", None)
    out = _run_script(live_postgres, c["command"][2], BACKUP_ROLE, **env)
    assert out.returncode == 0, out.stdout + out.stderr
    name = (backup_dir / ".latest").read_text().strip()
    assert name.startswith("newapi-dev-pre-upgrade-v1-0-0-") and name.endswith("Z.dump")
    assert (backup_dir / name).read_bytes()[:5] == b"PGDMP"
    assert old.exists(), "the pre-upgrade run prunes nothing (PRUNE=false)"
