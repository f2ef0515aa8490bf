"""The bottom of caliber: the error type and physical constants. Imports nothing of ours."""
