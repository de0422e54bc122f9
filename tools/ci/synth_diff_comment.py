"""Post or update the offline synth diff comment on a pull request (synth-diff-comment.yml).

Runs in the base repository's `workflow_run` context with a token that can write PR
comments, so it trusts nothing the pull request controls except the text it displays:

- The PR is looked up through the API from the triggering run's head commit and head
  repository (`github.event.workflow_run.head_sha` / `.head_repository`), never from a PR
  number in the artifact. A PR is used only when its head SHA and head repository both match;
  no match (the PR was closed or pushed to since) posts nothing.
- The artifact's text is shown only inside a code fence longer than any backtick run in it,
  so it cannot close the fence, render markdown, mention people or fake the marker.
- Only a comment that this workflow wrote (author `github-actions[bot]`, body starting with
  MARKER) is edited; every other comment, the Pulumi preview's included, is left alone.

Standard library only (the runner's python3), no checkout of pull-request code.

    python3 tools/ci/synth_diff_comment.py <synth-diff.md>
    env: GH_TOKEN, GITHUB_REPOSITORY, HEAD_SHA, HEAD_REPO, HEAD_OWNER, HEAD_BRANCH,
         GITHUB_API_URL (default https://api.github.com), BOT_LOGIN (default github-actions[bot])
"""
from __future__ import annotations

import json
import os
import re
import sys
import urllib.parse
import urllib.request
from typing import Any, Dict, List, Optional

MARKER = "<!-- new-api-infra:synth-diff-comment -->"
#: GitHub rejects comment bodies over 65,536 characters; leave room for the frame.
MAX_TEXT = 60_000


def render(text: str) -> str:
    """The comment body: marker, heading, the text as an inert code block."""
    text = text.replace("\r\n", "\n")
    note = ""
    if len(text) > MAX_TEXT:
        text = text[:MAX_TEXT]
        note = "\n_(truncated: the full diff is in the synth-diff artifact of the run)_\n"
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return (f"{MARKER}\n### Offline synth diff (dev and prod)\n\n"
            f"{fence}text\n{text.rstrip()}\n{fence}\n{note}")


class GitHub:
    def __init__(self, api: str, token: str, repo: str):
        self.api = api.rstrip("/")
        self.token = token
        self.repo = repo

    def call(self, method: str, path: str, body: Optional[Dict[str, Any]] = None,
             query: Optional[Dict[str, Any]] = None) -> Any:
        url = f"{self.api}{path}"
        if query:
            url += "?" + urllib.parse.urlencode(query)
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(url, data=data, method=method, headers={
            "Authorization": f"Bearer {self.token}",
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": "2022-11-28",
            "Content-Type": "application/json",
        })
        with urllib.request.urlopen(req, timeout=30) as resp:
            raw = resp.read()
        return json.loads(raw) if raw else None

    def pages(self, path: str, query: Dict[str, Any]) -> List[Dict[str, Any]]:
        out: List[Dict[str, Any]] = []
        page = 1
        while True:
            batch = self.call("GET", path, query={**query, "per_page": 100, "page": page})
            out.extend(batch)
            if len(batch) < 100:
                return out
            page += 1


def find_pulls(gh: GitHub, head_sha: str, head_repo: str, head_owner: str, head_branch: str) -> List[int]:
    """Open PRs into this repository whose head is exactly that commit of that repository."""
    pulls = gh.pages(f"/repos/{gh.repo}/pulls", {"state": "open", "head": f"{head_owner}:{head_branch}"})
    return [p["number"] for p in pulls
            if p.get("head", {}).get("sha") == head_sha
            and (p.get("head", {}).get("repo") or {}).get("full_name") == head_repo
            and (p.get("base", {}).get("repo") or {}).get("full_name") == gh.repo]


def upsert_comment(gh: GitHub, number: int, body: str, bot_login: str) -> str:
    comments = gh.pages(f"/repos/{gh.repo}/issues/{number}/comments", {})
    ours = [c for c in comments
            if (c.get("user") or {}).get("login") == bot_login and (c.get("body") or "").startswith(MARKER)]
    if ours:
        gh.call("PATCH", f"/repos/{gh.repo}/issues/comments/{ours[0]['id']}", {"body": body})
        return f"updated comment {ours[0]['id']} on #{number}"
    gh.call("POST", f"/repos/{gh.repo}/issues/{number}/comments", {"body": body})
    return f"created a comment on #{number}"


def main(argv: List[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    env = os.environ
    missing = [k for k in ("GH_TOKEN", "GITHUB_REPOSITORY", "HEAD_SHA", "HEAD_REPO", "HEAD_OWNER", "HEAD_BRANCH")
               if not env.get(k)]
    if missing:
        print(f"missing environment: {', '.join(missing)}", file=sys.stderr)
        return 2
    with open(argv[1], encoding="utf-8", errors="replace") as f:
        body = render(f.read())
    gh = GitHub(env.get("GITHUB_API_URL", "https://api.github.com"), env["GH_TOKEN"], env["GITHUB_REPOSITORY"])
    numbers = find_pulls(gh, env["HEAD_SHA"], env["HEAD_REPO"], env["HEAD_OWNER"], env["HEAD_BRANCH"])
    if not numbers:
        print(f"no open pull request has head {env['HEAD_REPO']}@{env['HEAD_SHA']}: nothing to comment on")
        return 0
    for number in numbers:
        print(upsert_comment(gh, number, body, env.get("BOT_LOGIN", "github-actions[bot]")))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
