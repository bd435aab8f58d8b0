"""The audit trail: hash-chained log and its files, checkpoint key, journald."""
