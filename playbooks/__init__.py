"""Ansible-syntax playbooks and the small engine that runs them over SSH (each module is imported by its own
name: this package imports nothing, so loading one of them does not load the engine, YAML, Jinja2 or paramiko)."""
