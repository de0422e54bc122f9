"""The CI scripts the workflows run (tools/ci/), each run for real against a fake of the
service it talks to, the way the workflow runs it:

- smoke-check.sh (deploy-stack.yml) against a fake New API that answers like
  `controller.GetStatus` ({"success": true, "data": {"version": ...}}, NEWAPI-CONTRACT.md §1)
  and `controller.Login` (POST /api/user/login, JSON {username, password}, answers
  {"success": true|false, "message": ...}; router/api-router.go, model.User.ValidateAndFill);
- notify-failure.sh against a fake Slack-style webhook ({"text": ...});
- synth_diff_comment.py against a fake GitHub REST API (pulls, issue comments), as
  synth-diff-comment.yml runs it after a fork's synth-diff run.
"""
import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from validators import require

REPO = Path(__file__).resolve().parent.parent
CI = REPO / "tools" / "ci"
PASSWORD = "p@ss 'w\"ord$HOME`x`"


class Fake:
    """A loopback HTTP server; `handle(method, path, body) -> (status, json)` decides."""

    def __init__(self, handle):
        self.handle = handle
        self.requests = []
        fake = self

        class H(BaseHTTPRequestHandler):
            def _do(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n).decode() if n else ""
                fake.requests.append({"method": self.command, "path": self.path, "body": body,
                                      "headers": dict(self.headers)})
                status, doc = fake.handle(self.command, self.path, body)
                raw = json.dumps(doc).encode() if doc is not None else b""
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            do_GET = do_POST = do_PATCH = _do

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()


@pytest.fixture
def fake():
    made = []

    def make(handle):
        f = Fake(handle)
        made.append(f)
        return f
    yield make
    for f in made:
        f.close()


def new_api(versions, login_ok=True, login_status=200):
    """A fake New API: /api/status answers with the next of `versions` (the last repeats)."""
    seen = {"status": 0}

    def handle(method, path, body):
        if method == "GET" and path == "/api/status":
            v = versions[min(seen["status"], len(versions) - 1)]
            seen["status"] += 1
            if v is None:
                return 502, {"message": "bad gateway"}
            return 200, {"success": True, "message": "", "data": {"version": v, "setup": True}}
        if method == "POST" and path == "/api/user/login":
            creds = json.loads(body)
            if login_status != 200:
                return login_status, {"success": False, "message": "database error"}
            ok = login_ok and creds == {"username": "root", "password": PASSWORD}
            return 200, {"success": ok, "message": "" if ok else "用户名或密码错误，或用户已被封禁"}
        return 404, {"message": "not found"}
    return handle


def smoke(url, **env):
    run_env = {"PATH": os.environ["PATH"], "SMOKE_URL": url, "SMOKE_VERSION": "v1.0.0-rc.25",
               "SMOKE_USERNAME": "root", "SMOKE_PASSWORD": PASSWORD, "SMOKE_ATTEMPTS": "4",
               "SMOKE_INTERVAL": "0", "SMOKE_TIMEOUT": "5", **env}
    return subprocess.run(["bash", str(CI / "smoke-check.sh")], env=run_env, capture_output=True, text=True,
                          timeout=60)


@pytest.fixture(autouse=True)
def _tools():
    require("curl", "Debian package curl")
    require("jq", "tools/install-validators.sh installs it")


def test_smoke_check_passes_when_the_new_version_serves_and_the_database_answers(fake):
    api = fake(new_api(["v1.0.0-rc.25"]))
    proc = smoke(api.url)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    login = [r for r in api.requests if r["path"] == "/api/user/login"]
    assert len(login) == 1 and login[0]["method"] == "POST"
    assert json.loads(login[0]["body"]) == {"username": "root", "password": PASSWORD}
    assert login[0]["headers"]["Content-Type"] == "application/json"
    assert all(r["headers"].get("X-Canary") == "always" for r in api.requests)
    assert PASSWORD not in proc.stdout + proc.stderr


def test_smoke_check_waits_for_the_deployed_version(fake):
    api = fake(new_api([None, "v1.0.0-rc.24", "v1.0.0-rc.25"]))
    proc = smoke(api.url)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert [r["path"] for r in api.requests].count("/api/status") == 3
    assert "version v1.0.0-rc.24" in proc.stdout


