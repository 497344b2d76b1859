"""Reading playbooks: the part of Ansible's playbook syntax infprov's own playbooks use, checked whole before
anything runs; everything else is refused in one line that points at ansible-core. And `-e` values.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infprov.inventory.yamlsrc import YamlSyntaxError, line_of, load_text, plain
from infprov.playbooks.check import USE_ANSIBLE, has_template, strings, template_problem
from infprov.playbooks.errors import PlaybookError
from infprov.playbooks.modules import MODULES, ModuleSpec
from infprov.playbooks.modules.command import INLINE_OPTION

BUILTIN_DIR = Path(__file__).resolve().parent

# What infprov's own playbooks (server.yml, bench.yml, bundle.yml) use, and nothing more.
TASK_KEYWORDS = frozenset(
    {"name", "when", "register", "changed_when", "failed_when", "loop", "loop_control", "vars", "timeout", "no_log"}
)  # fmt: skip
PLAY_KEYWORDS = frozenset({"name", "hosts", "vars", "tasks", "tags", "gather_facts"})
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
CONDITIONALS = ("when", "changed_when", "failed_when")
# Tags Ansible gives a meaning of its own
SPECIAL_TAGS = frozenset({"always", "never", "all", "tagged", "untagged"})
# Ansible's other task keywords: a refusal names them as keywords rather than as unknown modules
ANSIBLE_TASK_KEYWORDS = frozenset(
    {
        "action", "any_errors_fatal", "args", "async", "become", "become_exe", "become_flags", "become_method",
        "become_user", "block", "check_mode", "collections", "connection", "debugger", "delay", "delegate_facts",
        "delegate_to", "diff", "environment", "ignore_errors", "ignore_unreachable", "import_tasks",
        "include_tasks", "local_action", "module_defaults", "notify", "poll", "port", "remote_user", "rescue",
        "always", "retries", "run_once", "tags", "throttle", "until", "with_items", "with_dict", "with_list",
        "with_fileglob", "with_together", "with_nested", "with_sequence", "with_subelements", "listen",
    }
)  # fmt: skip


def unsupported(where: str, what: str) -> PlaybookError:
    """The one line a refusal is: where, what infprov's engine does not run, and where to run it instead."""
    return PlaybookError(f"{where}: {what} is not supported by infprov's engine (it runs infprov's own playbooks)",
                         USE_ANSIBLE)


def template_refusal(where: str, problem: str) -> PlaybookError:
    if problem.startswith("template syntax error"):
        return PlaybookError(f"{where}: {problem}", "fix the template")
    return unsupported(where, problem)


@dataclass(frozen=True)
class Task:
    """One task as written: its module (canonical short name), arguments and keywords."""

    name: str
    module: str
    args: dict[str, Any]
    keywords: dict[str, Any]
    file: str
    line: int
    tags: frozenset[str] = frozenset()  # its play's

    @property
    def label(self) -> str:
        return self.name or self.module

    def where(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True)
class Play:
    name: str
    hosts: str
    vars: dict[str, Any]
    tasks: tuple[Task, ...]
    file: str = ""
    line: int = 0


@dataclass(frozen=True)
class Playbook:
    path: Path
    plays: tuple[Play, ...]

    @property
    def base_dir(self) -> Path:
        return self.path.parent


# ---------------------------------------------------------------- finding and reading playbooks
def builtin_playbooks() -> list[str]:
    return sorted(p.stem for p in BUILTIN_DIR.glob("*.yml"))


def resolve_playbook(name_or_path: str | Path) -> Path:
    """A path to a playbook file, or the name of a built-in one (`server` → playbooks/server.yml)."""
    path = Path(name_or_path).expanduser()
    if path.is_file():
        return path.resolve()
    text = str(name_or_path)
    if "/" not in text:
        stem = text.removesuffix(".yml").removesuffix(".yaml")
        builtin = BUILTIN_DIR / f"{stem}.yml"
        if builtin.is_file():
            return builtin
    names = ", ".join(builtin_playbooks()) or "(none)"
    raise PlaybookError(f"no playbook {text!r}", f"give a path to a playbook file or a built-in name: {names}")


