"""Ansible-syntax playbooks and the small engine that runs them over Fabric."""
