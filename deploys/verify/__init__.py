"""The verifier: what verify.py checks on each host (checks) and how it reports (report).
Imports every layer below; nothing imports it but the entry points."""
