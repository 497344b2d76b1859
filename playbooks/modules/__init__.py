"""The modules infprov's own playbooks use: Python on the control side that looks, decides and acts through
shell commands on the host."""

from infprov.playbooks.modules import command, fetch, files, git, local, stream  # noqa: F401  (registration)
from infprov.playbooks.modules.base import MODULES, ModuleArgError, ModuleContext, ModuleResult, ModuleSpec

__all__ = ["MODULES", "ModuleArgError", "ModuleContext", "ModuleResult", "ModuleSpec"]
