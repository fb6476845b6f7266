"""The kiosk camera: capture thread, ring buffer of JPEG frames, evidence clips (docs/kiosk.md)."""
