"""The floor under infprov's rooms: errors, bounded waits, safe file writes and locks, state paths.

Every package (provision, playbooks, inventory, client) may import it; it imports nothing of infprov's.
"""
