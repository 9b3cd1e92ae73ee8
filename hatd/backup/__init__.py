"""Backups of the HAT (docs/backup.md): on the embedded PostgreSQL, continuous WAL archiving plus
full and incremental base backups, every file compressed (zstd) and encrypted (age) to the owner's
key before it reaches the backup folder, each backup verified after it is taken, kept by a
daily/weekly rule, and restored to any moment the kept WAL covers. On another PostgreSQL server,
encrypted exports on the same schedule.

- keys.py: the owner's key, and sealing and opening files with it.
- store.py: the backup folder (what is in it, WAL shipping, retention) and hatd's local state.
- take.py: taking a base backup or an export, and verifying it.
- restore.py: a new data folder from the backups.
- service.py: what `hatd serve` runs in the background, and the status it shows.
"""
