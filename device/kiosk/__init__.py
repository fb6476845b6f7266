"""The Raspberry Pi kiosk: touch UI, officials' sign-in, ratings, complaints and evidence clips (docs/kiosk.md)."""
