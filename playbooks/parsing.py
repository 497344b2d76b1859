"""Reading playbooks: Ansible's playbook syntax (a subset), checked whole before anything runs.

Plays, tasks, keywords, module arguments and the template features the engine refuses; and `-e` values.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2

from infprov.inventory.yamlsrc import YamlSyntaxError, line_of, load_text, plain
from infprov.playbooks.check import strings, template_problem, tree_problem
from infprov.playbooks.errors import PlaybookError
from infprov.playbooks.modules import MODULES, ModuleArgError, ModuleSpec
from infprov.playbooks.modules.command import split_free_form
from infprov.playbooks.templating import has_template, template_env

BUILTIN_DIR = Path(__file__).resolve().parent

TASK_KEYWORDS = frozenset(
    {
        "name", "when", "register", "become", "become_user", "changed_when", "failed_when", "loop",
        "with_items", "loop_control", "ignore_errors", "args", "environment", "until", "retries", "delay",
        "vars", "timeout", "tags", "no_log", "check_mode", "notify",
    }
)  # fmt: skip
PLAY_KEYWORDS = frozenset(
    {
        "name", "hosts", "vars", "vars_files", "tasks", "pre_tasks", "post_tasks", "handlers", "become",
        "become_user", "gather_facts", "environment", "tags", "strategy",
    }
)  # fmt: skip
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
CONDITIONALS = ("when", "changed_when", "failed_when", "until")
SECTIONS = ("pre_tasks", "tasks", "post_tasks")


@dataclass(frozen=True)
class Task:
    """One task as written: its module (canonical short name), arguments and keywords."""

    name: str
    module: str
    args: dict[str, Any]
    keywords: dict[str, Any]
    file: str
    line: int
    tags: frozenset[str] = frozenset()  # its own and its play's

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
    handlers: tuple[Task, ...] = ()
    become: Any = None
    become_user: Any = None
    environment: dict[str, Any] = field(default_factory=dict)
    file: str = ""
    line: int = 0
    sections: tuple[tuple[Task, ...], ...] = ()  # pre_tasks, tasks, post_tasks: handlers flush after each
    strategy: str = "linear"


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
            raise PlaybookError(
                f"{path}:{line_of(node, key)}: {label}: unknown play keyword {key!r}",
                f"supported: {', '.join(sorted(PLAY_KEYWORDS))}",
            )
    hosts = node.get("hosts")
    if not hosts:
        raise PlaybookError(f"{where}: {label} has no `hosts`", "add `hosts: all` or a group/host pattern")
    if isinstance(hosts, list):
        hosts = ":".join(str(h) for h in hosts)
    if has_template(str(hosts)):
        raise PlaybookError(
            f"{path}:{line_of(node, 'hosts')}: {label}: a templated `hosts` is not supported",
            "name the hosts or groups literally",
        )
    gather = node.get("gather_facts", True)
    if not (gather is False or (isinstance(gather, str) and gather.strip().lower() in ("no", "false"))):
        raise PlaybookError(
            f"{path}:{line_of(node, 'gather_facts') if 'gather_facts' in node else line_of(node)}: {label}: "
            "gathering facts is not supported (`gather_facts` is not false)",
            "add `gather_facts: false` to the play (infprov's engine gathers no facts)",
        )
    strategy = node.get("strategy", "linear")
    if strategy not in ("linear", "free"):
        raise PlaybookError(
            f"{path}:{line_of(node, 'strategy')}: {label}: strategy {strategy!r} is not supported",
            "use linear (the default) or free",
        )
    play_tags = _tags(node, path, label)
    vars_node = node.get("vars") or {}
    if not isinstance(vars_node, dict):
        raise PlaybookError(f"{path}:{line_of(node, 'vars')}: {label}: `vars` must be a mapping")
    for key, value in vars_node.items():
        _refuse_templates(value, f"{path}:{line_of(vars_node, key)}: {label}: vars {key!r}")
    play_vars = dict(plain(vars_node))
    vfiles = node.get("vars_files") or []
    for vf in vfiles if isinstance(vfiles, list) else [vfiles]:
        if has_template(str(vf)):
            raise PlaybookError(
                f"{path}:{line_of(node, 'vars_files')}: {label}: a templated vars_files path is not supported"
            )
        vpath = path.parent / str(vf)
        try:
            loaded_node = load_text(vpath.read_text(encoding="utf-8")) or {}
        except (OSError, UnicodeDecodeError, YamlSyntaxError) as exc:
            raise PlaybookError(f"{path}:{line_of(node, 'vars_files')}: cannot read vars file {vpath}: {exc}") from exc
        if not isinstance(loaded_node, dict):
            raise PlaybookError(f"{vpath}: a vars file must be a mapping")
        for key, value in loaded_node.items():
            _refuse_templates(value, f"{vpath}:{line_of(loaded_node, key)}: vars {key!r}")
        play_vars.update(plain(loaded_node))
    sections = tuple(tuple(_parse_tasks(node.get(section), node, section, path, play_tags)) for section in SECTIONS)
    tasks = [t for section in sections for t in section]
    handlers = tuple(_parse_tasks(node.get("handlers"), node, "handlers", path, play_tags))
    handler_names = {h.name for h in handlers}
    for task in tasks:
        for wanted in _as_list(task.keywords.get("notify")):
            if wanted not in handler_names:
                raise PlaybookError(
                    f"{task.where()}: task {task.label!r} notifies {wanted!r}, which is not a handler of this play"
                )
    env = node.get("environment") or {}
    if not isinstance(env, dict):
        raise PlaybookError(f"{path}:{line_of(node, 'environment')}: {label}: `environment` must be a mapping")
    for key in ("environment", "become", "become_user", "name"):
        if key in node:
            _refuse_templates(node[key], f"{path}:{line_of(node, key)}: {label}: `{key}`")
    return Play(
        name=name,
        hosts=str(hosts),
        vars=play_vars,
        tasks=tuple(tasks),
        handlers=handlers,
        become=node.get("become"),
        become_user=node.get("become_user"),
        environment=dict(plain(env)),
        file=str(path),
        line=line_of(node),
        sections=sections,
        strategy=str(strategy),
    )


def _tags(node: Mapping[str, Any], path: Path, label: str) -> frozenset[str]:
    value = node.get("tags")
    if value is None:
        return frozenset()
    items = value if isinstance(value, list) else str(value).split(",")
    out = set()
    for item in items:
        if not isinstance(item, str | int) or has_template(str(item)):
            raise PlaybookError(f"{path}:{line_of(node, 'tags')}: {label}: tags must be literal names")
        out.add(str(item).strip())
    return frozenset(out)


def _refuse_templates(value: Any, where: str, *, expression: bool = False) -> None:
    """One line naming the place and the template feature the engine does not support."""
    for text in strings(value):
        problem = template_problem(text, expression=expression)
        if problem:
            raise PlaybookError(f"{where}: {problem}", "see README: Playbooks: the supported subset")


def _parse_tasks(
    nodes: Any, play: Mapping[str, Any], section: str, path: Path, play_tags: frozenset[str] = frozenset()
) -> list[Task]:
    if nodes is None:
        return []
    if not isinstance(nodes, list):
        raise PlaybookError(f"{path}:{line_of(play, section)}: `{section}` must be a list of tasks")
    tasks = []
    for index, node in enumerate(nodes):
        if not isinstance(node, dict):
            raise PlaybookError(f"{path}:{line_of(nodes, index)}: each task must be a mapping")
        tasks.append(parse_task(node, path, play_tags))
    return tasks


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
        raise PlaybookError(
            f"{path}:{line_of(node, key)}: {label}: unknown module or keyword {key!r}",
            f"modules: {', '.join(sorted(k for k in MODULES if '.' not in k))}; "
            f"keywords: {', '.join(sorted(TASK_KEYWORDS))}",
        )
    if not found:
        raise PlaybookError(f"{path}:{line}: {label} names no module", "add one, e.g. `ansible.builtin.shell: ...`")
    if len(found) > 1:
        raise PlaybookError(f"{path}:{line}: {label} names more than one module: {', '.join(found)}")
    spec = MODULES[found[0]]
    args = _module_args(spec, node[found[0]], path, line_of(node, found[0]), label)
    extra = node.get("args")
    if extra is not None:
        if not isinstance(extra, dict):
            raise PlaybookError(f"{path}:{line_of(node, 'args')}: {label}: `args` must be a mapping")
        args = {**_module_args(spec, dict(extra), path, line_of(node, "args"), label), **args}
    keywords = {k: plain(v) for k, v in node.items() if k in TASK_KEYWORDS and k not in ("name", "args")}
    _check_keywords(keywords, path, node, label)
    _check_task_templates(node, found[0], spec, path, label)
    tags = _tags(node, path, label) | play_tags
    return Task(name=name, module=spec.name, args=args, keywords=keywords, file=str(path), line=line, tags=tags)


def _check_task_templates(node: Mapping[str, Any], module_key: str, spec: ModuleSpec, path: Path, label: str) -> None:
    for key, value in node.items():
        where = f"{path}:{line_of(node, key)}: {label}: `{key}`"
        if key in CONDITIONALS:
            _refuse_templates(value, where, expression=True)
        elif key in (module_key, "args") and spec.name == "assert" and isinstance(value, dict) and "that" in value:
            _refuse_templates(value["that"], where, expression=True)
            _refuse_templates({k: v for k, v in value.items() if k != "that"}, where)
        elif key in (module_key, "args") and spec.name == "debug" and isinstance(value, dict) and "var" in value:
            _refuse_templates(value["var"], where, expression=True)
        else:
            _refuse_templates(value, where)
    if spec.name == "template":
        args = node.get(module_key) if isinstance(node.get(module_key), dict) else node.get("args") or {}
        src = args.get("src") if isinstance(args, dict) else None
        if isinstance(src, str) and not has_template(src):
            _check_template_file(path.parent, src, f"{path}:{line_of(node, module_key)}: {label}")


def _check_template_file(base: Path, src: str, where: str) -> None:
    from infprov.playbooks.modules.files import find_local

    try:
        local = find_local(base, "templates", src)
        text = local.read_text(encoding="utf-8")
    except (ModuleArgError, OSError, UnicodeDecodeError):
        return  # the task reports a missing or unreadable source when it runs, as Ansible does
    env = template_env(file=True)
    try:
        tree = env.parse(text)
    except jinja2.TemplateSyntaxError as exc:
        raise PlaybookError(f"{local}:{exc.lineno}: template syntax error: {exc.message} (used at {where})") from None
    problem = tree_problem(tree, env)
    if problem:
        raise PlaybookError(f"{local}: {problem} (used at {where})", "see README: Playbooks: the supported subset")


def _module_args(spec: ModuleSpec, value: Any, path: Path, line: int, label: str) -> dict[str, Any]:
    if value is None:
        args: dict[str, Any] = {}
    elif isinstance(value, dict):
        args = dict(plain(value))
    elif isinstance(value, str | int | float | bool):
        text = str(value)
        if spec.name in ("shell", "command"):
            cmd, options = split_free_form(text)
            args = {"cmd": cmd, **options}
        elif spec.free_form is not None and not _looks_kv(text):
            args = {spec.free_form: value}
        else:
            args = _parse_kv(text, path, line, label)
    else:
        raise PlaybookError(f"{path}:{line}: {label}: arguments of {spec.name} must be a mapping")
    for alias, real in spec.aliases.items():
        if alias in args and real not in args:
            args[real] = args.pop(alias)
    if "cmd" in args and "_raw_params" in args:
        args.pop("_raw_params")
    if spec.args is not None:
        for key in args:
            if key not in spec.args:
                raise PlaybookError(
                    f"{path}:{line}: {label}: module {spec.name} has no argument {key!r}",
                    f"{spec.name} takes: {', '.join(sorted(a for a in spec.args if not a.startswith('_')))}",
                )
    return args


def _looks_kv(text: str) -> bool:
    try:
        words = shlex.split(text)
    except ValueError:
        return False
    return bool(words) and all(re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", w) for w in words)


def _parse_kv(text: str, path: Path, line: int, label: str) -> dict[str, Any]:
    try:
        words = shlex.split(text)
    except ValueError as exc:
        raise PlaybookError(f"{path}:{line}: {label}: cannot split arguments {text!r}: {exc}") from None
    out: dict[str, Any] = {}
    for word in words:
        key, eq, value = word.partition("=")
        if not eq or not _IDENT.fullmatch(key):
            raise PlaybookError(f"{path}:{line}: {label}: expected key=value arguments, got {word!r}")
        out[key] = value
    return out


def _check_keywords(kw: dict[str, Any], path: Path, node: Mapping[str, Any], label: str) -> None:
    def bad(key: str, what: str) -> PlaybookError:
        return PlaybookError(f"{path}:{line_of(node, key)}: {label}: `{key}` {what}")

    reg = kw.get("register")
    if reg is not None and not (isinstance(reg, str) and _IDENT.fullmatch(reg)):
        raise bad("register", "must be a variable name")
    for key in ("vars", "environment"):
        if key in kw and not isinstance(kw[key], dict):
            raise bad(key, "must be a mapping")
    if "loop" in kw and "with_items" in kw:
        raise bad("loop", "and `with_items` cannot both be given")
    lc = kw.get("loop_control")
    if lc is not None and (not isinstance(lc, dict) or set(lc) - {"loop_var", "label", "pause", "index_var"}):
        raise bad("loop_control", "may only hold loop_var, label, pause and index_var")
    for key in ("retries", "delay", "timeout"):
        if key in kw and not isinstance(kw[key], int | float | str):
            raise bad(key, "must be a number")


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
