"""Health for a load-balancing endpoint and for Kubernetes: the supervisor's answer on the
health path from the first second of a boot, the probe of the app's HTTP server, the ready
file and the termination message."""
