"""The host model and the Ansible-format inventory store."""
