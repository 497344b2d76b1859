#!/usr/bin/python
"""infprov_stream for ansible-playbook: bench.yml's streamed command, so the playbook runs unmodified there too.

Ansible loads modules from a `library/` folder beside the playbook. Under ansible-playbook the command's output
is not streamed (Ansible returns a module's result when it ends) and `on_stop` is not run on Ctrl-C; the
result has the keys infprov's engine registers (cmd, rc, stdout, stdout_lines, stopped, start, delta), stdout
and stderr as one stream. infprov's engine runs its own implementation (playbooks/modules/stream.py).
"""

from __future__ import annotations

import datetime
import time

from ansible.module_utils.basic import AnsibleModule


def main() -> None:
    module = AnsibleModule(argument_spec={"cmd": {"type": "str", "required": True}, "on_stop": {"type": "str"}},
                           supports_check_mode=True)
    cmd = module.params["cmd"]
    if module.check_mode:
        module.exit_json(skipped=True, msg="a streamed command does not run in check mode", cmd=cmd)
    began = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    start = time.monotonic()
    rc, out, _ = module.run_command(["/bin/sh", "-c", "exec 2>&1\n" + cmd])
    out = out.rstrip("\n")
    result = {"cmd": cmd, "rc": rc, "stdout": out, "stdout_lines": out.splitlines(), "stopped": False,
              "start": began, "delta": f"{time.monotonic() - start:.3f}", "changed": True}
    if rc != 0:
        module.fail_json(msg="non-zero return code", **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
