"""Planning: accuracy curves, the strategy table, calibration fits, per-problem plans and batch allocation."""