def test_smoke_check_fails_when_the_version_never_arrives(fake):
    api = fake(new_api(["v1.0.0-rc.24"]))
    proc = smoke(api.url)
    assert proc.returncode == 1
    assert [r["path"] for r in api.requests].count("/api/status") == 4, "bounded: SMOKE_ATTEMPTS tries"
    assert "::error" in proc.stderr and "v1.0.0-rc.25" in proc.stderr and "v1.0.0-rc.24" in proc.stderr
    assert not any(r["path"] == "/api/user/login" for r in api.requests)


def test_smoke_check_fails_when_nothing_answers():
    proc = smoke("http://127.0.0.1:9", SMOKE_ATTEMPTS="2")
    assert proc.returncode == 1 and "HTTP 000" in proc.stderr


def test_smoke_check_fails_when_the_login_is_refused(fake):
    api = fake(new_api(["v1.0.0-rc.25"], login_ok=False))
    proc = smoke(api.url)
    assert proc.returncode == 1
    assert "/api/user/login" in proc.stderr and "database" in proc.stderr
    assert [r["path"] for r in api.requests].count("/api/user/login") == 1, "a refusal is not retried"
    assert PASSWORD not in proc.stdout + proc.stderr


def test_smoke_check_retries_a_server_error_on_the_database_read(fake):
    api = fake(new_api(["v1.0.0-rc.25"], login_status=500))
    proc = smoke(api.url)
    assert proc.returncode == 1
    assert [r["path"] for r in api.requests].count("/api/user/login") == 3


