"""The environment store: keyed environments on the volume, built under a lease,
packed, and hydrated to the container disk."""
