"""Where jobs run: the device resolver, GPU placement of rules, preflight checks and the GPU-hour plan."""
