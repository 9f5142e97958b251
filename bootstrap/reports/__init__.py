"""Boot reports: written to the volume, read back as text and as one HTML page."""
