"""Hardening suite (issue 9): hostile media, crafted files and fuzzing, with a summary of what was tried."""
