"""Training plumbing around `GFRNet.fit`: strategies, the LR schedule, callbacks."""
