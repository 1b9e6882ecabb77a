"""Outbound HTTP: the address rule and the guarded session every outbound call uses."""
