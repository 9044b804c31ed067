"""The fleet recorder: every device's state and error history in a SQL database (SQLite by
default, PostgreSQL at scale), written from one `FleetClient` subscription. See docs/recorder.md.
"""
