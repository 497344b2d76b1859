"""The environment cache: the Neuron environment image built once, kept in the account's ECR, pulled by every
other host (this cluster's and any later one's) instead of building it again."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import shlex
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from infprov.floor.errors import InfprovError
from infprov.provision import ui
from infprov.provision.specs import TAG_MANAGED

if TYPE_CHECKING:
    from infprov.inventory.model import Host
    from infprov.playbooks.connection import CommandResult, Stdin
    from infprov.provision.providers import Provider
    from infprov.provision.server import HostReady, ServerResult

# One private repository per region holds every environment infprov caches, each under a tag that says what
# made it (EnvKey.tag). The IAM policy grants the ECR actions on this repository only.
REPOSITORY = "infprov-cache"
# ECR's storage price for private repositories, USD per GB-month (us-east-1; same-region pulls to EC2 are free):
# the Amazon ECR pricing page (https://aws.amazon.com/ecr/pricing/) as quoted by
# https://cloudburn.io/blog/amazon-ecr-pricing ("US East (N. Virginia) rates ... as of March 2026"),
# looked up 2026-12-07. ECR bills the compressed size it reports as imageSizeInBytes.
STORAGE_USD_PER_GB_MONTH = 0.10
STORAGE_PRICE_SOURCE = "aws.amazon.com/ecr/pricing (private storage, us-east-1; quoted 2026-03, read 2026-12-07)"
PUSH_TIMEOUT = 3600.0  # a real environment image is GBs; the push or pull of it is one command
LABEL = "infprov.setup"  # server.yml labels the environment image with its key (the same digest)

# What server.yml makes the environment from, per Neuron generation: its setup script, its pins file (the
# sandbox's pins under files/sandbox/) and the image it starts from; and the image it commits the result to.
_GENERATIONS = {
    "neuron-v1": ("setup.sh", "pins.env", "nvcr.io/nvidia/tritonserver:22.04-py3", "infprov/tritonserver-neuron:22.04"),
    "neuron-v2": ("setup-neuronx.sh", "pins-neuronx.env", "nvcr.io/nvidia/tritonserver:24.04-py3",
                  "infprov/tritonserver-neuronx:24.04"),
}


@dataclass(frozen=True)
class EnvKey:
    """What an environment image was made from: the generation, and the digest of the setup script, its pins and
    the base image, as server.yml computes it on the host (`{ cat setup.sh pins.env; echo IMAGE; } | sha256sum`)."""

    generation: str
    digest: str
    base_image: str
    env_image: str

    @property
    def tag(self) -> str:
        return f"env-{self.generation}-{self.digest}"


@dataclass(frozen=True)
class ModelKey:
    """What a compiled model was made from: server.yml's model key (the start and compile scripts, the model's
    name, batch and core range) and the environment it was compiled in (the compiler's version is in its pins)."""

    generation: str
    name: str
    digest: str
    env_digest: str

    @property
    def tag(self) -> str:
        return f"model-{self.generation}-{hashlib.sha256((self.env_digest + self.digest).encode()).hexdigest()}"


def model_key(instance_type: str, neuron_cores: int, env: EnvKey, v2_batch: int = 8) -> ModelKey:
    """The model key server.yml computes on a host of this type (`{ cat start.sh compile_rn50.py
    compile_rn50_neuronx.py; echo 'GENERATION NAME BATCH RANGE'; } | sha256sum`)."""
    from infprov.playbooks.parsing import BUILTIN_DIR

    files = BUILTIN_DIR / "files"
    name = f"rn50-{int(neuron_cores)}neuroncores-default"
    batch = v2_batch if env.generation == "neuron-v2" else 64
    digest = hashlib.sha256()
    for part in ("inf1/start.sh", "inf1/compile_rn50.py", "neuronx/compile_rn50.py"):
        digest.update((files / part).read_bytes())
    digest.update(f"{env.generation} {name} {batch} 0:{int(neuron_cores) - 1}\n".encode())
    return ModelKey(env.generation, name, digest.hexdigest(), env.digest)


def generation_of(instance_type: str) -> str:
    return "neuron-v2" if instance_type.split(".")[0] in ("inf2", "trn1") else "neuron-v1"


def env_key(instance_type: str, profile: str) -> EnvKey:
    """The key server.yml will compute on a host of this type under this profile (sandbox: the sandbox's pins)."""
    from infprov.playbooks.parsing import BUILTIN_DIR

    generation = generation_of(instance_type)
    setup, pins, base, image = _GENERATIONS[generation]
    files = BUILTIN_DIR / "files"
    pins_path = files / "sandbox" / pins if profile == "sandbox" else files / pins
    digest = hashlib.sha256()
    digest.update((files / setup).read_bytes())
    digest.update((files / "pins.sh").read_bytes())  # the pins reader setup.sh sources
    digest.update(pins_path.read_bytes())
    digest.update(f"{base}\n".encode())
    return EnvKey(generation, digest.hexdigest(), base, image)


@dataclass(frozen=True)
class Registry:
    """Where the hosts' docker reaches the cache, and the short-lived login for it (a secret: never shown)."""

    address: str  # host[:port], as docker names it
    user: str
    password: str = dataclasses.field(repr=False)

    def ref(self, tag: str) -> str:
        return f"{self.address}/{REPOSITORY}:{tag}"


@dataclass(frozen=True)
class CacheEntry:
    tag: str
    size_bytes: int
    pushed_at: str
    current: bool = True  # made from what this infprov's setup makes (current_tags); False: never used by it


@dataclass(frozen=True)
class CacheInfo:
    """What `status` shows of the cache: its entries, their size and what storing them costs a month."""

    repository: str
    region: str
    entries: tuple[CacheEntry, ...]

    @property
    def size_bytes(self) -> int:
        return sum(e.size_bytes for e in self.entries)

    @property
    def monthly_usd(self) -> float:
        return self.size_bytes / 2**30 * STORAGE_USD_PER_GB_MONTH  # AWS bills GB as 2^30 bytes

    @property
    def stale(self) -> tuple[CacheEntry, ...]:
        return tuple(e for e in self.entries if not e.current)

    def to_dict(self) -> dict[str, Any]:
        return {"repository": self.repository, "region": self.region,
                "entries": [dataclasses.asdict(e) for e in self.entries],
                "size_bytes": self.size_bytes, "monthly_usd": round(self.monthly_usd, 4),
                "stale_size_bytes": sum(e.size_bytes for e in self.stale),
                "price_usd_per_gb_month": STORAGE_USD_PER_GB_MONTH, "price_source": STORAGE_PRICE_SOURCE}


# ---------------------------------------------------------------- the control plane (ECR, with the user's credentials)


def ensure_repository(prov: Provider) -> None:
    """The region's cache repository, made (tagged infprov:managed=true) if missing; one that exists without that
    tag is someone else's and is never used."""
    found = prov.repository(REPOSITORY)
    if found is None:
        prov.create_repository(REPOSITORY, {TAG_MANAGED: "true"})
        return
    if prov.repository_tags(str(found["repositoryArn"])).get(TAG_MANAGED) != "true":
        raise InfprovError(f"the ECR repository {REPOSITORY} exists but infprov did not make it (no {TAG_MANAGED} tag)",
                           f"rename or tag it {TAG_MANAGED}=true if it is infprov's cache")


def has(prov: Provider, key: EnvKey) -> bool:
    return bool(prov.repository_images(REPOSITORY, key.tag))


def login(prov: Provider) -> Registry:
    endpoint, user, password = prov.registry_token()
    return Registry(prov.registry_address(endpoint), user, password)


def current_tags() -> set[str]:
    """Every tag this infprov's setup would look for: the environment of each generation (with the real pins and
    the sandbox's), and the compiled model of each instance type in it. Any other entry was made by another
    setup script, other pins or another compiler (an older infprov, or a teammate's newer one)."""
    from infprov.provision import catalog

    tags = set()
    for name in catalog.names():
        itype = catalog.get(name)
        for profile in ("", "sandbox"):
            key = env_key(name, profile)
            tags |= {key.tag, model_key(name, itype.neuron_cores, key).tag}
    return tags


def info(prov: Provider) -> CacheInfo | None:
    """The cache in the provider's region (None: there is none), each entry marked current or not."""
    if prov.repository(REPOSITORY) is None:
        return None
    wanted = current_tags()
    entries = []
    for image in prov.repository_images(REPOSITORY):
        for tag in image.get("imageTags") or ["(untagged)"]:
            size = int(image.get("imageSizeInBytes") or 0)
            entries.append(CacheEntry(str(tag), size, str(image.get("imagePushedAt", "")), str(tag) in wanted))
    return CacheInfo(REPOSITORY, prov.region, tuple(sorted(entries, key=lambda e: e.tag)))


def remove(prov: Provider) -> bool:
    """Delete the cache repository with its images; False if there was none."""
    if prov.repository(REPOSITORY) is None:
        return False
    prov.delete_repository(REPOSITORY)
    prov.cache_removed(REPOSITORY)
    return True


# ---------------------------------------------------------------- the data plane (docker on each host, over SSH)


class _Host:
    """One host's docker, over infprov's pinned SSH connection."""

    def __init__(self, host: Host, known_hosts: Any) -> None:
        from infprov.playbooks.connection import SshConnection

        self.host = host
        self.conn = SshConnection(host, known_hosts)

    def run(self, command: str, stdin: Stdin | None = None, timeout: float = 120.0) -> CommandResult:
        return self.conn.run(command, stdin=stdin, timeout=timeout)

    def label(self, image: str) -> str:
        fmt = '{{ index .Config.Labels "' + LABEL + '" }}'
        out = self.run(f"docker image inspect -f {shlex.quote(fmt)} {shlex.quote(image)} 2>/dev/null || true")
        return out.out.strip()

    def login(self, reg: Registry) -> None:
        # the password reaches docker on stdin only: never on a command line, in a log or in a file of ours
        done = self.run(f"docker login --username {shlex.quote(reg.user)} --password-stdin {shlex.quote(reg.address)}",
                        stdin=reg.password.encode() + b"\n")
        if done.exit_code != 0:
            raise InfprovError(f"docker login to {reg.address} failed: {_last(done, reg.password)}", "")

    def logout(self, reg: Registry) -> None:
        self.run(f"docker logout {shlex.quote(reg.address)} >/dev/null 2>&1 || true")

    def pull(self, reg: Registry, key: EnvKey) -> None:
        ref = shlex.quote(reg.ref(key.tag))
        image = shlex.quote(key.env_image)
        done = self.run(f"docker pull -q {ref} >/dev/null && docker tag {ref} {image} && docker rmi {ref} >/dev/null",
                        timeout=PUSH_TIMEOUT)
        if done.exit_code != 0:
            raise InfprovError(f"docker pull of {reg.ref(key.tag)} failed: {_last(done, reg.password)}", "")
        have = self.label(key.env_image)
        if have != key.digest:
            self.run(f"docker rmi {image} >/dev/null 2>&1 || true")
            raise InfprovError(f"the cached image carries key {have[:12] or '(none)'}, not {key.digest[:12]}", "")

    def push(self, reg: Registry, key: EnvKey) -> None:
        if self.label(key.env_image) != key.digest:
            raise InfprovError(f"{key.env_image} on the host was not made from this setup (key {key.digest[:12]})", "")
        ref = shlex.quote(reg.ref(key.tag))
        image = shlex.quote(key.env_image)
        done = self.run(f"docker tag {image} {ref} && docker push -q {ref} >/dev/null; rc=$?; "
                        f"docker rmi {ref} >/dev/null 2>&1; exit $rc", timeout=PUSH_TIMEOUT)
        if done.exit_code != 0:
            raise InfprovError(f"docker push to {reg.ref(key.tag)} failed: {_last(done, reg.password)}", "")

    def has_model(self, mkey: ModelKey) -> bool:
        pb = "/home/ubuntu/python_backend"
        done = self.run(f"test -f {pb}/models/{shlex.quote(mkey.name)}/config.pbtxt && cat {pb}/infprov/model-key "
                        "2>/dev/null || true")
        return done.out.strip() == mkey.digest

    def push_model(self, reg: Registry, mkey: ModelKey) -> None:
        """The model's folders as a one-layer image (docker import of their tar), pushed under the model's tag."""
        if not self.has_model(mkey):
            raise InfprovError(f"the host holds no model made for key {mkey.digest[:12]}", "")
        ref = shlex.quote(reg.ref(mkey.tag))
        parts = f"models/{shlex.quote(mkey.name)}" + (" infprov/rn50_neuron" if mkey.generation == "neuron-v1" else "")
        # the parent folders as entries of their own (GNU tar's --no-recursion, then --recursion for the rest):
        # docker import would make missing parents mode 0600, which no one but root could enter after export
        done = self.run(f"tar -C /home/ubuntu/python_backend -c --no-recursion models infprov --recursion {parts} | "
                        f"docker import - {ref} >/dev/null && "
                        f"docker push -q {ref} >/dev/null; rc=$?; docker rmi {ref} >/dev/null 2>&1; exit $rc",
                        timeout=PUSH_TIMEOUT)
        if done.exit_code != 0:
            raise InfprovError(f"docker push to {reg.ref(mkey.tag)} failed: {_last(done, reg.password)}", "")

    def stage_model(self, reg: Registry, mkey: ModelKey) -> None:
        """The cached model unpacked into ~/.infprov-model-stage/KEY, where server.yml takes it from."""
        ref = shlex.quote(reg.ref(mkey.tag))
        stage = f"$HOME/.infprov-model-stage/{mkey.digest}"
        done = self.run(
            "chmod -R u+rwX \"$HOME/.infprov-model-stage\" 2>/dev/null; rm -rf \"$HOME/.infprov-model-stage\" && "
            f"mkdir -p \"{stage}\" && docker pull -q {ref} >/dev/null && "
            f"cid=$(docker create {ref} /infprov-model) && docker export \"$cid\" | tar -x -C \"{stage}\"; rc=$?; "
            f"docker rm \"${{cid:-none}}\" >/dev/null 2>&1; docker rmi {ref} >/dev/null 2>&1; exit $rc",
            timeout=PUSH_TIMEOUT)
        if done.exit_code != 0:
            self.run("chmod -R u+rwX \"$HOME/.infprov-model-stage\" 2>/dev/null; rm -rf \"$HOME/.infprov-model-stage\"")
            raise InfprovError(f"docker pull of {reg.ref(mkey.tag)} failed: {_last(done, reg.password)}", "")

    def close(self) -> None:
        self.conn.close()


def _last(done: CommandResult, secret: str) -> str:
    """The command's last line of output, with the secret masked should a tool ever echo it."""
    lines = [line for line in (done.err + "\n" + done.out).splitlines() if line.strip()]
    text = lines[-1].strip() if lines else f"exit code {done.exit_code}"
    return text.replace(secret, "***") if secret else text


# ---------------------------------------------------------------- `up`'s server step with the cache

Provision = Callable[[list[str]], "ServerResult"]


@dataclass(frozen=True)
class EnvOutcome:
    source: str  # built, pulled or kept
    seconds: float


def provision(prov: Provider, hosts: Sequence[Host], profile: str, run: Provision,
              known_hosts: Any) -> ServerResult:
    """The server playbook on every host, with the environment and the compiled model from the cache where they
    can come from there: a host that holds one keeps it; what the cache holds, the others pull first (the model
    into a stage server.yml takes it from); what it lacks, the first host makes (the whole server playbook) and
    pushes while the rest wait, then they pull it. Whatever fails on the way (ECR, the login, a push or pull) is
    one warning line, and the host makes it itself."""
    ids = [h.instance_id for h in hosts]
    if not hosts:
        return run(ids)
    key = env_key(str(hosts[0].instance_type or "inf1.xlarge"), profile)
    mkey = model_key(str(hosts[0].instance_type or "inf1.xlarge"), int(hosts[0].neuron_cores or 4), key)
    links = {h.instance_id: _Host(h, known_hosts) for h in hosts}
    env_out: dict[str, EnvOutcome] = {}
    model_out: dict[str, EnvOutcome] = {}
    results: list[ServerResult] = []
    try:
        def held(iid: str) -> tuple[bool, bool]:
            try:
                return links[iid].label(key.env_image) == key.digest, links[iid].has_model(mkey)
            except InfprovError:
                return False, False  # the playbook reports an unreachable host

        with ThreadPoolExecutor(max_workers=min(8, len(hosts))) as pool:
            kept = dict(zip(ids, pool.map(held, ids), strict=True))
        env_out.update({i: EnvOutcome("kept", 0.0) for i in ids if kept[i][0]})
        model_out.update({i: EnvOutcome("kept", 0.0) for i in ids if kept[i][1]})
        need = [i for i in ids if not kept[i][0]]
        need_model = [i for i in ids if not kept[i][1]]
        reg: Registry | None = None
        cached = model_cached = False
        if need or need_model:
            try:
                ensure_repository(prov)
                cached = has(prov, key)
                model_cached = bool(prov.repository_images(REPOSITORY, mkey.tag))
                reg = login(prov)
            except (InfprovError, Exception) as exc:  # noqa: BLE001 - any ECR trouble: build instead, said in one line
                ui.warn(f"environment cache unavailable ({_why(exc)}): each host builds the environment itself")
                reg = None
        if need and reg is not None and not cached:
            builder = need[0]
            ui.step(f"environment cache: {key.tag[:24]}… is not cached; {builder} builds it, the others then pull it")
            if model_cached and builder in need_model:
                _stage_model(links[builder], reg, mkey, model_out)
            start = time.monotonic()
            first = run([builder])
            results.append(first)
            env_out[builder] = EnvOutcome("built", time.monotonic() - start)
            model_out.setdefault(builder, EnvOutcome("built", time.monotonic() - start))
            need = need[1:]
            need_model = [i for i in need_model if i != builder]
            if first.ok:
                pushed: dict[str, bool] = {}
                active_reg = reg

                def push_both(iid: str) -> None:
                    pushed["env"] = _push(links[iid], active_reg, key, prov)
                    if not model_cached:
                        pushed["model"] = _push_model(links[iid], active_reg, mkey, prov)

                _with_progress("pushing", [builder], push_both)
                cached, model_cached = pushed.get("env", False), model_cached or pushed.get("model", False)
            if not cached:
                ui.warn("environment cache: nothing was pushed, so every other host builds the environment itself")
        if reg is not None and ((need and cached) or (need_model and model_cached)):
            todo = sorted(set(need if cached else []) | set(need_model if model_cached else []), key=ids.index)
            ui.step(f"environment cache: pulling on {len(todo)} host(s)")
            active = reg

            def pull_both(iid: str) -> None:
                if cached and iid in need:
                    took = _pull(links[iid], active, key)
                    if took is not None:
                        env_out[iid] = EnvOutcome("pulled", took)
                if model_cached and iid in need_model:
                    _stage_model(links[iid], active, mkey, model_out)

            _with_progress("pulling", todo, pull_both)
        rest = [i for i in ids if i not in {h.instance_id for r in results for h in r.hosts}]
        if rest:
            results.append(run(rest))
        ready: list[str] = []
        for r in results[-1:] if rest else []:
            for h in r.hosts:
                env_out.setdefault(h.instance_id, EnvOutcome("built", h.seconds))
                model_out.setdefault(h.instance_id, EnvOutcome("built", h.seconds))
                if h.ready:
                    ready.append(h.instance_id)
        # what the cache still lacks, a host that made it in this run fills in (the first that can)
        if reg is not None and not cached:
            made = [i for i in ready if env_out[i].source == "built"]
            for iid in made[:1]:
                cached = _push(links[iid], reg, key, prov)
        if reg is not None and not model_cached:
            made = [i for i in ready if model_out[i].source == "built"]
            for iid in made[:1]:
                model_cached = _push_model(links[iid], reg, mkey, prov)
        if reg is not None:
            with ThreadPoolExecutor(max_workers=min(8, len(hosts))) as pool:
                list(pool.map(lambda i: _quietly(links[i].logout, reg), ids))
    finally:
        for link in links.values():
            link.close()
    return _merge(results, ids, env_out, model_out)


PROGRESS_EVERY = 30.0  # seconds between the lines that say a push or pull is still going


def _with_progress(doing: str, ids: Sequence[str], fn: Callable[[str], None]) -> None:
    """fn on every host in parallel; while any runs, one line every PROGRESS_EVERY seconds (a real image is GBs)."""
    from concurrent.futures import FIRST_EXCEPTION, wait

    start = time.monotonic()
    with ThreadPoolExecutor(max_workers=min(8, len(ids))) as pool:
        futures = [pool.submit(fn, iid) for iid in ids]
        while True:
            done, pending = wait(futures, timeout=PROGRESS_EVERY, return_when=FIRST_EXCEPTION)
            if not pending or any(f.exception() for f in done):
                break
            ui.step(f"environment cache: still {doing} ({len(done)} of {len(ids)} host(s) done, "
                    f"{time.monotonic() - start:.0f} s)")
        for future in futures:
            future.result()


def _attempt(link: _Host, instead: str, *steps: Callable[[], object]) -> float | None:
    """Run the steps in order: the seconds they took, or None after one line saying what the host does
    instead, and why."""
    start = time.monotonic()
    try:
        for step in steps:
            step()
    except InfprovError as exc:
        ui.warn(f"environment cache: {link.host.instance_id} {instead}: {_why(exc)}")
        return None
    return time.monotonic() - start


def _stage_model(link: _Host, reg: Registry, mkey: ModelKey, out: dict[str, EnvOutcome]) -> None:
    took = _attempt(link, "compiles the model itself", lambda: link.login(reg), lambda: link.stage_model(reg, mkey))
    if took is not None:
        out[link.host.instance_id] = EnvOutcome("pulled", took)


def _push_model(link: _Host, reg: Registry, mkey: ModelKey, prov: Provider) -> bool:
    took = _attempt(link, "could not push the model", lambda: link.push_model(reg, mkey),
                    lambda: prov.cache_pushed(REPOSITORY, mkey.tag))
    if took is not None:
        ui.ok(f"environment cache: {link.host.instance_id} pushed the model {mkey.tag[:26]}…")
    return took is not None


def _push(link: _Host, reg: Registry, key: EnvKey, prov: Provider) -> bool:
    took = _attempt(link, "could not push", lambda: link.login(reg), lambda: link.push(reg, key),
                    lambda: prov.cache_pushed(REPOSITORY, key.tag))
    if took is not None:
        ui.ok(f"environment cache: {link.host.instance_id} pushed {key.tag[:24]}… in {took:.1f} s")
    return took is not None


def _pull(link: _Host, reg: Registry, key: EnvKey) -> float | None:
    """Seconds the login and pull took, or None (the host builds instead; said in one line)."""
    return _attempt(link, "builds the environment itself", lambda: link.login(reg), lambda: link.pull(reg, key))


def _quietly(fn: Callable[[Registry], None], reg: Registry) -> None:
    with contextlib.suppress(InfprovError):
        fn(reg)


def _why(exc: BaseException) -> str:
    text = exc.message if isinstance(exc, InfprovError) else f"{type(exc).__name__}: {exc}"
    return " ".join(str(text).split())[:300]


def _merge(results: Sequence[ServerResult], ids: Sequence[str], outcome: Mapping[str, EnvOutcome],
           models: Mapping[str, EnvOutcome]) -> ServerResult:
    from infprov.provision.server import ServerResult

    by_id: dict[str, HostReady] = {}
    for r in results:
        for h in r.hosts:
            by_id[h.instance_id] = h
    merged = []
    for iid in ids:
        if iid not in by_id:
            continue
        seen, model = outcome.get(iid), models.get(iid)
        host = by_id[iid]
        if seen:
            host = dataclasses.replace(host, environment=seen.source, environment_s=seen.seconds)
        if model:
            host = dataclasses.replace(host, model_source=model.source, model_s=model.seconds)
        merged.append(host)
    logs = [r.log for r in results if r.log]
    return ServerResult(tuple(merged), logs[-1] if logs else None, sum(r.elapsed for r in results))
