"""The sandbox: local hosts in Linux namespaces and a moto EC2 endpoint, standing in for AWS."""
