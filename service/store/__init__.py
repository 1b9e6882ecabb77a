"""Redis: connections (single, Sentinel, Cluster), key names, Lua scripts, the process cache."""