def load_playbook(name_or_path: str | Path) -> Playbook:
    path = resolve_playbook(name_or_path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PlaybookError(f"cannot read playbook {path}: {exc.strerror}", exit_code=1) from exc
    except UnicodeDecodeError:
        raise PlaybookError(f"{path}: not UTF-8 text", "a playbook is YAML text") from None
    return parse_playbook(text, path)


def parse_playbook(text: str, path: Path) -> Playbook:
    """Check the whole playbook before anything runs: plays, keywords, modules and their arguments."""
    where = str(path)
    try:
        doc = load_text(text)
    except YamlSyntaxError as exc:
        raise PlaybookError(f"{where}:{exc.line}: not valid YAML: {exc.problem}", "fix the YAML syntax") from exc
    if not isinstance(doc, list) or not doc:
        raise PlaybookError(f"{where}:{line_of(doc)}: a playbook is a list of plays", "start it with `- hosts: all`")
    plays = []
    for index, node in enumerate(doc):
        if not isinstance(node, dict):
            raise PlaybookError(f"{where}:{line_of(doc, index)}: each play must be a mapping with `hosts` and `tasks`")
        plays.append(_parse_play(node, path))
    return Playbook(path=path, plays=tuple(plays))


def _parse_play(node: Mapping[str, Any], path: Path) -> Play:
    where = f"{path}:{line_of(node)}"
    name = str(node.get("name") or "")
    label = f"play {name!r}" if name else "play"
    for key in node:
        if key not in PLAY_KEYWORDS:
            raise unsupported(f"{path}:{line_of(node, key)}: {label}", f"play keyword {key!r}")
    hosts = node.get("hosts")
    if not hosts:
        raise PlaybookError(f"{where}: {label} has no `hosts`", "add `hosts: all` or a group/host pattern")
    if isinstance(hosts, list):
        hosts = ":".join(str(h) for h in hosts)
    if has_template(str(hosts)):
        raise unsupported(f"{path}:{line_of(node, 'hosts')}: {label}", "a templated `hosts`")
    gather = node.get("gather_facts", True)
    if not (gather is False or (isinstance(gather, str) and gather.strip().lower() in ("no", "false"))):
        raise unsupported(
            f"{path}:{line_of(node, 'gather_facts') if 'gather_facts' in node else line_of(node)}: {label}",
            "gathering facts (`gather_facts` is not false)",
        )
    play_tags = _tags(node, path, label)
    vars_node = node.get("vars") or {}
    if not isinstance(vars_node, dict):
        raise PlaybookError(f"{path}:{line_of(node, 'vars')}: {label}: `vars` must be a mapping")
    for key, value in vars_node.items():
        _refuse_templates(value, f"{path}:{line_of(vars_node, key)}: {label}: vars {key!r}")
    if "name" in node:
        _refuse_templates(node["name"], f"{path}:{line_of(node, 'name')}: {label}: `name`")
    tasks_node = node.get("tasks")
    if not isinstance(tasks_node, list) or not tasks_node:
        raise PlaybookError(f"{where}: {label}: `tasks` must be a list of tasks")
    tasks = []
    for index, task in enumerate(tasks_node):
        if not isinstance(task, dict):
            raise PlaybookError(f"{path}:{line_of(tasks_node, index)}: each task must be a mapping")
        tasks.append(parse_task(task, path, play_tags))
    return Play(name=name, hosts=str(hosts), vars=dict(plain(vars_node)), tasks=tuple(tasks), file=str(path),
                line=line_of(node))


def _tags(node: Mapping[str, Any], path: Path, label: str) -> frozenset[str]:
    value = node.get("tags")
    if value is None:
        return frozenset()
    items = value if isinstance(value, list) else str(value).split(",")
    out = set()
    for item in items:
        if not isinstance(item, str | int) or has_template(str(item)):
            raise PlaybookError(f"{path}:{line_of(node, 'tags')}: {label}: tags must be literal names")
        tag = str(item).strip()
        if tag in SPECIAL_TAGS:
            raise unsupported(f"{path}:{line_of(node, 'tags')}: {label}", f"the special tag {tag!r}")
        out.add(tag)
    return frozenset(out)


def _refuse_templates(value: Any, where: str, *, expression: bool = False) -> None:
    """One line naming the place and the template feature the engine does not support."""
    for text in strings(value):
        problem = template_problem(text, expression=expression)
        if problem:
            raise template_refusal(where, problem)


def parse_task(node: Mapping[str, Any], path: Path, play_tags: frozenset[str] = frozenset()) -> Task:
    """One task: exactly one module, known keywords, module arguments the module knows."""
    line = line_of(node)
    name = str(node.get("name") or "")
    label = f"task {name!r}" if name else "task"
    found: list[str] = []
    for key in node:
        if key in TASK_KEYWORDS:
            continue
        if key in MODULES:
            found.append(key)
            continue
        what = f"task keyword {key!r}" if key in ANSIBLE_TASK_KEYWORDS else f"module {key!r}"
        raise unsupported(f"{path}:{line_of(node, key)}: {label}", what)
    if not found:
        raise PlaybookError(f"{path}:{line}: {label} names no module", "add one, e.g. `ansible.builtin.shell: ...`")
    if len(found) > 1:
        raise PlaybookError(f"{path}:{line}: {label} names more than one module: {', '.join(found)}")
    spec = MODULES[found[0]]
    args = _module_args(spec, node[found[0]], path, line_of(node, found[0]), label)
    keywords = {k: plain(v) for k, v in node.items() if k in TASK_KEYWORDS and k != "name"}
    _check_keywords(keywords, path, node, label)
    for key, value in node.items():
        where = f"{path}:{line_of(node, key)}: {label}: `{key}`"
        if key in CONDITIONALS:
            _refuse_templates(value, where, expression=True)
        elif key == found[0] and spec.conditions:
            _refuse_templates({k: v for k, v in args.items() if k in spec.conditions}, where, expression=True)
            _refuse_templates({k: v for k, v in args.items() if k not in spec.conditions}, where)
        else:
            _refuse_templates(value, where)
    return Task(name=name, module=spec.name, args=args, keywords=keywords, file=str(path), line=line, tags=play_tags)


def _module_args(spec: ModuleSpec, value: Any, path: Path, line: int, label: str) -> dict[str, Any]:
    where = f"{path}:{line}: {label}"
    if isinstance(value, dict):
        args = dict(plain(value))
    elif isinstance(value, str) and spec.free_form is not None:
        inline = INLINE_OPTION.search(value) if spec.name in ("shell", "command") else None
        if inline:
            raise unsupported(where, f"the free-form option `{inline.group(1)}=` of {spec.name}")
        args = {spec.free_form: value}
    elif spec.free_form is not None:
        raise PlaybookError(f"{where}: {spec.name} wants a command (text) or a mapping of arguments")
    else:
        raise unsupported(where, f"arguments of {spec.name} that are not a mapping (key=value text)")
    for key in args:
        if key not in spec.args:
            takes = ", ".join(sorted(spec.args))
            raise unsupported(where, f"argument {key!r} of module {spec.name} (it takes {takes})")
    for key, want in spec.fixed.items():
        allowed = want if isinstance(want, tuple) else (want,)
        given_value = args.get(key)
        if not any(given_value == w and (not isinstance(w, bool) or isinstance(given_value, bool)) for w in allowed):
            given = f"{key}: {args[key]!r}" if key in args else f"no `{key}`"
            shown = " or ".join(f"`{key}: {str(w).lower() if isinstance(w, bool) else w}`" for w in allowed)
            raise unsupported(where, f"{spec.name} with {given} (infprov's engine runs it with {shown} only)")
    return args


def _check_keywords(kw: dict[str, Any], path: Path, node: Mapping[str, Any], label: str) -> None:
    def bad(key: str, what: str) -> PlaybookError:
        return PlaybookError(f"{path}:{line_of(node, key)}: {label}: `{key}` {what}")

    reg = kw.get("register")
    if reg is not None and not (isinstance(reg, str) and _IDENT.fullmatch(reg)):
        raise bad("register", "must be a variable name")
    if "vars" in kw and not isinstance(kw["vars"], dict):
        raise bad("vars", "must be a mapping")
    lc = kw.get("loop_control")
    if lc is not None:
        if not isinstance(lc, dict):
            raise bad("loop_control", "must be a mapping")
        for key in lc:
            if key != "label":
                raise unsupported(f"{path}:{line_of(node, 'loop_control')}: {label}", f"loop_control {key!r}")
        if "loop" not in kw:
            raise bad("loop_control", "needs a `loop`")
    if "timeout" in kw and not isinstance(kw["timeout"], int | float | str):
        raise bad("timeout", "must be a number")
    if "no_log" in kw and not isinstance(kw["no_log"], bool):
        raise bad("no_log", "must be true or false")


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def parse_extra_vars(items: list[str]) -> dict[str, Any]:
    """`-e` values as ansible-playbook takes them: `k=v` pairs (strings), a JSON/YAML mapping, or `@file`."""
    out: dict[str, Any] = {}
    for item in items:
        text = item.strip()
        if text.startswith("@"):
            path = Path(text[1:]).expanduser()
            try:
                text = path.read_text(encoding="utf-8")
            except OSError as exc:
                raise PlaybookError(
                    f"-e {item}: cannot read {path}: {exc.strerror}",
                    "give the path of a YAML or JSON file of variables",
                ) from None
            except UnicodeDecodeError:
                raise PlaybookError(f"-e {item}: {path} is not UTF-8 text", "give a YAML or JSON file") from None
        if text.startswith("{") or "\n" in text or item.startswith("@"):
            try:
                loaded = plain(load_text(text))
            except YamlSyntaxError as exc:
                raise PlaybookError(f"-e {item!r}: not a JSON/YAML mapping: {exc.problem}") from None
            if not isinstance(loaded, dict):
                raise PlaybookError(f"-e {item!r}: must be a mapping", "use k=v, a JSON object or @vars.yml")
            out.update(loaded)
            continue
        try:
            words = shlex.split(text)
        except ValueError as exc:
            raise PlaybookError(f"-e {item!r}: {exc}", "quote values as a shell would, e.g. -e \"msg='a b'\"") from None
        for word in words:
            key, eq, value = word.partition("=")
            if not eq or not _IDENT.fullmatch(key):
                raise PlaybookError(f"-e {item!r}: expected k=v", "e.g. -e model_name=resnet50 -e port=8000")
            out[key] = value
    return out
