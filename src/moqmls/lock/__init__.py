"""The group lock service: a leased, fenced compare-and-swap over HTTP (DESIGN.md "Lock service")."""