@pytest.mark.parametrize("script", ["smoke-check.sh", "notify-failure.sh"])
def test_ci_shell_scripts_pass_shellcheck(script):
    proc = subprocess.run([require("shellcheck"), "-s", "bash", str(CI / script)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout


def _notify(**env):
    return subprocess.run(["bash", str(CI / "notify-failure.sh")], capture_output=True, text=True, timeout=30,
                          env={"PATH": os.environ["PATH"], "STACK": "prod", "RUN_URL": "https://gh/run/1", **env})


def test_notify_posts_the_failed_stack_and_run_to_the_webhook(fake):
    hook = fake(lambda m, p, b: (200, None))
    proc = _notify(NOTIFY_WEBHOOK_URL=hook.url + "/hook")
    assert proc.returncode == 0, proc.stderr
    (req,) = hook.requests
    assert req["method"] == "POST" and req["path"] == "/hook"
    text = json.loads(req["body"])["text"]
    assert "prod" in text and "https://gh/run/1" in text


def test_notify_without_a_webhook_says_so_and_succeeds():
    proc = _notify()
    assert proc.returncode == 0 and "not set" in proc.stdout


# --------------------------------------------------------------------------- PR comment

BOT = "github-actions[bot]"
MARKER = "<!-- new-api-infra:synth-diff-comment -->"


def github(pulls, comments):
    """A fake GitHub REST API over one repository, org/infra; records writes in `comments`."""
    def handle(method, path, body):
        route, _, query = path.partition("?")
        if method == "GET" and route == "/repos/org/infra/pulls":
            return 200, pulls if "page=1" in query else []
        if route.startswith("/repos/org/infra/issues/") and route.endswith("/comments"):
            number = int(route.split("/")[5])
            if method == "GET":
                return 200, [c for c in comments if c["pr"] == number] if "page=1" in query else []
            comments.append({"id": 900 + len(comments), "pr": number, "user": {"login": BOT},
                             "body": json.loads(body)["body"], "created": True})
            return 201, comments[-1]
        if method == "PATCH" and route.startswith("/repos/org/infra/issues/comments/"):
            cid = int(route.rsplit("/", 1)[1])
            target = next(c for c in comments if c["id"] == cid)
            target["body"] = json.loads(body)["body"]
            target["edited"] = True
            return 200, target
        return 404, {"message": "Not Found"}
    return handle


def pull(number, sha, repo):
    return {"number": number, "head": {"sha": sha, "repo": {"full_name": repo}},
            "base": {"repo": {"full_name": "org/infra"}}}


def post_comment(api_url, tmp_path, text, sha="abc123", head_repo="fork/infra"):
    diff = tmp_path / "synth-diff.md"
    diff.write_text(text)
    env = {"PATH": os.environ["PATH"], "GH_TOKEN": "t0ken", "GITHUB_REPOSITORY": "org/infra",
           "GITHUB_API_URL": api_url, "HEAD_SHA": sha, "HEAD_REPO": head_repo, "HEAD_OWNER": head_repo.split("/")[0],
           "HEAD_BRANCH": "feature"}
    return subprocess.run([sys.executable, str(CI / "synth_diff_comment.py"), str(diff)], env=env,
                          capture_output=True, text=True, timeout=60)


def test_comment_updates_only_this_workflows_marked_bot_comment(fake, tmp_path):
    """The Pulumi preview's bot comment (the last one) and a user's comment quoting the marker
    stay untouched; only the bot's comment that starts with the marker is edited."""
    comments = [
        {"id": 1, "pr": 7, "user": {"login": BOT}, "body": MARKER + "\nold diff"},
        {"id": 2, "pr": 7, "user": {"login": "mallory"}, "body": MARKER + "\nfake"},
        {"id": 3, "pr": 7, "user": {"login": BOT}, "body": "#### :tropical_drink: `preview` on prod"},
    ]
    api = fake(github([pull(7, "abc123", "fork/infra")], comments))
    proc = post_comment(api.url, tmp_path, "=== stack dev\n+ Deployment new-api")
    assert proc.returncode == 0, proc.stderr
    assert [c["id"] for c in comments if c.get("edited")] == [1]
    assert comments[1]["body"] == MARKER + "\nfake" and comments[2]["body"].startswith("#### :tropical")
    assert "+ Deployment new-api" in comments[0]["body"]
    assert api.requests[0]["headers"]["Authorization"] == "Bearer t0ken"
    pulls_query = api.requests[0]["path"]
    assert "head=fork%3Afeature" in pulls_query and "state=open" in pulls_query


def test_comment_is_created_when_none_is_marked(fake, tmp_path):
    comments = [{"id": 3, "pr": 7, "user": {"login": BOT}, "body": "preview"}]
    api = fake(github([pull(7, "abc123", "fork/infra")], comments))
    assert post_comment(api.url, tmp_path, "diff").returncode == 0
    assert [c for c in comments if c.get("created")][0]["body"].startswith(MARKER)
    assert comments[0]["body"] == "preview"


def test_comment_goes_only_to_the_pr_whose_head_is_that_commit_of_that_repository(fake, tmp_path):
    """A PR pushed to since, or a same-named branch of another repository, gets nothing."""
    comments = []
    api = fake(github([pull(7, "newer999", "fork/infra"), pull(8, "abc123", "other/infra")], comments))
    proc = post_comment(api.url, tmp_path, "diff")
    assert proc.returncode == 0 and comments == []
    assert "nothing to comment on" in proc.stdout


def test_comment_renders_the_artifact_only_as_inert_text(fake, tmp_path):
    """The fork controls the text: it must not close the code fence, fake the marker or ping."""
    comments = []
    api = fake(github([pull(7, "abc123", "fork/infra")], comments))
    hostile = "````\n" + MARKER + "\n@org/admins please approve\n````"
    assert post_comment(api.url, tmp_path, hostile).returncode == 0
    body = comments[0]["body"]
    assert body.startswith(MARKER + "\n") and body.count(MARKER) == 2
    lines = body.splitlines()
    fence_open = next(i for i, l in enumerate(lines) if l.startswith("`````text"))
    fence = lines[fence_open][:-len("text")]
    assert len(fence) == 5
    fence_close = max(i for i, l in enumerate(lines) if l == fence)
    assert fence_open < lines.index("@org/admins please approve") < fence_close
    assert lines.index(MARKER, 1) > fence_open


def test_comment_truncates_to_what_github_accepts(fake, tmp_path):
    comments = []
    api = fake(github([pull(7, "abc123", "fork/infra")], comments))
    assert post_comment(api.url, tmp_path, "x" * 200_000).returncode == 0
    assert len(comments[0]["body"]) < 65_536 and "truncated" in comments[0]["body"]
