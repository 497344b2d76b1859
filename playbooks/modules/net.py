"""Waiting and HTTP from the host itself: wait_for, uri, get_url (curl on the host, like Ansible runs there)."""

from __future__ import annotations

import contextlib
import json
import posixpath
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode, urlparse

from infprov.floor.errors import WaitTimeout
from infprov.floor.wait import wait_until
from infprov.inventory.model import check_address
from infprov.playbooks.connection import CommandResult
from infprov.playbooks.modules.base import (
    ModuleArgError,
    ModuleContext,
    ModuleResult,
    attr_commands,
    boolean,
    module,
    parse_mode,
    quote,
    required,
)
from infprov.playbooks.modules.facts import file_stats, gather

STATUS_MARK = "\n__infprov_http__"
SAME_MARK = "__infprov_same__"


def poll(
    probe: Callable[[], bool],
    *,
    timeout: float,
    interval: float,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[bool, float]:
    """Call probe until it is true or `timeout` passes: (succeeded, seconds waited). The probe's own
    errors (a host gone) end the wait at once."""
    start = clock()
    try:
        wait_until(lambda: probe() or None, what="the probe", timeout=timeout, interval=interval,
                   clock=clock, sleep=sleep, errors=())
    except WaitTimeout:
        return False, clock() - start
    return True, clock() - start


# ---------------------------------------------------------------- wait_for
def wait_for_probe(args: dict[str, Any]) -> tuple[str, bool]:
    """(probe script, whether success is the probe failing) for the asked state."""
    state = args.get("state", "started")
    if state not in ("started", "present", "stopped", "absent"):
        raise ModuleArgError(f"argument `state` must be started, present, stopped or absent, not {state!r}")
    port, path = args.get("port"), args.get("path")
    if port is not None and path is not None:
        raise ModuleArgError("give `port` or `path`, not both")
    if port is not None:
        host = wait_for_host(args.get("host"))
        number = _port(port)
        ct = int(args.get("connect_timeout", 5))
        # host and port reach the inner shell as its arguments $1 and $2, never as part of its script
        script = (f"timeout {ct} bash -c 'exec 3<>\"/dev/tcp/$1/$2\"' infprov-wait-for {quote(host)} {number}"
                  " 2>/dev/null")
        return script, state in ("stopped", "absent")
    if path is not None:
        script = f"[ -e {quote(str(path))} ]"
        if args.get("search_regex") and state in ("started", "present"):
            script += f" && grep -Eq {quote(str(args['search_regex']))} {quote(str(path))}"
        return script, state in ("stopped", "absent")
    return "", False


def wait_for_host(value: Any) -> str:
    """wait_for's `host`: a DNS name or an IP address (it names a place to connect to, nothing else)."""
    host = "127.0.0.1" if value is None or value == "" else str(value)
    try:
        return check_address(host)
    except ValueError:
        raise ModuleArgError(f"argument `host` {host!r} is not a DNS name or IP address") from None


def _port(value: Any) -> int:
    try:
        number = int(str(value).strip())
    except ValueError:
        number = 0
    if not 1 <= number <= 65535:
        raise ModuleArgError(f"argument `port` must be a port number (1 to 65535), not {value!r}")
    return number


@module(
    "wait_for",
    args={"host", "port", "path", "state", "timeout", "delay", "sleep", "search_regex", "connect_timeout", "msg"},
)
def wait_for(ctx: ModuleContext, args: dict[str, Any]) -> ModuleResult:
    timeout = float(args.get("timeout", 300))
    delay = float(args.get("delay", 0))
    interval = float(args.get("sleep", 1))
    script, inverted = wait_for_probe(args)
    if ctx.check:  # as in Ansible: nothing to wait for when nothing was started
        return ModuleResult(skipped=True, msg="wait_for does not run in check mode")
    if delay:
        time.sleep(delay)
    if not script:
        time.sleep(timeout)
        return ModuleResult(data={"elapsed": timeout})
    last: list[CommandResult] = []

    def probe() -> bool:
        result = ctx.sh(script)
        last[:] = [result]
        return (result.exit_code == 0) != inverted

    done, elapsed = poll(probe, timeout=timeout, interval=interval)
    what = f"{args.get('host') or '127.0.0.1'}:{args['port']}" if args.get("port") is not None else str(args["path"])
    if not done:
        msg = args.get("msg") or f"Timeout when waiting for {what} ({args.get('state', 'started')})"
        return ModuleResult(failed=True, msg=f"{msg} after {elapsed:.0f} s", data={"elapsed": round(elapsed, 1)})
    return ModuleResult(data={"elapsed": round(elapsed, 1), "state": args.get("state", "started")})


# ---------------------------------------------------------------- uri
def curl_command(args: dict[str, Any], *, body_file: bool) -> str:
    url = str(required(args, "url"))
    method = str(args.get("method", "GET")).upper()
    parts = ["curl", "-sS", "-X", quote(method), "--max-time", str(int(args.get("timeout", 30)))]
    if not boolean(args.get("validate_certs", True), "validate_certs"):
        parts.append("-k")
    follow = args.get("follow_redirects", "safe")
    if follow in ("all", "yes", True) or (follow == "safe" and method in ("GET", "HEAD")):
        parts.append("-L")
    for key, value in (args.get("headers") or {}).items():
        parts += ["-H", quote(f"{key}: {value}")]
    if args.get("unix_socket"):
        parts += ["--unix-socket", quote(str(args["unix_socket"]))]
    if body_file:
        parts += ["--data-binary", "@-"]
    if method == "HEAD":
        parts.append("-I")
    parts += ["-w", quote(STATUS_MARK + "%{http_code} %{content_type}"), quote(url)]
    return " ".join(parts)


def body_bytes(args: dict[str, Any]) -> tuple[bytes | None, dict[str, str]]:
    """(request body, extra headers) from body and body_format."""
    body = args.get("body")
    if body is None:
        return None, {}
    fmt = args.get("body_format", "raw")
    if fmt == "json":
        text = body if isinstance(body, str) else json.dumps(body)
        return text.encode(), {"Content-Type": "application/json"}
    if fmt == "form-urlencoded":
        text = body if isinstance(body, str) else urlencode(body)
        return text.encode(), {"Content-Type": "application/x-www-form-urlencoded"}
    if fmt != "raw":
        raise ModuleArgError(f"argument `body_format` must be raw, json or form-urlencoded, not {fmt!r}")
    return (body if isinstance(body, bytes) else str(body).encode()), {}


def parse_curl(result: CommandResult) -> tuple[int, str, str]:
    """(status, content type, body); status -1 when curl could not get an answer."""
    body, mark, tail = result.out.rpartition(STATUS_MARK)
    if not mark:
        return -1, "", result.out
    code, _, ctype = tail.strip().partition(" ")
    status = int(code) if code.isdigit() else -1
    return (status if status != 0 else -1), ctype, body


@module(
    "uri",
    args={
        "url",
        "method",
        "body",
        "body_format",
        "headers",
        "status_code",
        "return_content",
        "timeout",
        "validate_certs",
        "follow_redirects",
        "unix_socket",
    },
)
def uri(ctx: ModuleContext, args: dict[str, Any]) -> ModuleResult:
    method = str(args.get("method", "GET")).upper()
    if ctx.check:  # as in Ansible: uri does not run in check mode (a task can opt in with check_mode: false)
        return ModuleResult(skipped=True, msg=f"{method} {args.get('url')} is not sent in check mode")
    wanted = args.get("status_code", [200])
    codes = [int(c) for c in (wanted if isinstance(wanted, list) else [wanted])]
    body, headers = body_bytes(args)
    call = dict(args)
    call["headers"] = {**headers, **(args.get("headers") or {})}
    result = ctx.sh(curl_command(call, body_file=body is not None), stdin=body)
    status, ctype, content = parse_curl(result)
    data: dict[str, Any] = {"status": status, "url": args["url"], "content_type": ctype}
    if boolean(args.get("return_content", False), "return_content") or "json" in ctype:
        data["content"] = content
    if "json" in ctype:
        with contextlib.suppress(ValueError):
            data["json"] = json.loads(content)
    if status not in codes:
        reason = result.err.strip() or content.strip()[-300:]
        msg = (
            f"Status code was {status} and not {codes}: {reason}"
            if reason
            else f"Status code was {status} and not {codes}"
        )
        return ModuleResult(failed=True, msg=msg, data=data, command=f"{method} {args['url']}", rc=status)
    return ModuleResult(msg=f"OK ({status})", data=data)


# ---------------------------------------------------------------- get_url
@module(
    "get_url",
    args={"url", "dest", "mode", "owner", "group", "checksum", "force", "timeout", "headers", "validate_certs"},
)
def get_url(ctx: ModuleContext, args: dict[str, Any]) -> ModuleResult:
    url = str(required(args, "url"))
    dest = str(required(args, "dest"))
    force = boolean(args.get("force", False), "force")
    mode, owner, group = parse_mode(args.get("mode")), args.get("owner"), args.get("group")
    algo, want = "", ""
    if args.get("checksum"):
        algo, _, want = str(args["checksum"]).partition(":")
        if algo not in ("sha256", "sha1", "md5", "sha512") or not want:
            raise ModuleArgError("argument `checksum` must look like sha256:HEX")
    name = posixpath.basename(urlparse(url).path) or "index.html"
    stats, probe = gather(ctx, file_stats([dest, posixpath.join(dest, name)]))
    if stats is None:
        return ctx.failed(f"cannot look at {dest}", probe)
    target = posixpath.join(dest, name) if stats[dest].exists and stats[dest].kind == "directory" else dest
    cur = stats[target]
    if cur.exists and not force:
        fine = True
        if want:
            if algo == "sha256":
                fine = cur.sha256 == want.lower()
            else:
                r = ctx.sh(f"{algo}sum -- {quote(target)}")
                fine = r.exit_code == 0 and r.out.split(" ")[0] == want.lower()
        if fine:
            cmds = attr_commands(
                target, cur, mode, None if owner is None else str(owner), None if group is None else str(group)
            )
            if not cmds:
                return ModuleResult(data={"dest": target, "url": url}, msg="file already there")
            if ctx.check:
                return ModuleResult(changed=True, data={"dest": target, "url": url})
            r = ctx.sh("set -e\n" + "\n".join(cmds))
            if r.exit_code != 0:
                return ctx.failed(f"cannot set attributes of {target}", r)
            return ModuleResult(changed=True, data={"dest": target, "url": url})
    if ctx.check:
        return ModuleResult(changed=True, msg=f"{url} would be downloaded to {target}", data={"dest": target})
    fetch = dict(args)
    fetch["method"] = "GET"
    curl = curl_command(fetch, body_file=False).replace("curl -sS", "curl -fsS", 1)
    folder = quote(posixpath.dirname(target) or ".")
    lines = [
        "set -e",
        f"t=$(mktemp {folder}/.infprov.XXXXXX)",
        "trap 'rm -f \"$t\"' EXIT",
        f'{curl} -o "$t" >/dev/null',
    ]
    if want:
        lines.append(
            f'[ "$({algo}sum "$t" | cut -d" " -f1)" = {quote(want.lower())} ] || '
            f"{{ printf 'checksum mismatch for %s\\n' {quote(url)} >&2; exit 1; }}"
        )
    if cur.exists:  # as Ansible: a forced download that brings the same content changes nothing
        lines.append(f'if cmp -s "$t" {quote(target)}; then echo {SAME_MARK}; exit 0; fi')
    lines.append(f'chmod {mode:o} "$t"' if mode is not None else 'chmod "$(printf %o $(( 0666 & ~0$(umask) )))" "$t"')
    if owner is not None:
        lines.append(f'chown {quote(str(owner))} "$t"')
    if group is not None:
        lines.append(f'chgrp {quote(str(group))} "$t"')
    lines.append(f'mv -f "$t" {quote(target)}')
    result = ctx.sh("\n".join(lines))
    if result.exit_code != 0:
        return ctx.failed(f"download of {url} failed", result, f"curl {url}")
    if SAME_MARK in result.out:
        cmds = attr_commands(
            target, cur, mode, None if owner is None else str(owner), None if group is None else str(group)
        )
        if not cmds:
            return ModuleResult(data={"dest": target, "url": url}, msg="OK (content unchanged)")
        r = ctx.sh("set -e\n" + "\n".join(cmds))
        if r.exit_code != 0:
            return ctx.failed(f"cannot set attributes of {target}", r)
    return ModuleResult(changed=True, data={"dest": target, "url": url})
