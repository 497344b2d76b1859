"""Which AMI a cluster boots: the newest Neuron DLAMI that drives the instance family, or a pinned one checked."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from infprov.floor.errors import InfprovError, UsageError
from infprov.provision import ui
from infprov.provision.providers import Provider

# Neuron DLAMIs from this release on ship a driver that no longer drives Inf1.
INF1_LAST_RELEASE_EXCLUSIVE = (2, 26, 1)


# Without a readable release, a DLAMI dated before this is taken to predate 2.26.1 (released
# 2025-10-29); the margin keeps images built shortly before that release out.
INF1_DATE_CUTOFF = "20251015"


DLAMI_NAME_PATTERNS = ("Deep Learning AMI Neuron*(Ubuntu 2*", "Deep Learning Base Neuron AMI (Ubuntu 2*")


# A version is the Neuron SDK's release only where the text says so: "Neuron SDK 2.19.1", "Neuron SDK
# version 2.19.1", "Neuron SDK: v2.19", "Neuron version 2.19.1", "Neuron release 2.19.1". A version
# right after "Neuron" alone is a framework's ("PyTorch Neuron 1.13", "TensorFlow Neuron 2.10"), and so
# is "Neuron version/release X" right after a framework's name; package versions ("torch-neuron
# 1.13.1.2.9.0", "neuron-cc 1.11.4.0") never match.
_NEURON_RELEASE_RE = re.compile(
    r"(?<![\w-])Neuron\s+(?:(?P<sdk>SDK)(?:\s+(?:version|release))?|(?:version|release))\b\s*:?\s*[vV]?"
    r"(?P<version>\d+\.\d+(?:\.\d+)?)(?!\d|\.\d)",
    re.IGNORECASE,
)


_FRAMEWORK_BEFORE_RE = re.compile(
    r"(?:py)?torch(?:vision)?|tensorflow|tf|jax|mxnet|transformers|optimum|vllm|nxd[it]?|nemo|hugging\s*face",
    re.IGNORECASE,
)


def neuron_release(image: Mapping[str, Any]) -> tuple[int, ...] | None:
    """The Neuron SDK release an image names in its description or name, e.g. (2, 26, 0), or None.

    Only an explicit SDK release counts (see _NEURON_RELEASE_RE), never a framework's version: in
    "PyTorch Neuron 1.13, Neuron SDK 2.19.1" the release is 2.19.1, and "PyTorch Neuron 1.13" alone
    names none. Where a text names several releases, the highest is taken: reading too low a release
    is the mistake that would let an image that cannot drive Inf1 through.
    """
    found: list[tuple[int, ...]] = []
    for text in (str(image.get("Description") or ""), str(image.get("Name") or "")):
        for m in _NEURON_RELEASE_RE.finditer(text):
            word_before = re.search(r"([\w-]+)\s+$", text[: m.start()])
            if not m.group("sdk") and word_before and _FRAMEWORK_BEFORE_RE.fullmatch(word_before.group(1)):
                continue
            found.append(tuple(int(part) for part in m.group("version").split(".")))
    return max(found) if found else None


def image_date(image: Mapping[str, Any]) -> str | None:
    m = re.search(r"(20\d{6})\s*$", str(image.get("Name") or ""))
    if m:
        return m.group(1)
    created = str(image.get("CreationDate") or "")
    return created[:10].replace("-", "") if re.match(r"^\d{4}-\d{2}-\d{2}", created) else None


# Inf2 and Trn1 packages are listed from Neuron 2.9.0 on (its release content lists Trn1, Inf2 and Inf1
# packages; Inf2 became generally available with it). Every later DLAMI release drives both.
V2_FIRST_RELEASE = (2, 9, 0)
FAMILIES = ("inf1", "inf2", "trn1")


def verdict(image: Mapping[str, Any], family: str = "inf1") -> tuple[bool | None, str]:
    """Can this image drive the family (inf1, inf2, trn1)? (True/False/None = cannot tell) and why."""
    if family == "inf1":
        return inf1_verdict(image)
    title = family.capitalize()
    desc = str(image.get("Description") or "")
    listed = re.search(r"Supported EC2 instances?:\s*([^.]*)", desc, re.IGNORECASE)
    if listed is not None:
        if re.search(rf"\b{family}\b", listed.group(1), re.IGNORECASE):
            return True, f"its description lists {title}"
        return False, f"its description does not list {title} among the supported instances"
    release = neuron_release(image)
    if release is not None:
        text = ".".join(map(str, release))
        if release >= V2_FIRST_RELEASE:
            return True, f"Neuron release {text}"
        return False, f"Neuron release {text}; {title} needs {'.'.join(map(str, V2_FIRST_RELEASE))} or later"
    return None, "not a Neuron DLAMI whose release infprov can tell"


def inf1_verdict(image: Mapping[str, Any]) -> tuple[bool | None, str]:
    """Can this image drive Inf1? (True/False/None = cannot tell) and why, in a few words."""
    desc = str(image.get("Description") or "")
    name = str(image.get("Name") or "")
    listed = re.search(r"Supported EC2 instances?:\s*([^.]*)", desc, re.IGNORECASE)
    supports_listed = None if listed is None else bool(re.search(r"\binf1\b", listed.group(1), re.IGNORECASE))
    if supports_listed is False:
        return False, "its description does not list Inf1 among the supported instances"
    release = neuron_release(image)
    if release is not None:
        text = ".".join(map(str, release))
        cutoff = ".".join(map(str, INF1_LAST_RELEASE_EXCLUSIVE))
        if release >= INF1_LAST_RELEASE_EXCLUSIVE:
            return False, f"Neuron release {text}; releases from {cutoff} on cannot drive Inf1"
        return True, f"Neuron release {text}"
    if supports_listed:
        return True, "its description lists Inf1"
    date = image_date(image)
    if "neuron" in name.lower() and date is not None:
        if date < INF1_DATE_CUTOFF:
            return True, f"dated {date}, before Neuron 2.26.1 (release estimated from the date)"
        return False, f"dated {date}: likely Neuron 2.26.1 or later, which cannot drive Inf1"
    return None, "not a Neuron DLAMI whose release infprov can tell"


def _flavour_rank(name: str) -> int:
    if name.startswith("Deep Learning AMI Neuron ("):
        return 0  # multi-framework
    if name.startswith("Deep Learning Base Neuron AMI"):
        return 1
    return 2  # a single-framework DLAMI


def choose_ami(images: Sequence[Mapping[str, Any]], family: str = "inf1") -> Mapping[str, Any]:
    """The newest Neuron DLAMI that drives the family, among images (x86_64, Ubuntu 22.04 before 20.04)."""
    capable = [
        img
        for img in images
        if img.get("Architecture", "x86_64") == "x86_64"
        and img.get("State", "available") == "available"
        and verdict(img, family)[0] is True
    ]
    if not capable and family != "inf1":
        raise InfprovError(
            f"no Neuron DLAMI that supports {family.capitalize()} was found in this region",
            "pin one with --ami ami-..., e.g. a current 'Deep Learning AMI Neuron (Ubuntu 22.04)' image",
        )
    if not capable:
        raise InfprovError(
            "no Inf1-capable Neuron DLAMI (release before 2.26.1) was found in this region",
            "pin one with --ami ami-..., e.g. a 'Deep Learning AMI Neuron (Ubuntu 22.04)' image from "
            "release 2.26.0 or earlier",
        )

    def rank(img: Mapping[str, Any]) -> tuple[Any, ...]:
        name = str(img.get("Name") or "")
        release = neuron_release(img) or (0,)
        return (
            release,
            -_flavour_rank(name),
            "22.04" in name,
            image_date(img) or "",
            str(img.get("CreationDate") or ""),
        )

    return max(capable, key=rank)


def check_pinned_ami(image: Mapping[str, Any], region: str, family: str = "inf1") -> None:
    """`--ami` wins, but an image known not to drive the family is refused rather than launched."""
    ami = image.get("ImageId")
    name = image.get("Name") or "?"
    if image.get("State", "available") != "available":
        raise UsageError(f"AMI {ami} ({name}) is {image.get('State')}, not available", "pin an available image")
    if image.get("Architecture", "x86_64") != "x86_64":
        raise UsageError(
            f"AMI {ami} ({name}) is for {image.get('Architecture')}; {family.capitalize()} instances are x86_64",
            "pin an x86_64 image",
        )
    if family != "inf1":
        ok, why = verdict(image, family)
        if ok is False:
            raise UsageError(f"AMI {ami} ({name}) cannot drive {family.capitalize()}: {why}",
                             "pin a current Neuron DLAMI with --ami, or omit --ami to let infprov choose")
        if ok is None:
            ui.warn(f"cannot tell whether AMI {ami} ({name}) in {region} supports {family.capitalize()} ({why}); "
                    "using it as asked. It needs the Neuron driver (aws-neuronx-dkms) and docker")
        return
    inf1_ok, why = inf1_verdict(image)
    if inf1_ok is False:
        raise UsageError(
            f"AMI {ami} ({name}) cannot drive Inf1: {why}",
            "pin a Neuron DLAMI of release 2.26.0 or earlier with --ami, or omit --ami to let infprov choose",
        )
    if inf1_ok is None:
        ui.warn(
            f"cannot tell whether AMI {ami} ({name}) in {region} supports Inf1 ({why}); using it as asked. "
            "It needs the Neuron driver of the aws-neuronx-dkms 2.24 line and docker"
        )


def resolve_image(prov: Provider, pinned: str | None, family: str = "inf1") -> Mapping[str, Any]:
    if pinned:
        found = prov.image(pinned)
        if found is None:
            raise UsageError(
                f"AMI {pinned} was not found in {prov.region}",
                "AMIs are regional: give this region's id of the image, or omit --ami",
            )
        check_pinned_ami(found, prov.region, family)
        return found
    image = choose_ami(prov.find_images(["amazon"], DLAMI_NAME_PATTERNS), family)
    ui.step(f"AMI {image['ImageId']}: {image.get('Name')} ({verdict(image, family)[1]})")
    return image
