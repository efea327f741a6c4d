"""The `gfrnet-*` command-line programs (absl apps); `common` holds what they share."""
