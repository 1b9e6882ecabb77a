"""Lua scripts of every multi-step state change, one file each."""
