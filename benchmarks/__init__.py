"""Speed and quality measurements, each against a baseline timed in the same run.

A package of the checkout, not of the wheel: run one from the repository root as
`python -m benchmarks.<name>`; tests and benchmarks import each other's parts as
`from benchmarks import <name>`.
"""
