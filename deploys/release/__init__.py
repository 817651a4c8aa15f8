"""A release's life on an app server: upload and unpack (upload), the host-side checks and
health gate (gate: ships and drives files/release_gate.py and deploys/hostside), what the
host says runs (live), the steps of going live in order (switch), and one run at a time per
host (lock). Imports config, speed, ops and hostside's rules."""
