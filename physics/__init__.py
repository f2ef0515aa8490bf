"""Per-chunk physics: pure functions on awkward arrays (jets, features, JEC, electrons)."""
