"""What moves a release between environments and what reads its history: bump, promote, rollback, status, diff,
history, and the commits and pull-request text they produce."""
